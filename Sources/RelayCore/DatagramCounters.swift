import MPTCPSocket
import Synchronization

/// Why a datagram did not reach the other side (the `reason` label of
/// mptcp_relay_udp_drops_total).
public enum DatagramDrop: Int, Sendable, CaseIterable {
    /// Waited longer than `[udp] queue_ms` for the tunnel.
    case age
    /// The flow's queue toward the tunnel held `queue_bytes` already.
    case queueFull
    /// `max_flows` reached: a new flow was not opened.
    case flowLimit
    /// `max_flows_per_client` reached for that LAN address.
    case clientLimit
    /// The flow's tunnel could not be opened or was refused (held down for a moment, so a
    /// dead server is not redialled for every datagram).
    case tunnelDown
    /// The receiving socket refused it (buffer full, ICMP error pending, no route).
    case sendFailed
    /// Arrived on the listener without an original destination (not intercepted by TPROXY).
    case notIntercepted

    public var label: String {
        switch self {
        case .age: return "age"
        case .queueFull: return "queue_full"
        case .flowLimit: return "flow_limit"
        case .clientLimit: return "client_limit"
        case .tunnelDown: return "tunnel_down"
        case .sendFailed: return "send_failed"
        case .notIntercepted: return "not_intercepted"
        }
    }
}

/// The datagram engine's totals: written by its thread alone, read at scrape time.
public final class DatagramCounters: Sendable {
    public enum Name: Int, CaseIterable, Sendable {
        case flowsOpened, flowsClosed, datagramsUp, datagramsDown, bytesUp, bytesDown
    }
    private let values: [CounterCell]
    private let drops: [CounterCell]

    init() {
        values = Name.allCases.map { _ in CounterCell() }
        drops = DatagramDrop.allCases.map { _ in CounterCell() }
    }

    func add(_ name: Name, _ n: UInt64) { values[name.rawValue].value.add(n, ordering: .relaxed) }
    func drop(_ reason: DatagramDrop, _ n: UInt64 = 1) { drops[reason.rawValue].value.add(n, ordering: .relaxed) }

    public func total(_ name: Name) -> UInt64 { values[name.rawValue].value.load(ordering: .relaxed) }
    public func dropped(_ reason: DatagramDrop) -> UInt64 { drops[reason.rawValue].value.load(ordering: .relaxed) }
}

/// An atomic counter on the heap, so a fixed list of them can live in an array.
final class CounterCell: Sendable {
    let value = Atomic<UInt64>(0)
}

/// One UDP flow as the engine saw it when it answered a snapshot request.
public struct DatagramFlowSnapshot: Sendable {
    /// "u" and a sequence number, like a connection's "worker.sequence".
    public var id: String
    /// The LAN client (gateway) or the gateway's tunnel address (server).
    public var client: SocketAddress?
    public var destination: SocketAddress?
    /// connecting, open, refused (held down), closing.
    public var phase: String
    /// Whether the tunnel connection runs MPTCP (nil until known).
    public var mptcp: MPTCPOutcome?
    public var datagramsUp: UInt64
    public var datagramsDown: UInt64
    public var bytesUp: UInt64
    public var bytesDown: UInt64
    public var drops: UInt64
    /// Bytes waiting for the tunnel socket.
    public var queued: Int
    public var ageSeconds: Double
    public var idleSeconds: Double
}

/// Everything the engine reports at once.
public struct DatagramSnapshot: Sendable {
    /// gateway (LAN UDP into tunnels), server (tunnels out to UDP), or both.
    public var role: String
    public var flows: [DatagramFlowSnapshot]
    public var openFlows: Int
}
