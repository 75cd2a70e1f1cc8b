#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket
import TunnelProtocol

/// A connection slot's lifecycle. Every phase change goes through `Connection.move(_:)`,
/// so the legal paths can be read in one switch:
///
///     free --accept--> readingHeader (tunnel server) --headerComplete--> connecting
///     free --accept--> connecting --connected--> relaying
///     relaying --redial--> connecting (a tunnel server refused; another is tried)
///     readingHeader | connecting | relaying --close--> closing --drained--> free
enum Phase: Equatable { case free, readingHeader, connecting, relaying, closing }

enum LifecycleEvent: Equatable {
    /// A client was accepted; a tunnel server must first read its header.
    case accept(readsHeader: Bool)
    case headerComplete
    /// The upstream connect (or, after a failure, the next address's) is submitted again.
    case redial
    case connected
    /// Something ended the connection; sockets close once no operation names the slot.
    case close
    /// No operation names the slot any more: it can be reused.
    case drained
}

enum LifecycleAction: Equatable {
    case enter(Phase)
    /// A repeated or late event with nothing left to do (a second close, say).
    case ignore
    case invalid
}

extension Phase {
    /// The whole lifecycle: (phase, event) -> what to do.
    func on(_ event: LifecycleEvent) -> LifecycleAction {
        switch (self, event) {
        case (.free, .accept(let readsHeader)): return .enter(readsHeader ? .readingHeader : .connecting)
        case (.readingHeader, .headerComplete): return .enter(.connecting)
        case (.connecting, .redial): return .enter(.connecting)
        // A tunnel gateway whose server refused before the client was sent anything dials
        // another server (Worker+Tunnel retryOnAnotherServer).
        case (.relaying, .redial): return .enter(.connecting)
        case (.connecting, .connected): return .enter(.relaying)
        case (.readingHeader, .close), (.connecting, .close), (.relaying, .close): return .enter(.closing)
        case (.closing, .close), (.free, .close): return .ignore
        case (.closing, .drained): return .enter(.free)
        default: return .invalid
        }
    }
}

struct Connection {
    private(set) var phase = Phase.free
    /// Bumped each time the slot is released: an operation token carries the generation it
    /// was submitted under, so a completion for an earlier occupant is recognised and dropped.
    var generation: UInt32 = 0
    /// A free slot reclaimed with operations in flight: completions still to come for its
    /// previous occupant (generation - 1) before the slot may be reused.
    var strays: Int32 = 0
    var sequence: UInt64 = 0
    /// The listener record the connection was accepted under; its settings never change
    /// (a reload that changes them makes a new record), so neither does the connection's mode.
    var listener: Int = 0
    var client: Int32 = -1
    var upstream: Int32 = -1
    var upstreamProtocol = StreamProtocol.tcp
    var status = MPTCPStatus.plainTCP
    /// Operations in flight that name this slot; the slot is reused only at zero.
    var pending: Int32 = 0
    var openedAt: Int64 = 0
    var lastActive: Int64 = 0
    /// The `lastActive` of the silence Worker.checkStall last looked at (once per silence).
    var stallCheckedAt: Int64 = 0
    /// When closing began; a slot whose operations never drain is reclaimed after a deadline.
    var closingSince: Int64 = 0
    var reason = CloseReason.completed
    var resetOnClose = false
    /// The upstream (or tunnel) connected: the close line reports the MPTCP outcome.
    var relayed = false
    /// Closed without a log line of its own.
    var quietClose = false
    /// Counted against the tunnel server's pre-authentication limits while reading a header.
    var holdsHeaderBudget = false
    /// The settings the connection was accepted under (a reload changes them for later
    /// connections only): idle limit, tunnel header deadline, tunnel reply deadline (ns),
    /// and whether the upstream was asked for MPTCP (a redial asks the same).
    var idleLimit = Int64.max
    var headerLimit = Int64.max
    var replyLimit = Int64.max
    var wantsMPTCP = false
    /// Forward mode with a host name: which of the resolved addresses is being tried.
    var upstreamAttempt = 0
    /// When the upstream connect was submitted (precise monotonic ns), for the latency metric.
    var dialedAt: Int64 = 0
    /// Subflows of the MPTCP side, read when the first direction ends (before shutdowns
    /// start closing them); 0 when not read.
    var subflows = 0
    /// MPTCP_INFO was read (Worker.recordSubflows): once per connection, at the first EOF,
    /// the last moment its subflows are surely all there. A fallback after that moment (rare:
    /// MP_FAIL on a half-closed connection) is not counted as `mptcp_lost`.
    var mptcpRead = false
    /// It said the connection fell back to TCP after negotiating MPTCP.
    var mptcpLost = false
    var peer = sockaddr_storage()
    var target = sockaddr_storage()
    var targetLength: UInt32 = 0
    var nextFree: Int32 = -1
    /// Tunnel: where the client wants to go (the header's Connect TLV, or the intercepted
    /// original destination on the gateway).
    var destination = sockaddr_storage()
    /// Tunnel server: the key the header named, and its slot in TunnelKeyAccounts (-1: none),
    /// given back at finish.
    var keyName: KeyName? = nil
    var keySlot: Int32 = -1
    /// Tunnel gateway: the server (index into the listener's `servers`) dialled now, and a bit
    /// per server tried already, so a refusal retries on another one and never loops.
    var server = 0
    var serversTried: UInt32 = 0
    /// Tunnel server: bytes of the request header read so far (into the up direction's buffer).
    var headerFill = 0
    var up = Direction()    // client -> upstream
    var down = Direction()  // upstream -> client

    /// Applies a lifecycle event; false when there is nothing to do. An illegal transition
    /// is a bug in the relay, and it stops the process in release builds too: carrying on
    /// with a connection in a state nobody designed is worse (its descriptors, pipes and
    /// pending count would be anybody's guess).
    @discardableResult
    mutating func move(_ event: LifecycleEvent) -> Bool {
        switch phase.on(event) {
        case .enter(let next):
            phase = next
            return true
        case .ignore:
            return false
        case .invalid:
            preconditionFailure("illegal connection transition: \(phase) on \(event)")
        }
    }

    /// The tunnel server's reply is later than the connect timeout this connection was
    /// accepted under, counted from its latest dial (`now`: precise monotonic ns).
    func replyOverdue(at now: Int64) -> Bool { now - dialedAt > replyLimit }

    /// Bytes read from one side and not yet written to the other.
    var holdsBytes: Bool { up.holdsBytes || down.holdsBytes }
}
