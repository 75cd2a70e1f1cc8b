import Synchronization

/// Per-interface byte totals from the subflows of open connections: each read adds what
/// every subflow moved since the previous read, so the totals only grow while connections
/// come and go (what a subflow moved after its last read and before it closed is not counted).
final class WanAccounting: Sendable {
    private struct Key: Hashable { let connection: String; let local: String; let remote: String }
    private struct Seen { var sent: UInt64; var received: UInt64 }
    private struct State {
        var seen: [Key: Seen] = [:]
        var totals: [String: (sent: UInt64, received: UInt64)] = [:]
    }
    private let state = Mutex(State())

    /// Folds in one snapshot's subflows; returns every interface ever seen, with its subflows now.
    func update(_ connections: [StatusDocument.Connection]) -> [StatusDocument.Wan] {
        state.withLock { s in
            var next: [Key: Seen] = [:]
            var subflowCount: [String: Int] = [:]
            for c in connections {
                for f in c.subflows ?? [] {
                    guard let interface = f.interface else { continue }
                    let key = Key(connection: c.id, local: f.local ?? "", remote: f.remote ?? "")
                    let now = Seen(sent: f.bytesSent ?? 0, received: f.bytesReceived ?? 0)
                    let before = s.seen[key] ?? Seen(sent: 0, received: 0)
                    var total = s.totals[interface] ?? (0, 0)
                    total.sent += now.sent >= before.sent ? now.sent - before.sent : 0
                    total.received += now.received >= before.received ? now.received - before.received : 0
                    s.totals[interface] = total
                    next[key] = now
                    subflowCount[interface, default: 0] += 1
                }
            }
            s.seen = next
            return s.totals.keys.sorted().map { name in
                StatusDocument.Wan(interface: name, subflows: subflowCount[name] ?? 0,
                                   bytesSent: s.totals[name]!.sent, bytesReceived: s.totals[name]!.received)
            }
        }
    }
}
