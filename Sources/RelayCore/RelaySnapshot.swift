import MPTCPSocket
import Synchronization

/// One open connection as a worker saw it when it answered a snapshot request.
public struct ConnectionSnapshot: Sendable {
    public struct Subflow: Sendable {
        public var local: SocketAddress?
        public var remote: SocketAddress?
        public var rttMicroseconds: UInt32?
        /// Bytes acknowledged by the peer (sent) and received, on this subflow.
        public var bytesSent: UInt64?
        public var bytesReceived: UInt64?
    }

    /// Worker and sequence: `id` is "worker.sequence", as in the log lines (conn=0.17).
    /// Kept as numbers so the worker formats no string per connection.
    public var worker: Int
    public var sequence: UInt64
    public var id: String { "\(worker).\(sequence)" }
    public var listener: SocketAddress
    public var mode: String
    public var client: SocketAddress?
    public var destination: SocketAddress?
    /// connecting, relaying, closing, reading-header.
    public var phase: String
    /// mptcp, or the fallback reason (see `MPTCPOutcome`); nil before the connect completes.
    public var mptcp: MPTCPOutcome?
    public var bytesUp: UInt64
    public var bytesDown: UInt64
    public var ageSeconds: Double
    /// Subflows of the MPTCP side; nil when not MPTCP or past the per-snapshot detail budget.
    public var subflows: [Subflow]?
    /// Tunnel server: the key id the gateway named (nil before its header checked out).
    public var key: String? = nil
    /// Tunnel gateway: the aggregation server the connection goes through.
    public var server: SocketAddress? = nil
}

/// How a connection's MPTCP side turned out: the outcome label of the metrics and the API.
public enum MPTCPOutcome: String, Sendable, CaseIterable {
    case mptcp
    /// The peer (or a middlebox) did not take MPTCP.
    case fallbackPeer = "fallback_peer"
    /// The kernel refused an MPTCP socket (net.mptcp.enabled=0).
    case fallbackKernel = "fallback_kernel"
    /// MPTCP was negotiated, then the connection fell back to TCP.
    case mptcpLost = "mptcp_lost"
    /// MPTCP was not wanted on this side (--no-mptcp).
    case disabled

    public init(_ status: MPTCPStatus, wanted: Bool) {
        switch status {
        case .active: self = .mptcp
        case .fallback: self = .fallbackPeer
        case .plainTCP: self = wanted ? .fallbackKernel : .disabled
        }
    }
}

/// What one worker reports: its open connections and its resources in use.
public struct WorkerSnapshot: Sendable {
    public var worker: Int
    public var openConnections: Int
    public var pipesInUse: Int
    /// Bytes of this worker's connections, closed and open, read at the same moment (so a
    /// connection that closes between two reads is counted once).
    public var bytesUp: UInt64
    public var bytesDown: UInt64
    public var connections: [ConnectionSnapshot]
    /// Connections whose subflows were not read (past the detail budget of this request).
    public var detailsOmitted: Int
}

/// A snapshot request on its way through the workers' mailboxes: each worker answers on
/// its own loop at its next wake; the requester is called once all have, or at the
/// deadline with what came (a stopping worker never answers).
public final class SnapshotRequest: Sendable {
    /// Most connections per worker whose subflows are read from the kernel per request
    /// (three getsockopt each): bounds the time a worker spends away from its ring.
    public let detailBudget: Int
    /// Where in each worker's list of MPTCP connections the budget starts: successive
    /// requests pass successive offsets, so over a few requests every connection is read.
    public let detailOffset: Int
    public let withConnections: Bool
    private struct State {
        var answers: [WorkerSnapshot] = []
        var expected: Int
        var done: (@Sendable ([WorkerSnapshot]) -> Void)?
    }
    private let state: Mutex<State>

    init(expected: Int, withConnections: Bool, detailBudget: Int, detailOffset: Int, done: @escaping @Sendable ([WorkerSnapshot]) -> Void) {
        self.withConnections = withConnections
        self.detailBudget = detailBudget
        self.detailOffset = detailOffset
        state = Mutex(State(expected: expected, done: done))
    }

    func answer(_ snapshot: WorkerSnapshot) {
        let finished: (([WorkerSnapshot]) -> Void, [WorkerSnapshot])? = state.withLock { s in
            s.answers.append(snapshot)
            guard s.answers.count >= s.expected, let done = s.done else { return nil }
            s.done = nil
            return (done, s.answers)
        }
        if let (done, answers) = finished { done(answers.sorted { $0.worker < $1.worker }) }
    }

    /// The deadline: answers so far, once.
    func expire() {
        let finished: (([WorkerSnapshot]) -> Void, [WorkerSnapshot])? = state.withLock { s in
            guard let done = s.done else { return nil }
            s.done = nil
            return (done, s.answers)
        }
        if let (done, answers) = finished { done(answers.sorted { $0.worker < $1.worker }) }
    }
}
