import Foundation
import MPTCPSocket
@testable import RelayAdmin
import RelayCore
import Testing

@Suite struct AdminTokenTests {
    func file(_ text: String, mode: Int) throws -> String {
        let path = NSTemporaryDirectory() + "admin-token-" + UUID().uuidString
        try text.write(toFile: path, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
        return path
    }

    @Test func loadsA0600FileAndChecksTheBearerHeader() throws {
        let path = try file("0123456789abcdef0123456789abcdef\n", mode: 0o600)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let token = try AdminToken.load(path: path)
        #expect(token.accepts(authorization: "Bearer 0123456789abcdef0123456789abcdef"))
        #expect(!token.accepts(authorization: nil))
        #expect(!token.accepts(authorization: "0123456789abcdef0123456789abcdef"))
        #expect(!token.accepts(authorization: "Bearer 0123456789abcdef0123456789abcdeX"))
        #expect(!token.accepts(authorization: "Bearer 0123456789abcdef"))
    }

    @Test func refusesAFileOthersCanRead() throws {
        let path = try file("0123456789abcdef0123456789abcdef\n", mode: 0o644)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: AdminToken.LoadError.self) { try AdminToken.load(path: path) }
        do { _ = try AdminToken.load(path: path) } catch { #expect(error.description.contains("chmod 600")) }
    }

    @Test func refusesAShortTokenAndAMissingFile() throws {
        let path = try file("short\n", mode: 0o600)
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: AdminToken.LoadError.self) { try AdminToken.load(path: path) }
        #expect(throws: AdminToken.LoadError.self) { try AdminToken.load(path: "/nonexistent/admin.token") }
    }

    @Test func exposedListenerNeedsAToken() throws {
        #expect(AdminSettings(listen: try SocketAddress(parsing: "127.0.0.1:9180")).problem == nil)
        #expect(AdminSettings(listen: try SocketAddress(parsing: "[::1]:9180")).problem == nil)
        #expect(AdminSettings(listen: try SocketAddress(parsing: "0.0.0.0:9180")).problem != nil)
        #expect(AdminSettings(listen: try SocketAddress(parsing: "0.0.0.0:9180"), tokenFile: "/t").problem == nil)
    }
}

@Suite struct WanAccountingTests {
    func connection(_ id: String, _ subflows: [(String, UInt64, UInt64)]) -> StatusDocument.Connection {
        StatusDocument.Connection(id: id, listener: "l", mode: "forward", client: nil, destination: nil, phase: "relaying",
                                  mptcp: "mptcp", subflows: subflows.map { iface, sent, received in
                                      StatusDocument.Subflow(local: "10.0.0.1:\(sent)", remote: "r", interface: iface,
                                                             rttMs: nil, bytesSent: sent, bytesReceived: received)
                                  }.enumerated().map { i, f in var f = f; f.local = "\(iface(i)):1"; return f },
                                  bytesUp: 0, bytesDown: 0, ageSeconds: 0)
    }
    func iface(_ i: Int) -> String { "10.0.\(i).1" }

    @Test func totalsGrowByDeltasAndOutliveClosedConnections() {
        let wans = WanAccounting()
        var doc = wans.update([connection("0.1", [("wan1", 100, 10), ("wan2", 50, 5)])])
        #expect(doc.map(\.interface) == ["wan1", "wan2"])
        #expect(doc[0].bytesSent == 100 && doc[1].bytesSent == 50 && doc[0].subflows == 1)
        doc = wans.update([connection("0.1", [("wan1", 300, 10), ("wan2", 80, 5)]), connection("0.2", [("wan1", 7, 0)])])
        #expect(doc[0].bytesSent == 307 && doc[1].bytesSent == 80 && doc[0].subflows == 2)
        // 0.1 left out of a read (over the budget): nothing counted twice when it comes back.
        var omitted = connection("0.1", [])
        omitted.subflows = nil
        doc = wans.update([omitted, connection("0.2", [("wan1", 17, 0)])])
        #expect(doc[0].bytesSent == 317 && doc[0].subflows == 2 && doc[1].subflows == 1)
        doc = wans.update([connection("0.1", [("wan1", 310, 10), ("wan2", 90, 5)]), connection("0.2", [("wan1", 17, 0)])])
        #expect(doc[0].bytesSent == 327 && doc[1].bytesSent == 90)
        // Connections gone: totals stay, subflows drop to 0.
        doc = wans.update([])
        #expect(doc[0].bytesSent == 327 && doc[0].subflows == 0 && doc[1].bytesReceived == 5)
    }

    /// Finding 7 (issue 24): two reads finishing out of order; the older one's lower count
    /// must not become the baseline. Main counted 200 + 200 for a subflow that moved 300.
    @Test func anOlderReadArrivingLateCountsNothingTwice() {
        let wans = WanAccounting()
        _ = wans.update([connection("0.1", [("wan1", 200, 20)])])
        _ = wans.update([connection("0.1", [("wan1", 100, 10)])])  // read earlier, folded in later
        let doc = wans.update([connection("0.1", [("wan1", 300, 30)])])
        #expect(doc[0].bytesSent == 300 && doc[0].bytesReceived == 30, "sent \(doc[0].bytesSent), received \(doc[0].bytesReceived)")
    }

    /// Finding 7: an older read that predates a connection must not make the accounting
    /// forget it (and count its bytes again at the next read).
    @Test func readsAreFoldedInTheOrderTheyWereAskedFor() {
        let wans = WanAccounting()
        _ = wans.update([connection("0.1", [("wan1", 200, 0)])], sequence: 2)
        _ = wans.update([], sequence: 1)  // asked before 0.1 opened, answered last
        let doc = wans.update([connection("0.1", [("wan1", 300, 0)])], sequence: 3)
        #expect(doc[0].bytesSent == 300)
        #expect(wans.current()[0].bytesSent == 300)
    }
}

@Suite struct DashboardTests {
    /// No CDN or external asset: the page must work on a gateway without Internet.
    @Test func selfContained() {
        let html = Dashboard.html
        #expect(!html.contains("<script src"))
        #expect(!html.contains("<link"))
        #expect(!html.contains("@import"))
        let urls = html.components(separatedBy: "http").dropFirst().map { $0.prefix(30) }
        #expect(urls.allSatisfy { $0.hasPrefix("://www.w3.org/2000/svg") }, "external references: \(urls)")
    }

    /// Issue 24, finding 13 (the dashboard of issue 27 part 3 does this): without [[wan]] the
    /// uplink section is not drawn (main drew its header row alone), and the chart has rate
    /// and time axes.
    @Test func noEmptyUplinkTableAndAChartWithAxes() {
        let html = Dashboard.html
        #expect(html.contains("<section id=\"uplinks-section\" class=\"hidden\">"), "the uplink table shows before any uplink is known")
        #expect(html.contains("show(\"uplinks-section\", uplinks.length > 0)"))
        #expect(html.contains("rate-tick") && html.contains("time-tick"), "no labelled axes")
    }
}
