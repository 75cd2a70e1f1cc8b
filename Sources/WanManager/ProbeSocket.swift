#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket
import Netlink
import SystemPackage

/// One probe in flight: a non-blocking socket bound to a WAN's interface and address, so
/// the probe can only leave through that WAN (SO_BINDTODEVICE), and an answer proves that
/// WAN carries traffic both ways.
struct ProbeSocket {
    enum Kind {
        case tcp(acceptReset: Bool)
        /// `raw`: a SOCK_RAW socket (ping sockets refused by net.ipv4.ping_group_range):
        /// it sees every echo reply, so replies are matched by identifier.
        case icmp(raw: Bool, identifier: UInt16, sequence: UInt16)
    }

    let fd: Int32
    let kind: Kind
    let target: IPAddress

    /// Why a probe did not start: this process could not set it up (`local`: says nothing
    /// about the WAN), or the network refused the packet at once (`network`: a failure).
    enum StartError: Error, CustomStringConvertible {
        case local(Errno)
        case network(Errno)
        var description: String {
            switch self {
            case .local(let e), .network(let e): return "\(e)"
            }
        }
    }

    /// Opens, binds and starts the probe: a TCP connect in progress, or an echo request sent.
    static func start(_ target: ProbeTarget, to address: IPAddress, from source: IPAddress, interface: String,
                      sequence: UInt16, acceptReset: Bool = true) throws(StartError) -> ProbeSocket {
        let af = address.family == .v4 ? AF_INET : AF_INET6
        let flags = Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue)
        var fd: Int32
        var kind: Kind
        switch target {
        case .tcp:
            fd = socket(af, Int32(SOCK_STREAM.rawValue) | flags, Int32(IPPROTO_TCP))
            kind = .tcp(acceptReset: acceptReset)
        case .icmp, .gateway:
            let proto = address.family == .v4 ? Int32(IPPROTO_ICMP) : Int32(IPPROTO_ICMPV6)
            fd = socket(af, Int32(SOCK_DGRAM.rawValue) | flags, proto)
            var raw = false
            if fd < 0 && (errno == EACCES || errno == EPERM) {
                fd = socket(af, Int32(SOCK_RAW.rawValue) | flags, proto)
                raw = true
            }
            kind = .icmp(raw: raw, identifier: UInt16.random(in: 1...UInt16.max), sequence: sequence)
        }
        guard fd >= 0 else { throw .local(Errno(rawValue: errno)) }
        let probe = ProbeSocket(fd: fd, kind: kind, target: address)
        do {
            try probe.bind(interface: interface, source: source)
        } catch {
            Glibc.close(fd)
            // The address just went (EADDRNOTAVAIL) is news about the WAN; the rest is ours.
            throw error == .addressNotAvailable ? .network(error) : .local(error)
        }
        do {
            try probe.send(port: { if case .tcp(_, let port) = target { return port } else { return 0 } }())
        } catch {
            Glibc.close(fd)
            throw Self.isLocal(error) ? .local(error) : .network(error)
        }
        return probe
    }

    /// Errors of a connect or send that come from this host, not from the path: out of
    /// buffers, memory or ports, or a local firewall that refuses the packet (EPERM).
    static func isLocal(_ error: Errno) -> Bool {
        let codes: [Errno] = [.noBufferSpace, .noMemory, .resourceTemporarilyUnavailable, .addressNotAvailable,
                              .tooManyOpenFiles, .tooManyOpenFilesInSystem, .notPermitted, .permissionDenied]
        return codes.contains(error)
    }

    private func bind(interface: String, source: IPAddress) throws(Errno) {
        let bound = interface.withCString { name in
            setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, name, socklen_t(strlen(name) + 1))
        }
        guard bound == 0 else { throw Errno(rawValue: errno) }
        try Socket.bindSource(FileDescriptor(rawValue: fd), source.socketAddress(port: 0))
    }

    private func send(port: UInt16) throws(Errno) {
        switch kind {
        case .tcp:
            // Closing a probe sends a RST: the target keeps no state of it.
            try? Socket.setResetOnClose(FileDescriptor(rawValue: fd))
            let rc = target.socketAddress(port: port).withSockaddr { connect(fd, $0, $1) }
            guard rc == 0 || errno == EINPROGRESS || errno == ECONNREFUSED else { throw Errno(rawValue: errno) }
        case .icmp(_, let identifier, let sequence):
            let packet = Self.echoRequest(v6: target.family == .v6, identifier: identifier, sequence: sequence)
            let sent = packet.withUnsafeBytes { bytes in
                target.socketAddress(port: 0).withSockaddr { sendto(fd, bytes.baseAddress, bytes.count, 0, $0, $1) }
            }
            guard sent >= 0 else { throw Errno(rawValue: errno) }
        }
    }

    /// What poll(2) waits for.
    var events: Int16 { if case .tcp = kind { Int16(POLLOUT) } else { Int16(POLLIN) } }

    /// After poll reported `revents`: nil while undecided (an ICMP packet that was not our
    /// reply), else answered or the failure.
    func outcome(_ revents: Int16) -> Result<Void, Errno>? {
        switch kind {
        case .tcp(let acceptReset):
            var error: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
            if error == 0 { return .success(()) }
            // A RST proves the path when the target is one that refuses the port.
            if error == ECONNREFUSED && acceptReset { return .success(()) }
            return .failure(Errno(rawValue: error))
        case .icmp(let raw, let identifier, let sequence):
            var buffer = [UInt8](repeating: 0, count: 1500)
            while true {
                let n = recv(fd, &buffer, buffer.count, 0)
                if n < 0 {
                    if errno == EAGAIN || errno == EINTR { return nil }
                    return .failure(Errno(rawValue: errno))  // an ICMP error (unreachable) on a ping socket
                }
                var icmp = buffer[0..<n]
                if raw && target.family == .v4 {
                    guard n > 0 else { continue }
                    let headerLength = Int(buffer[0] & 0x0f) * 4
                    guard n >= headerLength + 8 else { continue }
                    icmp = buffer[headerLength..<n]
                }
                guard icmp.count >= 8 else { continue }
                let b = Array(icmp)
                let replyType: UInt8 = target.family == .v4 ? 0 : 129
                guard b[0] == replyType, UInt16(b[6]) << 8 | UInt16(b[7]) == sequence else { continue }
                // A ping socket's kernel rewrites the identifier and delivers only its own replies.
                if raw && UInt16(b[4]) << 8 | UInt16(b[5]) != identifier { continue }
                return .success(())
            }
        }
    }

    func close() { Glibc.close(fd) }

    static func echoRequest(v6: Bool, identifier: UInt16, sequence: UInt16) -> [UInt8] {
        var p: [UInt8] = [v6 ? 128 : 8, 0, 0, 0, UInt8(identifier >> 8), UInt8(identifier & 0xff),
                          UInt8(sequence >> 8), UInt8(sequence & 0xff)]
        p += Array("mptcp-relay probe".utf8)
        if !v6 {
            // ICMPv6's checksum covers a pseudo-header: the kernel fills it in.
            let sum = checksum(p)
            p[2] = UInt8(sum >> 8)
            p[3] = UInt8(sum & 0xff)
        }
        return p
    }

    /// RFC 1071 Internet checksum.
    static func checksum(_ bytes: [UInt8]) -> UInt16 {
        var sum: UInt32 = 0
        var i = 0
        while i + 1 < bytes.count {
            sum += UInt32(bytes[i]) << 8 | UInt32(bytes[i + 1])
            i += 2
        }
        if i < bytes.count { sum += UInt32(bytes[i]) << 8 }
        while sum >> 16 != 0 { sum = (sum & 0xffff) + (sum >> 16) }
        return ~UInt16(sum)
    }
}
