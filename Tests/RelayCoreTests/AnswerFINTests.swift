#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import RelayCore

/// The look-ahead on real sockets: a server that answers and closes gets its answer and its
/// FIN to the client in one segment, in the same worker turn (ConnectionStepTests drive the
/// same steps against a scripted kernel).
@Suite struct AnswerFINTests {
    /// The uapi struct tcp_info (232 bytes; Glibc's stops short of tcpi_segs_in).
    static func tcpInfo(_ fd: Int32) -> [UInt8] {
        var info = [UInt8](repeating: 0, count: 232)
        var length = socklen_t(info.count)
        return getsockopt(fd, Int32(IPPROTO_TCP), TCP_INFO, &info, &length) == 0 ? info : []
    }

    /// tcpi_segs_in: segments received.
    static func segmentsIn(_ fd: Int32) -> UInt32 {
        let info = tcpInfo(fd)
        return info.isEmpty ? 0 : info.withUnsafeBytes { $0.load(fromByteOffset: 140, as: UInt32.self) }
    }

    /// tcpi_state (TCP_FIN_WAIT2 is 5).
    static func state(_ fd: Int32) -> UInt8 { tcpInfo(fd).first ?? 0 }

    @Test func anAnswerAndItsFINReachTheClientInOneSegment() throws {
        let upstream = try LoopbackListener(), front = try LoopbackListener()
        let w = try WorkerUnderTest([TrustRegressionTests.forward(upstream.address)])
        let pair = try w.connectedClient(through: front)
        let server = try #require(upstream.accept())
        defer { close(server) }
        _ = "GET /".withCString { send(pair.client, $0, 5, 0) }
        var request: [UInt8] = []
        try w.turn(until: { _ = drain(server, into: &request); return request.count == 5 })
        try #require(request.count == 5)
        try w.turn(until: { w.slot0.pointee.down.busy })  // the poll on the upstream is armed

        // The server answers and closes before the worker looks: both wait in its socket.
        let answer = [UInt8]((0..<1200).map { UInt8(truncatingIfNeeded: $0 &* 7) })
        _ = answer.withUnsafeBytes { send(server, $0.baseAddress, $0.count, 0) }
        shutdown(server, Int32(SHUT_WR))
        // Under load loopback delivery may be left to ksoftirqd: wait until the relay's socket
        // has acknowledged the FIN (the server in FIN_WAIT2), so both are there to be read.
        for _ in 0..<200 where Self.state(server) != 5 { usleep(5000) }
        try #require(Self.state(server) == 5, "the FIN was not acknowledged")
        let before = Self.segmentsIn(pair.client)
        try w.turn()
        var got: [UInt8] = []
        #expect(drain(pair.client, into: &got) == .fin, "one turn passes on the answer and the FIN")
        #expect(got == answer)
        #expect(Self.segmentsIn(pair.client) - before == 1, "the FIN came in the answer's segment")
        #expect(w.slot0.pointee.down.finished)
    }
}
