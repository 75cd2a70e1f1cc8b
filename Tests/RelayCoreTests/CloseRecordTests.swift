#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import MPTCPSocket
import RelayLog
import Testing
import TunnelProtocol
@testable import RelayCore

/// Issue 25: the close line is a fixed-size record formatted on the log thread. Its text is
/// the line tests and operators grep, unchanged: these pin it for every route and reason.
@Suite struct CloseRecordTests {
    static func bytes(_ text: String) -> AddressBytes {
        var storage = sockaddr_storage()
        try! SocketAddress(parsing: text).write(to: &storage)
        return AddressBytes(&storage)
    }

    static func record(route: CloseRecord.Route = .upstream, cause: CloseCause = .completed) -> CloseRecord {
        CloseRecord(worker: 1, sequence: 42, route: route, client: bytes("192.0.2.1:50000"), target: bytes("[2001:db8::5]:443"),
                    destination: bytes("198.51.100.9:80"), key: nil, mptcp: .active, lost: false, cause: cause,
                    bytesUp: 1200, bytesDown: 1_048_576, nanoseconds: 1_234_567_890, subflows: 0)
    }

    static func text(_ record: CloseRecord, refusal: String? = nil) -> String {
        var line = LogLine()
        record.writeMessage(to: &line, refusal: refusal)
        return line.text
    }

    @Test func forwardLine() {
        #expect(Self.text(Self.record()) == "closed conn=1.42 client=192.0.2.1:50000 upstream=[2001:db8::5]:443 mptcp=yes done up=1200 down=1048576 ms=1234")
    }

    @Test func tunnelLinesAndTheirKey() {
        var server = Self.record(route: .tunnelServer)
        server.key = KeyName("site-berlin")
        #expect(Self.text(server) == "closed conn=1.42 tunnel key=site-berlin client=192.0.2.1:50000 destination=198.51.100.9:80 mptcp=yes done up=1200 down=1048576 ms=1234")
        server.key = nil
        #expect(Self.text(server).hasPrefix("closed conn=1.42 tunnel client=192.0.2.1:50000 destination="))
        #expect(Self.text(Self.record(route: .tunnelGateway)).hasPrefix("closed conn=1.42 client=192.0.2.1:50000 destination=198.51.100.9:80 via=[2001:db8::5]:443 mptcp=yes"))
    }

    @Test func unconnectedLostAndSubflows() {
        var r = Self.record(cause: .connectFailed(ECONNREFUSED))
        r.target = .none
        r.mptcp = nil
        #expect(Self.text(r) == "closed conn=1.42 client=192.0.2.1:50000 upstream=- upstream connect failed: Connection refused up=1200 down=1048576 ms=1234")
        r = Self.record()
        r.lost = true
        r.subflows = 2
        #expect(Self.text(r).hasSuffix("mptcp=lost (fell back to TCP after negotiating MPTCP) done up=1200 down=1048576 ms=1234 subflows=2"))
        r.mptcp = .plainTCP
        r.lost = false
        #expect(Self.text(r).contains(" mptcp=no (plain TCP: kernel refused MPTCP) done "))
    }

    /// Every reason reads as CloseReason.text always said it.
    @Test func reasonsKeepTheirWords() {
        let reasons: [(CloseReason, String)] = [
            (.completed, "done"), (.idleTimeout, "idle timeout"), (.connectTimeout, "upstream connect timed out"),
            (.resetByClient(ECONNRESET), "client error: Connection reset by peer"),
            (.resetByUpstream(EPIPE), "upstream error: Broken pipe"),
            (.resources(EMFILE), "out of resources: Too many open files"),
            (.refused("key k revoked"), "refused: key k revoked"), (.shutdown, "grace period over at shutdown"),
        ]
        for (reason, text) in reasons {
            #expect(reason.text == text)
            #expect(Self.text(Self.record(cause: reason.cause), refusal: reason.refusal).contains(" \(text) up="))
        }
        #expect(Set(reasons.map(\.0.cause.ordinal)).count == reasons.count)
    }

    /// Each reason keeps the `reason` label mptcp_relay_connections_closed_total always gave
    /// it (dashboards and alerts match these words): every case, spelled out.
    @Test func everyReasonKeepsItsMetricLabel() {
        let labels: [(CloseReason, String)] = [
            (.completed, "done"), (.idleTimeout, "idle_timeout"), (.connectFailed(ECONNREFUSED), "connect_failed"),
            (.connectTimeout, "connect_timeout"), (.resetByClient(ECONNRESET), "client_error"),
            (.resetByUpstream(EPIPE), "upstream_error"), (.refused("x"), "refused"), (.resources(EMFILE), "resources"),
            (.shutdown, "shutdown"),
        ]
        #expect(labels.count == CloseCause.count)
        for (reason, label) in labels {
            #expect(CloseCause.metricLabels[reason.cause.ordinal] == label, "\(reason)")
        }
        #expect(Set(labels.map(\.0.cause.ordinal)).count == CloseCause.count, "two reasons share a counter")
    }

    /// Records and text lines through one sink: the same line format, in the order logged, and
    /// a record under the handler's level is not written.
    @Test func recordsAndTextLinesShareTheFormatAndTheOrder() throws {
        var fds: [Int32] = [-1, -1]
        try #require(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let sink = LogSink(fd: fds[1], capacity: 1 << 16, shards: 2)
        var handler = BufferedLogHandler(label: "relay-test", sink: sink)
        handler.logLevel = .info
        let logger = Logger(label: "relay-test") { _ in handler }
        let records = handler.recordWriter(source: "RelayCore")
        logger.info("first")
        records.write(Self.record(), level: .info)
        records.write(Self.record(), level: .debug)
        records.write(Self.record(cause: .resetByClient(ECONNRESET)), level: .notice)
        logger.notice("last")
        sink.close()
        close(fds[1])
        let text = try #require(String(bytes: FileHandle(fileDescriptor: fds[0]).readDataToEndOfFile(), encoding: .utf8))
        let lines = text.split(separator: "\n").map(String.init)
        try #require(lines.count == 4, "\(lines)")
        let stamp = #"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4} "#
        #expect(lines[0].range(of: stamp + #"info relay-test: \[RelayCoreTests\] first$"#, options: .regularExpression) != nil, "\(lines[0])")
        #expect(lines[1].range(of: stamp + #"info relay-test: \[RelayCore\] closed conn=1\.42 client="#, options: .regularExpression) != nil, "\(lines[1])")
        #expect(lines[2].contains(" notice relay-test: [RelayCore] closed conn=1.42 ") && lines[2].contains(" client error: "))
        #expect(lines[3].hasSuffix(" notice relay-test: [RelayCoreTests] last"))
    }
}
