#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket
import TunnelProtocol

/// Where a listener's connections go.
public enum ListenerMode: Sendable, Equatable, CustomStringConvertible {
    /// Plain TCP in, MPTCP out to one fixed upstream.
    case forward(upstream: Upstream)
    /// nftables/iptables TPROXY: the upstream is the accepted socket's local address.
    case transparent
    /// NAT REDIRECT: the upstream comes from SO_ORIGINAL_DST.
    case redirect
    /// The far end: MPTCP in (TCP clients too), plain TCP out to a fixed backend.
    case server(backend: Upstream)
    /// The aggregation server: MPTCP in, each connection names its destination in a
    /// tunnel header, plain TCP out.
    case tunnelServer

    public var description: String {
        switch self {
        case .forward(let upstream): return "forward to \(upstream)"
        case .transparent: return "transparent (TPROXY)"
        case .redirect: return "redirect (SO_ORIGINAL_DST)"
        case .server(let backend): return "server to \(backend)"
        case .tunnelServer: return "tunnel server"
        }
    }

    /// Server modes accept MPTCP and speak plain TCP to what is behind them.
    public var acceptsMPTCP: Bool {
        switch self {
        case .server, .tunnelServer: return true
        default: return false
        }
    }

    /// The fixed upstream of forward and server modes.
    public var upstream: Upstream? {
        switch self {
        case .forward(let u), .server(let u): return u
        default: return nil
        }
    }

    /// Whether the listener needs the original destination of intercepted traffic.
    public var intercepts: Bool { self == .transparent || self == .redirect }
}

/// An address-prefix rule: `10.0.0.0/8`, `fd00::/8` (the tunnel policy's own type).
public typealias AddressPrefix = IPPrefix

/// Tunnel parameters of a listener (see docs/tunnel-protocol.md).
public struct TunnelSettings: Sendable, Equatable {
    /// Gateway: its pre-shared key, read from a file by the caller (never from the command
    /// line). A server checks headers with `keyring` instead (which holds this key in the
    /// single-key form).
    public var key: TunnelKey?
    /// Gateway: the key id it names in its headers (`key_id`: its key's file name on the
    /// server); nil sends the single-key form, which the server matches by the key's hash.
    public var keyName: KeyName?
    /// Gateway: the aggregation servers (`via`), in the config's order. New connections go to
    /// one in service, chosen by a hash of the destination address (TunnelServerChoice).
    public var servers: [SocketAddress] = []
    /// Server side: the keys accepted, one per gateway (`key_dir`, or `key_file` as one key).
    public var keyring: TunnelKeyring
    /// Server side: open connections per key unless its `[[key]]` says otherwise (nil: none).
    public var maxConnectionsPerKey: Int?
    /// Server side: a reload that removes a key also resets that key's open connections.
    public var revokeNow = false
    /// Server side: destinations allowed despite the default denials, and extra denials.
    public var allow: [AddressPrefix] = []
    public var deny: [AddressPrefix] = []
    /// Client side: send the header in the SYN with TCP Fast Open where the kernel can.
    public var fastOpen = true

    /// The single-key form: `key` on both ends. A server holds it as the one key of its
    /// keyring, named `keyName` (or "default"), matched by its hash for unnamed requests.
    public init(key: TunnelKey, via: SocketAddress? = nil, keyName: KeyName? = nil) {
        self.key = key
        self.servers = via.map { [$0] } ?? []
        self.keyName = keyName
        self.keyring = try! TunnelKeyring([TunnelKeyring.Entry(name: keyName ?? KeyName("default")!, key: key)])
    }

    /// A server with a key per gateway.
    public init(keyring: TunnelKeyring) {
        self.keyring = keyring
    }

    /// Client side: the first server (the only one before `via` took a list).
    public var via: SocketAddress? { servers.first }

    /// Keys compare by id (a hash of the key): settings never hold two keys with one id.
    public static func == (a: TunnelSettings, b: TunnelSettings) -> Bool {
        a.key?.id == b.key?.id && a.keyName == b.keyName && a.servers == b.servers && a.keyring == b.keyring
            && a.maxConnectionsPerKey == b.maxConnectionsPerKey && a.revokeNow == b.revokeNow
            && a.allow == b.allow && a.deny == b.deny && a.fastOpen == b.fastOpen
    }
}

public struct ListenerSettings: Sendable, Equatable {
    public var address: SocketAddress
    public var mode: ListenerMode
    /// Transparent/redirect listeners with a tunnel carry connections to `tunnel.via`;
    /// a tunnel server checks headers with `tunnel.key`.
    public var tunnel: TunnelSettings?
    /// Server mode: send a PROXY protocol v2 header to the backend.
    public var proxyProtocol = false
    /// A transparent listener with a tunnel also takes the LAN's UDP (TPROXY on the same
    /// port) and carries each flow to `tunnel.via` (DatagramEngine).
    public var udp = false
    /// A transparent or redirect listener that carries its connections through a tunnel server.
    public var tunnelsOut: Bool { mode.intercepts && tunnel?.via != nil }
    /// A transparent listener that also carries the LAN's UDP through its tunnel (the parser
    /// allows `udp` nowhere else; this is the one test the engine, nft and reload share).
    public var carriesUDP: Bool { udp && mode == .transparent && tunnelsOut }

    public init(address: SocketAddress, mode: ListenerMode, tunnel: TunnelSettings? = nil, proxyProtocol: Bool = false) {
        self.address = address
        self.mode = mode
        self.tunnel = tunnel
        self.proxyProtocol = proxyProtocol
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
    /// Seconds a tunnel server waits for a client's complete header (always in force).
    public var headerTimeout: Double = 5
    /// Tunnel server: connections still sending their header, across all workers (nil: the
    /// default, max(64, maxConnections / 8)), and per source (IPv4 address, IPv6 /64).
    public var maxPendingHeaders: Int? = nil
    public var maxPendingPerSource: Int = 16
    /// Seconds without a byte in either direction before a connection is closed; 0 disables.
    public var idleTimeout: Double = 3600
    /// Seconds that open connections get to finish after SIGTERM/SIGINT.
    public var gracePeriod: Double = 30
    /// Bytes per splice pipe (F_SETPIPE_SZ); also the most a direction holds in flight.
    public var pipeSize: Int = 256 * 1024
    /// Connections across all workers; accepting pauses at the limit.
    public var maxConnections: Int = 8192

    /// The most `max_connections` can be: each connection holds two descriptors (four more
    /// while bytes move through pipes), and Linux caps a process at fs.nr_open descriptors
    /// (1,048,576 by default); tables grow with use, about 0.7 KB per connection held.
    public static let maxConnectionsLimit = 1 << 20

    /// Why `value` cannot be max_connections, or nil.
    public static func checkMaxConnections(_ value: Int) -> String? {
        guard value >= 1, value <= maxConnectionsLimit else {
            return "must be between 1 and \(maxConnectionsLimit): each connection needs two descriptors (up to six while it moves bytes), and a process gets at most fs.nr_open (1,048,576 by default); about 0.7 KB of memory per connection held"
        }
        return nil
    }
    /// Cap on the bytes of all splice pipes (nil: what the kernel lets this user have,
    /// see SharedLimits.defaultPipeByteLimit). Past it, directions copy instead of splicing.
    public var pipeMemory: Int? = nil
    public var spliceEngine: SpliceEngine = .inline
    /// Ask for MPTCP on the upstream side of client-side modes (falls back to TCP when
    /// the kernel refuses). Server modes always speak plain TCP to their backends.
    public var upstreamMPTCP: Bool = true
    public var ringEntries: UInt32 = 1024
    /// UDP flows through the tunnel (`[udp]`): timeouts, caps, queue bounds.
    public var udp = DatagramSettings()

    public init(listeners: [ListenerSettings]) {
        self.listeners = listeners
    }

    public var effectiveMaxPendingHeaders: Int { maxPendingHeaders ?? max(64, maxConnections / 8) }

    /// The longest timeout accepted (about 31 years): well inside what nanosecond
    /// arithmetic in Int64 holds, and longer than any connection should wait.
    public static let maxSeconds: Double = 1e9

    /// A timeout the relay can represent, or why not (for the CLI and the config file).
    public static func checkSeconds(_ value: Double) -> String? {
        if !value.isFinite || value < 0 { return "must be a number of seconds, 0 or more" }
        if value > maxSeconds { return "must be at most \(Int(maxSeconds)) seconds" }
        return nil
    }
}

/// Seconds -> nanoseconds, saturating: never traps, whatever the input.
@inline(__always) func nanoseconds(_ seconds: Double) -> Int64 {
    let ns = seconds * 1e9
    if !(ns < 9.2e18) { return Int64.max / 2 }
    return ns <= 0 ? 0 : Int64(ns)
}
