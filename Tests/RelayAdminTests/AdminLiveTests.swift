#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import MPTCPSocket
@testable import RelayAdmin
import RelayCore
import Testing

/// A real relay and its admin listener in this process, on loopback (issue 24, findings 1
/// and 2): what a scrape shows during an upload, and what a rebinding page gets.
@Suite(.serialized) struct AdminLiveTests {
    /// A port nothing listens on now (bound, then released).
    static func freePort() throws -> UInt16 {
        let fd = try Socket.listen(on: SocketAddress(host: "127.0.0.1", port: 0)!, backlog: 1, reusePort: false)
        defer { try? fd.close() }
        return try #require(try Socket.localAddress(fd)).port
    }

    /// One HTTP/1.1 request on a fresh connection: status code and body.
    static func get(_ port: UInt16, _ path: String, host: String) throws -> (Int, String) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        let rc = SocketAddress(host: "127.0.0.1", port: port)!.withSockaddr { connect(fd, $0, $1) }
        try #require(rc == 0)
        let request = Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8)
        _ = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &chunk, chunk.count, 0)
            if n <= 0 { break }
            response += chunk[0..<n]
        }
        let text = String(decoding: response, as: UTF8.self)
        let status = Int(text.split(separator: " ").dropFirst().first ?? "") ?? 0
        let body = text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        return (status, body)
    }

    static func value(_ metrics: String, _ name: String, containing label: String) -> Double {
        metrics.split(separator: "\n").filter { $0.hasPrefix(name + "{") && $0.contains(label) }
            .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
    }

    @Test func scrapesSeeAnOpenUploadAndRebindingPagesAreRefused() throws {
        // Upstream: accepts one connection and reads everything into the void.
        let upstream = try Socket.listen(on: SocketAddress(host: "127.0.0.1", port: 0)!, backlog: 4, reusePort: false)
        let upstreamAddress = try #require(try Socket.localAddress(upstream))
        let upstreamFD = upstream.rawValue
        let reader = Thread {
            var pfd = pollfd(fd: upstreamFD, events: Int16(POLLIN), revents: 0)
            guard poll(&pfd, 1, 10_000) == 1 else { return }
            let s = accept(upstreamFD, nil, nil)
            var buffer = [UInt8](repeating: 0, count: 65536)
            while recv(s, &buffer, buffer.count, 0) > 0 {}
            close(s)
        }
        reader.start()
        defer { try? upstream.close() }

        let relayPort = try Self.freePort(), adminPort = try Self.freePort()
        var settings = RelaySettings(listeners: [ListenerSettings(address: SocketAddress(host: "127.0.0.1", port: relayPort)!,
                                                                  mode: .forward(upstream: Upstream(upstreamAddress)))])
        settings.workers = 1
        settings.upstreamMPTCP = false
        let relay = Relay(settings: settings, logger: Logger(label: "admin-live"))
        try relay.start()
        let admin = try AdminServer(settings: AdminSettings(listen: SocketAddress(host: "127.0.0.1", port: adminPort)!), relay: relay,
                                    uplinks: nil, bootstrapMetrics: false)
        try admin.start()
        defer {
            admin.stop()
            relay.requestStop(immediately: true)
            _ = relay.runUntilStopped()
        }

        // An upload that stays open while it is scraped.
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(client) }
        let rc = SocketAddress(host: "127.0.0.1", port: relayPort)!.withSockaddr { connect(client, $0, $1) }
        try #require(rc == 0)
        let chunk = [UInt8](repeating: 0x5a, count: 65536)
        var sent = 0
        while sent < 4_000_000 {
            let n = chunk.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            try #require(n > 0)
            sent += n
        }
        var up = 0.0
        var metrics = ""
        for _ in 0..<50 {
            (_, metrics) = try Self.get(adminPort, "/metrics", host: "127.0.0.1:\(adminPort)")
            up = Self.value(metrics, "mptcp_relay_bytes_total", containing: "direction=\"up\"")
            // Whatever is still in socket buffers has not been relayed yet; most has.
            if up >= Double(sent) - 2_000_000 { break }
            usleep(100_000)
        }
        print("admin: \(sent) bytes sent on an open connection; /metrics says \(Int(up)) up")
        #expect(up >= Double(sent) - 2_000_000 && up <= Double(sent), "/metrics bytes up \(up) during an upload of \(sent):\n\(metrics)")

        let (status, body) = try Self.get(adminPort, "/api/connections", host: "rebind.attacker.example:\(adminPort)")
        #expect(status == 421, "a rebinding page got \(status): \(body.prefix(200))")
        #expect(!body.contains("127.0.0.1:\(relayPort)"))
        let (localStatus, _) = try Self.get(adminPort, "/api/connections", host: "localhost:\(adminPort)")
        #expect(localStatus == 200)

        // Connections that never send a request: past the cap, each is closed by the server
        // instead of holding a descriptor until the client goes.
        var idle: [Int32] = []
        defer { for fd in idle { close(fd) } }
        for _ in 0..<(AdminServer.maxWaitingConnections + 16) {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            _ = SocketAddress(host: "127.0.0.1", port: adminPort)!.withSockaddr { connect(fd, $0, $1) }
            idle.append(fd)
        }
        var closedByServer = 0
        // Bounded wait, not a timing assertion: on a loaded machine accepting 80 takes a while.
        for _ in 0..<300 {
            closedByServer = idle.filter { fd in
                var byte: UInt8 = 0
                return recv(fd, &byte, 1, Int32(MSG_DONTWAIT | MSG_PEEK)) == 0
            }.count
            if closedByServer >= 16 { break }
            usleep(100_000)
        }
        let refused = admin.pool.counts.refused.load(ordering: .relaxed)
        #expect(closedByServer >= 16, "\(closedByServer) of \(idle.count) idle connections closed by the server (cap \(AdminServer.maxWaitingConnections), \(refused) refused by the pool, \(admin.pool.counts.waitingCount) waiting)")
        #expect(refused >= 16)
        // The idle ones lose their place to a real request: an operator is never locked out.
        let (afterFlood, _) = try Self.get(adminPort, "/api/connections", host: "127.0.0.1:\(adminPort)")
        #expect(afterFlood == 200, "a request after \(idle.count) idle connections got \(afterFlood)")
        let (literal, _) = try Self.get(adminPort, "/api/connections", host: "[::1]:8080")
        #expect(literal == 200, "an IP literal (a port forward) is never a rebinding name")
    }
}
