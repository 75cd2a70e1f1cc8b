#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import MPTCPSocket
import Testing
@testable import RelayCore

/// Worker.checkStall on a real worker and loopback sockets: the two hangs it looks for are
/// staged exactly (the kernel's side of each is real), and a healthy idle connection is left alone.
@Suite struct StallWatchdogTests {
    /// A relayed connection gone quiet: both directions wait for input.
    static func quietConnection() throws -> (WorkerUnderTest, LoopbackPair, Int32, LoopbackListener) {
        let upstream = try LoopbackListener(), front = try LoopbackListener()
        let w = try WorkerUnderTest([TrustRegressionTests.forward(upstream.address)])
        let pair = try w.connectedClient(through: front)
        let server = try #require(upstream.accept())
        try #require(w.slot0.pointee.up.busy && w.slot0.pointee.down.busy, "both directions should poll")
        return (w, pair, server, front)
    }

    /// The up direction's poll, withdrawn from the kernel without the worker seeing it go.
    static func withdrawUpPoll(_ w: WorkerUnderTest) throws -> OperationToken {
        let token = OperationToken(.pollIn, index: 0, direction: 0, generation: w.slot0.pointee.generation)
        w.worker.ring.cancel(userData: token.raw, userData: OperationToken(.cancel).raw)
        w.dropping = { $0 == token }
        try w.turn()
        w.dropping = nil
        return token
    }

    /// Sends `text` from the client, turns the worker, and returns what reached the server.
    static func relay(_ text: String, _ w: WorkerUnderTest, _ pair: LoopbackPair, _ server: Int32) throws -> String {
        _ = text.withCString { send(pair.client, $0, strlen($0), 0) }
        try w.turn()
        var got: [UInt8] = []
        _ = drain(server, into: &got)
        return String(decoding: got, as: UTF8.self)
    }

    /// Five seconds later, as the tick would see it.
    static func silence(_ w: WorkerUnderTest) {
        w.worker.now = w.slot0.pointee.lastActive + Worker.stallCheckAfter + 1_000_000_000
        w.worker.checkStall(0)
    }

    @Test func aQuietHealthyConnectionIsLeftAlone() throws {
        let (w, pair, server, _) = try Self.quietConnection()
        defer { close(server) }
        let pending = w.slot0.pointee.pending
        Self.silence(w)
        #expect(w.slot0.pointee.pending == pending, "no operation added or cancelled")
        #expect(!w.log.all.contains { $0.contains("lost wake-up") || $0.contains("nothing in flight") }, "\(w.log.all)")
        #expect(try Self.relay("still fine", w, pair, server) == "still fine")
    }

    /// The kernel's poll watches something that never fires while the client's bytes wait:
    /// a lost wake-up. The watchdog sees the bytes, cancels the poll, and the direction reads.
    @Test func bytesWaitingUnderAnArmedPollAreRead() throws {
        let (w, pair, server, _) = try Self.quietConnection()
        defer { close(server) }
        let token = try Self.withdrawUpPoll(w)
        var silent: [Int32] = [-1, -1]
        try #require(pipe(&silent) == 0)
        defer { close(silent[0]); close(silent[1]) }
        w.worker.ring.poll(silent[0], events: UInt32(POLLIN), userData: token.raw)  // the worker's token, a poll that never fires
        #expect(try Self.relay("lost", w, pair, server) == "", "the staged wake-up was not lost")
        Self.silence(w)
        #expect(w.log.all.contains { $0.contains("4 byte(s) waited") && $0.contains("lost wake-up") }, "\(w.log.all)")
        try w.turn()
        var got: [UInt8] = []
        _ = drain(server, into: &got)
        #expect(String(decoding: got, as: UTF8.self) == "lost")
    }

    /// A relay fault stands in: the direction's poll is gone and nothing says so (not busy,
    /// nothing pending). The watchdog drives it again.
    @Test func aDirectionNobodyDrivesIsDrivenAgain() throws {
        let (w, pair, server, _) = try Self.quietConnection()
        defer { close(server) }
        _ = try Self.withdrawUpPoll(w)
        w.slot0.pointee.up.busy = false
        w.slot0.pointee.pending -= 1
        #expect(try Self.relay("stuck", w, pair, server) == "", "nothing should drive the direction")
        Self.silence(w)
        #expect(w.log.all.contains { $0.contains("client->upstream direction had nothing in flight") }, "\(w.log.all)")
        try w.turn()
        var got: [UInt8] = []
        _ = drain(server, into: &got)
        #expect(String(decoding: got, as: UTF8.self) == "stuck")
    }
}

/// The idle timeout on a connection whose bytes are not all delivered: the relay holds none,
/// but its upstream socket still has unacknowledged ones (the peer's window is shut, as a
/// dead link leaves it). A clean FIN would pass the stream on as whole; it must be a reset.
@Suite struct IdleTimeoutTests {
    @Test func bytesStillInFlightMakeTheIdleTimeoutAReset() throws {
        let upstream = try LoopbackListener(), front = try LoopbackListener()
        var small: Int32 = 2048
        setsockopt(upstream.fd, SOL_SOCKET, SO_RCVBUF, &small, socklen_t(MemoryLayout<Int32>.size))
        let w = try WorkerUnderTest([TrustRegressionTests.forward(upstream.address)]) { $0.idleTimeout = 60 }
        let pair = try w.connectedClient(through: front)
        let server = try #require(upstream.accept())
        defer { close(server) }
        // More than the server's shut window takes, less than the relay's socket buffer does.
        let payload = [UInt8](repeating: 7, count: 12_000)
        _ = payload.withUnsafeBytes { send(pair.client, $0.baseAddress, $0.count, 0) }
        try w.turn(until: { w.slot0.pointee.up.bytes == 12_000 && !w.slot0.pointee.holdsBytes })
        try #require(!w.slot0.pointee.holdsBytes, "the relay should hold nothing: the socket has the bytes")
        try #require(cnet_bytes_unsent(w.slot0.pointee.upstream) > 0, "the upstream socket should have unacknowledged bytes")
        w.worker.now = w.slot0.pointee.lastActive + 61_000_000_000
        w.worker.tick()
        try w.turn(until: { w.slot0.pointee.phase == .free })
        try w.turn()  // the closes go out with the next submission
        var got: [UInt8] = []
        var end = StreamEnd.open
        for _ in 0..<50 where end == .open {
            end = drain(server, into: &got)
            if end == .open { usleep(20_000) }
        }
        #expect(end == .reset, "the server saw \(end) after \(got.count) of 12000 bytes")
        #expect(w.log.all.contains { $0.contains("idle timeout") }, "\(w.log.all)")
    }
}
