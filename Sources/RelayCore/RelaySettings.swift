#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket

/// Where a listener's connections go.
public enum ListenerMode: Sendable, Equatable, CustomStringConvertible {
    /// Every connection goes to one fixed upstream.
    case forward(upstream: SocketAddress)
    /// nftables/iptables TPROXY: the upstream is the accepted socket's local address.
    case transparent
    /// NAT REDIRECT: the upstream comes from SO_ORIGINAL_DST.
    case redirect

    public var description: String {
        switch self {
        case .forward(let upstream): return "forward to \(upstream)"
        case .transparent: return "transparent (TPROXY)"
        case .redirect: return "redirect (SO_ORIGINAL_DST)"
        }
    }
}

public struct ListenerSettings: Sendable, Equatable {
    public var address: SocketAddress
    public var mode: ListenerMode
    public init(address: SocketAddress, mode: ListenerMode) {
        self.address = address
        self.mode = mode
    }
}

/// How bytes move between socket and pipe.
public enum SpliceEngine: String, Sendable, CaseIterable {
    /// IORING_OP_SPLICE on the ring (the kernel runs it on an io-wq worker).
    case ring
    /// splice(2) called by the event-loop thread when the ring reports readiness.
    case inline
}

/// Everything a running relay needs; the CLI and the config file both produce this.
public struct RelaySettings: Sendable {
    public var listeners: [ListenerSettings]
    public var workers: Int = max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    /// Seconds to wait for an upstream connect before closing the client.
    public var connectTimeout: Double = 10
    /// Seconds without a byte in either direction before a connection is closed; 0 disables.
    public var idleTimeout: Double = 3600
    /// Seconds that open connections get to finish after SIGTERM/SIGINT.
    public var gracePeriod: Double = 30
    /// Bytes per splice pipe (F_SETPIPE_SZ); also the most a direction holds in flight.
    public var pipeSize: Int = 256 * 1024
    /// Connections across all workers; accepting pauses at the limit.
    public var maxConnections: Int = 8192
    public var spliceEngine: SpliceEngine = .inline
    /// Ask for MPTCP on the upstream side (falls back to TCP when the kernel refuses).
    public var upstreamMPTCP: Bool = true
    public var ringEntries: UInt32 = 1024

    public init(listeners: [ListenerSettings]) {
        self.listeners = listeners
    }
}
