#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import SystemPackage

/// Whether a connected stream socket really runs MPTCP.
public enum MPTCPStatus: Sendable, Equatable, CustomStringConvertible, BitwiseCopyable {
    /// MPTCP was negotiated with the peer.
    case active
    /// An MPTCP socket whose peer (or a middlebox) did not take MPTCP: it runs plain TCP.
    case fallback
    /// The socket was created as plain TCP (the kernel refused MPTCP).
    case plainTCP

    public var isMPTCP: Bool { self == .active }

    public var description: String {
        switch self {
        case .active: return "mptcp=yes"
        case .fallback: return "mptcp=no (fallback: peer did not negotiate MPTCP)"
        case .plainTCP: return "mptcp=no (plain TCP: kernel refused MPTCP)"
        }
    }
}

/// The MPTCP-level counters of one connection (`struct mptcp_info`, MPTCP_INFO).
public struct MPTCPInfo: Sendable {
    /// Subflows the path manager added beyond the initial one (`mptcpi_subflows`).
    public var additionalSubflows: Int
    public var addAddrSignal: Int
    public var addAddrAccepted: Int
    public var localAddrUsed: Int
    public var flags: UInt32
    public var isFallback: Bool { flags & UInt32(CNET_MPTCP_INFO_FLAG_FALLBACK) != 0 }
}

/// The addresses of one subflow (`struct mptcp_subflow_addrs`, MPTCP_SUBFLOW_ADDRS).
public struct SubflowAddresses: Sendable, CustomStringConvertible {
    public var local: SocketAddress?
    public var remote: SocketAddress?
    public var description: String { "\(local.map(String.init(describing:)) ?? "?") -> \(remote.map(String.init(describing:)) ?? "?")" }
}

/// The TCP state of one subflow (`struct tcp_info`, MPTCP_TCPINFO), the fields a path
/// scheduler's behaviour shows in.
public struct SubflowTCPInfo: Sendable {
    /// TCP state (1 = ESTABLISHED).
    public var state: UInt8
    public var rttMicroseconds: UInt32
    public var rttVarianceMicroseconds: UInt32
    public var congestionWindow: UInt32
    public var mss: UInt32
    public var totalRetransmits: UInt32
    /// Bytes sent and acknowledged / received on this subflow (tcpi_bytes_acked,
    /// tcpi_bytes_received; Linux 4.1+), 0 when the kernel's tcp_info is shorter.
    public var bytesAcked: UInt64 = 0
    public var bytesReceived: UInt64 = 0
}

/// Glibc's `struct tcp_info` stops at tcpi_total_retrans (104 bytes); the uapi one goes on.
/// Offsets from linux/tcp.h, which only ever appends fields.
enum LinuxTCPInfo {
    static let size = 232
    static let bytesAckedOffset = 120
    static let bytesReceivedOffset = 128
}

public enum MPTCP {
    /// Tells whether `fd` (connected, created with `protocol`) negotiated MPTCP.
    /// Uses TCP_IS_MPTCP (Linux 6.7+) and falls back to MPTCP_INFO's fallback flag.
    public static func status(of fd: FileDescriptor, createdAs proto: StreamProtocol) -> MPTCPStatus {
        guard proto == .mptcp else { return .plainTCP }
        if let value = try? Socket.intOption(fd, level: Int32(IPPROTO_TCP), name: CNET_TCP_IS_MPTCP) {
            return value == 1 ? .active : .fallback
        }
        if let info = try? info(of: fd) { return info.isFallback ? .fallback : .active }
        return .fallback
    }

    /// getsockopt(SOL_MPTCP, MPTCP_INFO).
    public static func info(of fd: FileDescriptor) throws(Errno) -> MPTCPInfo {
        var raw = mptcp_info()
        var len = socklen_t(MemoryLayout<mptcp_info>.size)
        try syscallRetrying { getsockopt(fd.rawValue, CNET_SOL_MPTCP, CNET_MPTCP_INFO, &raw, &len) }
        // A short answer (optlen 0) is what a fallen-back socket returns on some kernels.
        if len == 0 { return MPTCPInfo(additionalSubflows: 0, addAddrSignal: 0, addAddrAccepted: 0, localAddrUsed: 0, flags: UInt32(CNET_MPTCP_INFO_FLAG_FALLBACK)) }
        return MPTCPInfo(
            additionalSubflows: Int(raw.mptcpi_subflows),
            addAddrSignal: Int(raw.mptcpi_add_addr_signal),
            addAddrAccepted: Int(raw.mptcpi_add_addr_accepted),
            localAddrUsed: Int(raw.mptcpi_local_addr_used),
            flags: UInt32(raw.mptcpi_flags))
    }

    /// getsockopt(SOL_MPTCP, MPTCP_SUBFLOW_ADDRS): local and remote address of every subflow.
    public static func subflowAddresses(of fd: FileDescriptor, maxSubflows: Int = 16) throws(Errno) -> [SubflowAddresses] {
        try subflowArray(of: fd, option: CNET_MPTCP_SUBFLOW_ADDRS, element: MemoryLayout<mptcp_subflow_addrs>.size, max: maxSubflows) { element, _ in
            // struct mptcp_subflow_addrs: two sockaddr_storage-sized unions, local then remote.
            SubflowAddresses(local: SocketAddress(storage: element),
                             remote: SocketAddress(storage: element + MemoryLayout<sockaddr_storage>.size))
        }
    }

    /// getsockopt(SOL_MPTCP, MPTCP_TCPINFO): the TCP state of every subflow.
    public static func subflowTCPInfo(of fd: FileDescriptor, maxSubflows: Int = 16) throws(Errno) -> [SubflowTCPInfo] {
        try subflowArray(of: fd, option: CNET_MPTCP_TCPINFO, element: LinuxTCPInfo.size, max: maxSubflows) { element, stride in
            let info = element.loadUnaligned(as: tcp_info.self)
            var out = SubflowTCPInfo(state: info.tcpi_state, rttMicroseconds: info.tcpi_rtt, rttVarianceMicroseconds: info.tcpi_rttvar,
                                     congestionWindow: info.tcpi_snd_cwnd, mss: info.tcpi_snd_mss, totalRetransmits: info.tcpi_total_retrans)
            if stride >= LinuxTCPInfo.bytesReceivedOffset + 8 {
                out.bytesAcked = element.loadUnaligned(fromByteOffset: LinuxTCPInfo.bytesAckedOffset, as: UInt64.self)
                out.bytesReceived = element.loadUnaligned(fromByteOffset: LinuxTCPInfo.bytesReceivedOffset, as: UInt64.self)
            }
            return out
        }
    }

    /// The MPTCP "subflow data" getsockopt layout: a `mptcp_subflow_data` header the caller
    /// sizes, then one element per subflow, each `size_user` bytes (the kernel may use less).
    private static func subflowArray<T>(of fd: FileDescriptor, option: Int32, element elementSize: Int, max: Int,
                                        _ decode: (UnsafeRawPointer, Int) -> T) throws(Errno) -> [T] {
        let headerSize = MemoryLayout<mptcp_subflow_data>.size
        let total = headerSize + elementSize * max
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: total)
        var header = mptcp_subflow_data()
        header.size_subflow_data = UInt32(headerSize)
        header.size_user = UInt32(elementSize)
        buffer.storeBytes(of: header, as: mptcp_subflow_data.self)
        var len = socklen_t(total)
        try syscallRetrying { getsockopt(fd.rawValue, CNET_SOL_MPTCP, option, buffer, &len) }
        let answer = buffer.load(as: mptcp_subflow_data.self)
        let count = min(Int(answer.num_subflows), max)
        let stride = Int(answer.size_user) > 0 ? Int(answer.size_user) : elementSize
        return (0..<count).map { i in decode(UnsafeRawPointer(buffer + Int(answer.size_subflow_data) + i * stride), stride) }
    }

    /// Whether this kernel and network namespace let a process create MPTCP sockets.
    public static func isAvailable(family: Int32 = AF_INET) -> Bool {
        let fd = Glibc.socket(family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), CNET_IPPROTO_MPTCP)
        if fd >= 0 { Glibc.close(fd); return true }
        return false
    }
}
