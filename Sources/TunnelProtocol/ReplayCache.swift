import Synchronization

/// Nonces seen within the timestamp window, in fixed memory. Shared by all workers (a
/// per-worker cache would let a replay through on another worker), hence the lock.
///
/// A nonce with timestamp `t` could pass the window check until `t + window`; it is kept
/// at least that long. Entries leave in arrival order; when all `capacity` entries are
/// still needed, new requests are refused (Resource Exceeded) rather than forgetting a
/// nonce early, which would reopen the replay window. Admission rate before refusal:
/// about capacity / (2 × window) new connections per second.
public final class ReplayCache: Sendable {
    public enum Outcome: Sendable, Equatable {
        case fresh, replayed, full
    }

    public let capacity: Int
    /// Seconds a timestamp may differ from the server's clock, either way.
    public let window: UInt64

    private struct State {
        var seen: Set<Nonce>
        // Ring of (nonce, expiry) in arrival order.
        var nonces: [Nonce]
        var expiries: [UInt64]
        var head = 0
        var count = 0
    }
    private let state: Mutex<State>

    /// The defaults hold ~4 MB and admit ~1000 new tunnel connections per second.
    public init(capacity: Int = 65_536, window: UInt64 = 30) {
        precondition(capacity > 0, "replay cache capacity must be positive")
        self.capacity = capacity
        self.window = window
        var seen = Set<Nonce>()
        seen.reserveCapacity(capacity)  // never rehashes, never grows
        state = Mutex(State(seen: seen,
                            nonces: [Nonce](repeating: Nonce(high: 0, low: 0), count: capacity),
                            expiries: [UInt64](repeating: 0, count: capacity)))
    }

    /// Remembers `nonce` unless it is already known. Call only for requests whose MAC checked.
    public func insert(_ nonce: Nonce, timestamp: UInt64, now: UInt64) -> Outcome {
        let capacity = self.capacity
        let (expiry, overflow) = timestamp.addingReportingOverflow(window)
        let expires = overflow ? UInt64.max : expiry
        return state.withLock { s in
            while s.count > 0, s.expiries[s.head] < now {
                s.seen.remove(s.nonces[s.head])
                s.head = (s.head + 1) % capacity
                s.count -= 1
            }
            if s.seen.contains(nonce) { return .replayed }
            if s.count == capacity { return .full }
            let tail = (s.head + s.count) % capacity
            s.nonces[tail] = nonce
            s.expiries[tail] = expires
            s.count += 1
            s.seen.insert(nonce)
            return .fresh
        }
    }

    /// Nonces currently remembered.
    public var count: Int { state.withLock { $0.count } }
}
