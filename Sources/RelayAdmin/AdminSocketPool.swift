#if canImport(Glibc)
import Glibc
#endif
import FlyingSocks
import Synchronization

/// The HTTP server's socket pool with a bound on connections waiting for request bytes
/// (an unfinished request, or an idle keep-alive). FlyingFox itself has no such limit: a
/// client that opens connections and never finishes a request would hold descriptors of
/// the relay's budget without end. Past `limit` a connection that would wait is closed at
/// once (the server sees a read error and drops it). The listening socket is not counted.
struct AdminSocketPool: AsyncSocketPool {
    final class Counts: Sendable {
        let waiting = Atomic<Int>(0)
        let refused = Atomic<Int>(0)
        /// The listening socket, once recognised (SO_ACCEPTCONN), so it is asked once.
        let listener = Atomic<Int32>(-1)
    }

    let inner: any AsyncSocketPool
    let limit: Int
    let counts = Counts()

    func prepare() async throws { try await inner.prepare() }

    func run() async throws { try await inner.run() }

    func suspendSocket(_ socket: FlyingSocks.Socket, untilReadyFor events: FlyingSocks.Socket.Events) async throws {
        let fd = socket.file.rawValue
        guard events.contains(.read), !isListener(fd) else {
            return try await inner.suspendSocket(socket, untilReadyFor: events)
        }
        if counts.waiting.add(1, ordering: .relaxed).newValue > limit {
            counts.waiting.subtract(1, ordering: .relaxed)
            counts.refused.add(1, ordering: .relaxed)
            throw SocketError.disconnected
        }
        defer { counts.waiting.subtract(1, ordering: .relaxed) }
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
