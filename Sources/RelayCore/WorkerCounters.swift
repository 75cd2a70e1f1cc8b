import Synchronization

/// Counters a worker writes and the control thread reads (status, metrics, tests).
/// Each worker has its own instance, so writers never contend; relaxed atomics suffice.
public final class WorkerCounters: Sendable {
    public enum Name: CaseIterable, Sendable {
        case accepted, closed, connectFailures, mptcpUpstreams, fallbackUpstreams, acceptPauses, bytesUp, bytesDown, refused, preAuthRefused
        /// Tunnel server: health pings answered. Gateway: connections moved to another server
        /// after one refused or failed before the client saw anything.
        case pings, serverRetries
    }

    private let accepted = Atomic<UInt64>(0)
    private let closed = Atomic<UInt64>(0)
    private let connectFailures = Atomic<UInt64>(0)
    private let mptcpUpstreams = Atomic<UInt64>(0)
    private let fallbackUpstreams = Atomic<UInt64>(0)
    private let acceptPauses = Atomic<UInt64>(0)
    private let bytesUp = Atomic<UInt64>(0)
    private let bytesDown = Atomic<UInt64>(0)
    private let refused = Atomic<UInt64>(0)
    private let preAuthRefused = Atomic<UInt64>(0)
    private let pings = Atomic<UInt64>(0)
    private let serverRetries = Atomic<UInt64>(0)

    /// Live counters per listener record of this worker (one per record ever made).
    private let records = Mutex<[ListenerCounters]>([])

    public init() {}

    /// A listener record's counters; the lock is taken at start and at reloads only.
    /// Records with the same labels on this worker share one (this worker alone writes it),
    /// so reloads do not grow the list.
    func register(listener: String, mode: String) -> ListenerCounters {
        records.withLock { list in
            if let known = list.first(where: { $0.listener == listener && $0.mode == mode }) { return known }
            let counters = ListenerCounters(listener: listener, mode: mode)
            list.append(counters)
            return counters
        }
    }

    /// The counters of each listener record, open connections' bytes included (read at scrape time).
    public var listenerCounters: [ListenerCounters] { records.withLock { $0 } }

    public func add(_ name: Name, _ value: UInt64) {
        switch name {
        case .accepted: accepted.add(value, ordering: .relaxed)
        case .closed: closed.add(value, ordering: .relaxed)
        case .connectFailures: connectFailures.add(value, ordering: .relaxed)
        case .mptcpUpstreams: mptcpUpstreams.add(value, ordering: .relaxed)
        case .fallbackUpstreams: fallbackUpstreams.add(value, ordering: .relaxed)
        case .acceptPauses: acceptPauses.add(value, ordering: .relaxed)
        case .bytesUp: bytesUp.add(value, ordering: .relaxed)
        case .bytesDown: bytesDown.add(value, ordering: .relaxed)
        case .refused: refused.add(value, ordering: .relaxed)
        case .preAuthRefused: preAuthRefused.add(value, ordering: .relaxed)
        case .pings: pings.add(value, ordering: .relaxed)
        case .serverRetries: serverRetries.add(value, ordering: .relaxed)
        }
    }

    public func value(_ name: Name) -> UInt64 {
        switch name {
        case .accepted: return accepted.load(ordering: .relaxed)
        case .closed: return closed.load(ordering: .relaxed)
        case .connectFailures: return connectFailures.load(ordering: .relaxed)
        case .mptcpUpstreams: return mptcpUpstreams.load(ordering: .relaxed)
        case .fallbackUpstreams: return fallbackUpstreams.load(ordering: .relaxed)
        case .acceptPauses: return acceptPauses.load(ordering: .relaxed)
        case .bytesUp: return bytesUp.load(ordering: .relaxed)
        case .bytesDown: return bytesDown.load(ordering: .relaxed)
        case .refused: return refused.load(ordering: .relaxed)
        case .preAuthRefused: return preAuthRefused.load(ordering: .relaxed)
        case .pings: return pings.load(ordering: .relaxed)
        case .serverRetries: return serverRetries.load(ordering: .relaxed)
        }
    }
}
