#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import SystemPackage

/// The transport protocol a stream socket ended up with when it was created.
public enum StreamProtocol: Sendable, Equatable, CustomStringConvertible {
    case mptcp
    case tcp
    public var description: String { self == .mptcp ? "MPTCP" : "TCP" }
}

/// Thin, typed wrappers over the socket calls the relay and its tools need.
/// Each names the C function it calls; all retry on EINTR and throw `Errno`.
public enum Socket {
    /// socket(2) with IPPROTO_MPTCP, falling back to IPPROTO_TCP when this kernel or
    /// namespace refuses MPTCP (EPROTONOSUPPORT: no MPTCP built in; ENOPROTOOPT:
    /// net.mptcp.enabled=0; EINVAL: older kernels' answer for an unknown protocol).
    public static func openStream(family: Int32, preferMPTCP: Bool = true, nonBlocking: Bool = true) throws(Errno) -> (FileDescriptor, StreamProtocol) {
        let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | (nonBlocking ? Int32(SOCK_NONBLOCK.rawValue) : 0)
        if preferMPTCP {
            let fd = Glibc.socket(family, type, CNET_IPPROTO_MPTCP)
            if fd >= 0 { return (FileDescriptor(rawValue: fd), .mptcp) }
            let code = errno
            guard code == EPROTONOSUPPORT || code == ENOPROTOOPT || code == EINVAL else {
                throw Errno(rawValue: code)
            }
        }
        let fd = try syscallRetrying { Glibc.socket(family, type, Int32(IPPROTO_TCP)) }
        return (FileDescriptor(rawValue: fd), .tcp)
    }

    /// setsockopt(2) for an integer-valued option.
    public static func setOption(_ fd: FileDescriptor, level: Int32, name: Int32, value: Int32) throws(Errno) {
        var v = value
        try syscallRetrying { setsockopt(fd.rawValue, level, name, &v, socklen_t(MemoryLayout<Int32>.size)) }
    }

    /// getsockopt(2) for an integer-valued option.
    public static func intOption(_ fd: FileDescriptor, level: Int32, name: Int32) throws(Errno) -> Int32 {
        var v: Int32 = 0
        var len = socklen_t(MemoryLayout<Int32>.size)
        try syscallRetrying { getsockopt(fd.rawValue, level, name, &v, &len) }
        return v
    }

    /// getsockopt(SO_ERROR): the socket's pending error (0: none), or the getsockopt error.
    public static func pendingError(_ fd: FileDescriptor) -> Int32 {
        do { return try intOption(fd, level: SOL_SOCKET, name: SO_ERROR) } catch { return error.rawValue }
    }

    /// SO_LINGER {on, 0}: the next close(2) sends RST instead of FIN, which is how a
    /// relay passes a peer's reset on to the other side.
    public static func setResetOnClose(_ fd: FileDescriptor) throws(Errno) {
        var l = linger(l_onoff: 1, l_linger: 0)
        try syscallRetrying { setsockopt(fd.rawValue, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size)) }
    }

    /// IP_TRANSPARENT / IPV6_TRANSPARENT, needed by a TPROXY listener to accept
    /// connections addressed to foreign hosts.
    public static func setTransparent(_ fd: FileDescriptor, family: Int32) throws(Errno) {
        if family == AF_INET6 {
            try setOption(fd, level: Int32(IPPROTO_IPV6), name: CNET_IPV6_TRANSPARENT, value: 1)
            // A dual-stack listener also receives IPv4 TPROXY traffic.
            try? setOption(fd, level: Int32(IPPROTO_IP), name: CNET_IP_TRANSPARENT, value: 1)
        } else {
            try setOption(fd, level: Int32(IPPROTO_IP), name: CNET_IP_TRANSPARENT, value: 1)
        }
    }

    /// bind(2) to `source` with port 0 before a connect, with IP_BIND_ADDRESS_NO_PORT so the
    /// port is chosen by the connect (per destination) and the ephemeral range is not used
    /// up by the bind; a kernel or protocol that refuses the option still gets the bind.
    public static func bindSource(_ fd: FileDescriptor, _ source: SocketAddress) throws(Errno) {
        try? setOption(fd, level: Int32(IPPROTO_IP), name: CNET_IP_BIND_ADDRESS_NO_PORT, value: 1)
        try source.withSockaddr { (sa, length) throws(Errno) in
            _ = try syscallRetrying { Glibc.bind(fd.rawValue, sa, length) }
        }
    }

    /// getsockname(2).
    public static func localAddress(_ fd: FileDescriptor) throws(Errno) -> SocketAddress? {
        try address(of: fd, getsockname)
    }

    /// getpeername(2).
    public static func peerAddress(_ fd: FileDescriptor) throws(Errno) -> SocketAddress? {
        try address(of: fd, getpeername)
    }

    private static func address(of fd: FileDescriptor,
                                _ call: (Int32, UnsafeMutablePointer<sockaddr>, UnsafeMutablePointer<socklen_t>) -> Int32) throws(Errno) -> SocketAddress? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        try withUnsafeMutablePointer(to: &storage) { (p) throws(Errno) in
            try p.withMemoryRebound(to: sockaddr.self, capacity: 1) { (sa) throws(Errno) in
                _ = try syscallRetrying { call(fd.rawValue, sa, &len) }
            }
        }
        return withUnsafePointer(to: &storage) { SocketAddress(storage: UnsafeRawPointer($0)) }
    }

    /// getsockopt(SO_ORIGINAL_DST / IP6T_SO_ORIGINAL_DST): the destination a NAT
    /// REDIRECT rewrote. ENOENT means the connection was not redirected.
    public static func originalDestination(_ fd: FileDescriptor, family: Int32) throws(Errno) -> SocketAddress? {
        var storage = sockaddr_storage()
        var len = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let level = family == AF_INET6 ? Int32(IPPROTO_IPV6) : Int32(IPPROTO_IP)
        try withUnsafeMutablePointer(to: &storage) { (p) throws(Errno) in
            _ = try syscallRetrying { getsockopt(fd.rawValue, level, CNET_SO_ORIGINAL_DST, p, &len) }
        }
        return withUnsafePointer(to: &storage) { SocketAddress(storage: UnsafeRawPointer($0)) }
    }

    /// socket + SO_REUSEADDR (+ SO_REUSEPORT) + bind + listen: a nonblocking listener.
    /// IPv6 wildcard listeners stay dual-stack.
    public static func listen(on address: SocketAddress, backlog: Int32 = 4096, reusePort: Bool, transparent: Bool = false, preferMPTCP: Bool = false) throws(Errno) -> FileDescriptor {
        let (fd, _) = try openStream(family: address.family, preferMPTCP: preferMPTCP)
        do {
            try setOption(fd, level: SOL_SOCKET, name: SO_REUSEADDR, value: 1)
            if reusePort { try setOption(fd, level: SOL_SOCKET, name: SO_REUSEPORT, value: 1) }
            if address.family == AF_INET6 { try? setOption(fd, level: Int32(IPPROTO_IPV6), name: IPV6_V6ONLY, value: 0) }
            if transparent { try setTransparent(fd, family: address.family) }
            try address.withSockaddr { (sa, len) throws(Errno) in
                _ = try syscallRetrying { Glibc.bind(fd.rawValue, sa, len) }
            }
            try syscallRetrying { Glibc.listen(fd.rawValue, backlog) }
            return fd
        } catch {
            try? fd.close()
            throw error
        }
    }

    /// connect(2), blocking or not depending on the descriptor.
    public static func connect(_ fd: FileDescriptor, to address: SocketAddress) throws(Errno) {
        try address.withSockaddr { (sa, len) throws(Errno) in
            _ = try syscallRetrying { Glibc.connect(fd.rawValue, sa, len) }
        }
    }

    /// getifaddrs(3): every IPv4/IPv6 address on this host's interfaces.
    public static func interfaceAddresses() -> [SocketAddress] {
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return [] }
        defer { freeifaddrs(list) }
        var out: [SocketAddress] = []
        for entry in sequence(first: first, next: { $0.pointee.ifa_next }) {
            if let sa = entry.pointee.ifa_addr, let address = SocketAddress(storage: UnsafeRawPointer(sa)) {
                out.append(address)
            }
        }
        return out
    }

    /// shutdown(2).
    public static func shutdown(_ fd: FileDescriptor, how: Int32) throws(Errno) {
        try syscallRetrying { Glibc.shutdown(fd.rawValue, how) }
    }
}
