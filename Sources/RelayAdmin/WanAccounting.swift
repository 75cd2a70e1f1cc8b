import Synchronization

/// Per-interface byte totals from the subflows of open connections: each read adds what
/// every subflow moved since it was last read, so the totals only grow while connections
/// come and go (what a subflow moved after its last read and before it closed is not counted).
/// A connection left out of a read (over the workers' detail budget) keeps its last-seen
/// subflows until a later read covers it.
///
/// Reads can finish out of order (two requests at once): a read older than the last one
/// folded in is ignored, and a subflow's last-seen count never goes back, so no byte is
/// counted twice.
final class WanAccounting: Sendable {
    private struct Subflow { let interface: String; var sent: UInt64; var received: UInt64 }
    private struct State {
        /// Connection id -> "local|remote" -> the subflow as last read.
        var connections: [String: [String: Subflow]] = [:]
        var totals: [String: (sent: UInt64, received: UInt64)] = [:]
        /// The newest read folded in so far.
        var lastSequence: UInt64 = 0
    }
    private let state = Mutex(State())

    /// Folds in one read's connections; returns every interface ever seen, with the
    /// subflows of open connections on it now (as last read). `sequence` numbers reads in
    /// the order they were asked for (nil: in call order).
    func update(_ connections: [StatusDocument.Connection], sequence: UInt64? = nil) -> [StatusDocument.Wan] {
        state.withLock { s in
            if let sequence {
                // An older picture than one already taken: folding it in would forget (and
                // later count again) what the newer one saw.
                guard sequence > s.lastSequence else { return Self.wans(s) }
                s.lastSequence = sequence
            }
            var next: [String: [String: Subflow]] = [:]
            next.reserveCapacity(connections.count)
            for c in connections {
                let before = s.connections[c.id]
                guard let subflows = c.subflows else {
                    if let before { next[c.id] = before }
                    continue
                }
                var now: [String: Subflow] = [:]
                for f in subflows {
                    guard let interface = f.interface else { continue }
                    let key = (f.local ?? "") + "|" + (f.remote ?? "")
                    let last = before?[key] ?? Subflow(interface: interface, sent: 0, received: 0)
                    // A count below the last seen is an older reading, not a new subflow: keep the higher.
                    let read = Subflow(interface: interface, sent: max(f.bytesSent ?? 0, last.sent),
                                       received: max(f.bytesReceived ?? 0, last.received))
                    var total = s.totals[interface] ?? (0, 0)
                    total.sent += read.sent - last.sent
                    total.received += read.received - last.received
                    s.totals[interface] = total
                    now[key] = read
                }
                next[c.id] = now
            }
            s.connections = next
            return Self.wans(s)
        }
    }

    /// The totals as of the last read, without a new one (what /metrics shows).
    func current() -> [StatusDocument.Wan] {
        state.withLock { Self.wans($0) }
    }

    private static func wans(_ s: State) -> [StatusDocument.Wan] {
        var subflowCount: [String: Int] = [:]
        for subflows in s.connections.values {
            for f in subflows.values { subflowCount[f.interface, default: 0] += 1 }
        }
        return s.totals.keys.sorted().map { name in
            StatusDocument.Wan(interface: name, subflows: subflowCount[name] ?? 0,
                               bytesSent: s.totals[name]!.sent, bytesReceived: s.totals[name]!.received)
        }
    }
}
