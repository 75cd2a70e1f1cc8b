import Synchronization

/// Per-interface byte totals from the subflows of open connections: each read adds what
/// every subflow moved since it was last read, so the totals only grow while connections
/// come and go (what a subflow moved after its last read and before it closed is not counted).
/// A connection left out of a read (over the workers' detail budget) keeps its last-seen
/// subflows until a later read covers it.
final class WanAccounting: Sendable {
    private struct Subflow { let interface: String; var sent: UInt64; var received: UInt64 }
    private struct State {
        /// Connection id -> "local|remote" -> the subflow as last read.
        var connections: [String: [String: Subflow]] = [:]
        var totals: [String: (sent: UInt64, received: UInt64)] = [:]
    }
    private let state = Mutex(State())

    /// Folds in one snapshot's connections; returns every interface ever seen, with the
    /// subflows of open connections on it now (as last read).
    func update(_ connections: [StatusDocument.Connection]) -> [StatusDocument.Wan] {
        state.withLock { s in
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
                    let read = Subflow(interface: interface, sent: f.bytesSent ?? 0, received: f.bytesReceived ?? 0)
                    let last = before?[key] ?? Subflow(interface: interface, sent: 0, received: 0)
                    var total = s.totals[interface] ?? (0, 0)
                    total.sent += read.sent >= last.sent ? read.sent - last.sent : 0
                    total.received += read.received >= last.received ? read.received - last.received : 0
                    s.totals[interface] = total
                    now[key] = read
                }
                next[c.id] = now
            }
            s.connections = next
            var subflowCount: [String: Int] = [:]
            for subflows in next.values {
                for f in subflows.values { subflowCount[f.interface, default: 0] += 1 }
            }
            return s.totals.keys.sorted().map { name in
                StatusDocument.Wan(interface: name, subflows: subflowCount[name] ?? 0,
                                   bytesSent: s.totals[name]!.sent, bytesReceived: s.totals[name]!.received)
            }
        }
    }
}
