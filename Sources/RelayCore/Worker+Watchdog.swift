#if canImport(Glibc)
import Glibc
#endif
import CNetLinux

/// A connection that stopped moving is looked at once per silence, from the tick. Both
/// faults it looks for would otherwise hang a connection until its idle timeout, silently:
/// - a direction with nothing in flight that is not finished and not waiting for the other
///   one (a relay fault: nobody would ever drive it again);
/// - a direction waiting for input while its socket holds bytes (a wake-up lost between
///   the kernel and the ring: seen once in a soak, a tunnel socket with 81 KB queued and
///   its POLLIN armed; not reproduced since).
/// Each is logged, so that it is seen, and the direction is driven again.
extension Worker {
    /// Silence after which a relaying connection is looked at.
    static let stallCheckAfter: Int64 = 5_000_000_000

    func checkStall(_ slot: Int32) {
        let c = table[slot]
        guard c.pointee.phase == .relaying, now - c.pointee.lastActive > Self.stallCheckAfter,
              c.pointee.stallCheckedAt != c.pointee.lastActive else { return }
        c.pointee.stallCheckedAt = c.pointee.lastActive
        for d in 0..<2 {
            let dir = withDirection(c, d) { $0 }
            if dir.finished { continue }
            if !dir.busy {
                let step = dir.nextStep
                // `.wait` without an operation: it waits for the other direction (a held
                // request, a reply not yet asked for).
                if step == .wait { continue }
                logger.error("conn=\(index).\(c.pointee.sequence): the \(d == 0 ? "client->upstream" : "upstream->client") direction had nothing in flight for \(Self.stallCheckAfter / 1_000_000_000) s (next step \(step)); driving it again")
                pump(slot, d)
            } else if Self.waitsForInput(dir) {
                let waiting = cnet_bytes_readable(dir.source)
                guard waiting > 0 else { continue }
                logger.warning("conn=\(index).\(c.pointee.sequence): \(waiting) byte(s) waited \(Self.stallCheckAfter / 1_000_000_000) s on the \(d == 0 ? "client" : "upstream") socket while its poll for input was armed (a lost wake-up); looking again")
                // The cancelled poll completes like a fired one: the direction reads.
                ring.cancel(userData: OperationToken(.pollIn, index: slot, direction: d, generation: c.pointee.generation).raw,
                            userData: OperationToken(.cancel).raw)
            }
        }
    }

    /// A busy direction whose operation is a poll for input: nothing held to write, and
    /// either drained or reading a tunnel reply.
    static func waitsForInput(_ dir: Direction) -> Bool {
        if dir.holdsBytes { return false }
        if case .readingReply = dir.handshake { return true }
        return dir.drained
    }
}
