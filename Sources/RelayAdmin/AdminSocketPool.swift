#if canImport(Glibc)
import Glibc
#endif
import FlyingSocks
import Synchronization

/// The HTTP server's socket pool with a bound on connections waiting for request bytes
/// (an unfinished request, or an idle keep-alive). FlyingFox itself has no such limit: a
/// client that opens connections and never finishes a request would hold descriptors of
/// the relay's budget without end. A connection that has waited longer than `idleLimit` is
/// closed when another one arrives, and past `limit` the one waiting longest is: whoever
/// holds idle connections loses them to new ones, so an operator's request always gets in
/// (refusing the newcomer instead would let 64 idle sockets lock the dashboard out). The
/// listening socket is not counted.
struct AdminSocketPool: AsyncSocketPool {
    final class Counts: Sendable {
        /// Descriptors waiting for bytes, with when (CLOCK_MONOTONIC seconds) they began.
        let waiting = Mutex<[Int32: Double]>([:])
        let refused = Atomic<Int>(0)
        /// The listening socket, once recognised (SO_ACCEPTCONN), so it is asked once.
        let listener = Atomic<Int32>(-1)
        var waitingCount: Int { waiting.withLock { $0.count } }
    }

    let inner: any AsyncSocketPool
    let limit: Int
    var idleLimit: Double = 30
    let counts = Counts()

    func prepare() async throws { try await inner.prepare() }

    func run() async throws { try await inner.run() }

    func suspendSocket(_ socket: FlyingSocks.Socket, untilReadyFor events: FlyingSocks.Socket.Events) async throws {
        let fd = socket.file.rawValue
        guard events.contains(.read), !isListener(fd) else {
            return try await inner.suspendSocket(socket, untilReadyFor: events)
        }
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        let now = Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
        counts.waiting.withLock { waiting in
            var evict = waiting.filter { now - $0.value > idleLimit }.map(\.key)
            for victim in evict { waiting[victim] = nil }
            if waiting.count >= limit, let oldest = waiting.min(by: { $0.value < $1.value })?.key {
                waiting[oldest] = nil
                evict.append(oldest)
            }
            // Under the lock: a victim's owner removes it under the same lock before it can
            // close the descriptor, so the number cannot have been reused yet. The shutdown
            // wakes its read, and the server drops the connection.
            for victim in evict { shutdown(victim, Int32(SHUT_RDWR)) }
            counts.refused.add(evict.count, ordering: .relaxed)
            waiting[fd] = now
        }
        defer { counts.waiting.withLock { _ = $0.removeValue(forKey: fd) } }
        try await inner.suspendSocket(socket, untilReadyFor: events)
    }

    private func isListener(_ fd: Int32) -> Bool {
        let known = counts.listener.load(ordering: .relaxed)
        if known >= 0 { return fd == known }
        var value: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &length) == 0, value != 0 else { return false }
        counts.listener.store(fd, ordering: .relaxed)
        return true
    }
}
