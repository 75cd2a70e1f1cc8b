import Foundation
import Testing
import TestSupport

extension Integration {
    /// TCP semantics carried across the relay: half-close, resets, failed and slow upstreams.
    @Suite("TCP semantics")
    struct Semantics {
        /// The client sends, shuts down its write side, and still reads the server's answer:
        /// the relay must pass the FIN on with shutdown(), not close the connection.
        @Test func halfCloseFromClient() async throws {
            try await withEnv { env in
                let server = try await env.peerServer("halfclose-server", ["--first", "client"], port: 7001, mptcp: true, log: "server.log")
                let relay = try await env.relay(listen: "\(env.tb.gwLanIP):7001", upstream: "\(env.tb.srvIP):7001")
                let r = try await env.lanPeer("halfclose-client", ["--host", env.tb.gwLanIP, "--port", "7001", "--first", "client"], timeout: 60)
                try #require(r.succeeded, "client failed: \(r.summary)\nrelay log:\n\(tail(relay.log))")
                let sent = try #require(line(r.stdout, prefix: "client sent "))
                #expect(line(r.stdout, prefix: "client reply ") == "got \(sent)", "client output:\n\(r.stdout)")
                #expect(await server.waitForExit(timeout: 10))
                #expect(server.log.contains("server received \(sent)"), "server log:\n\(server.log)")
                await relay.stop()
            }
        }

        /// The server sends and shuts down its write side; the client reads to EOF, then answers
        /// on the direction that is still open.
        @Test func halfCloseFromServer() async throws {
            try await withEnv { env in
                let server = try await env.peerServer("halfclose-server", ["--first", "server"], port: 7002, mptcp: true, log: "server.log")
                let relay = try await env.relay(listen: "\(env.tb.gwLanIP):7002", upstream: "\(env.tb.srvIP):7002")
                let r = try await env.lanPeer("halfclose-client", ["--host", env.tb.gwLanIP, "--port", "7002", "--first", "server"], timeout: 60)
                try #require(r.succeeded, "client failed: \(r.summary)\nrelay log:\n\(tail(relay.log))")
                let received = try #require(line(r.stdout, prefix: "client received "))
                #expect(await server.waitForExit(timeout: 10), "server never saw the client's EOF")
                #expect(server.log.contains("server sent \(received) then got: thanks \(received)"),
                        "server log:\n\(server.log)\nrelay log:\n\(tail(relay.log))")
                await relay.stop()
            }
        }

        /// The server aborts (RST); the client must see a reset, not a clean EOF.
        @Test func resetFromServerReachesClient() async throws {
            try await withEnv { env in
                _ = try await env.peerServer("rst-server", ["--abort"], port: 7003, mptcp: true, log: "server.log")
                let relay = try await env.relay(listen: "\(env.tb.gwLanIP):7003", upstream: "\(env.tb.srvIP):7003")
                let r = try await env.lanPeer("rst-client", ["--host", env.tb.gwLanIP, "--port", "7003"], timeout: 60)
                try #require(r.succeeded, "client failed: \(r.summary)")
                #expect(r.stdout.contains("client saw RESET"), "client output: \(r.stdout)\nrelay log:\n\(tail(relay.log))")
                await relay.stop()
            }
        }

        /// The client aborts (RST); the server must see a reset.
        @Test func resetFromClientReachesServer() async throws {
            try await withEnv { env in
                let server = try await env.peerServer("rst-server", [], port: 7004, mptcp: true, log: "server.log")
                let relay = try await env.relay(listen: "\(env.tb.gwLanIP):7004", upstream: "\(env.tb.srvIP):7004")
                let r = try await env.lanPeer("rst-client", ["--host", env.tb.gwLanIP, "--port", "7004", "--abort"], timeout: 60)
                try #require(r.succeeded, "client failed: \(r.summary)")
                #expect(await server.waitForExit(timeout: 15), "server still waiting: the reset never arrived")
                #expect(server.log.contains("server saw RESET"), "server log: \(server.log)\nrelay log:\n\(tail(relay.log))")
                await relay.stop()
            }
        }

        /// Nothing listens upstream: the client's connection is reset at once (the docs promise
        /// a reset, so a clean EOF would tell the client the upstream answered and closed), and
        /// the relay keeps running.
        @Test func failedUpstreamConnectClosesClient() async throws {
            try await withEnv { env in
                let relay = try await env.relay(listen: "\(env.tb.gwLanIP):7005", upstream: "\(env.tb.srvIP):7999")
                let r = try await env.lanPeer("probe-close", ["--host", env.tb.gwLanIP, "--port", "7005", "--timeout", "10"], timeout: 30)
                try #require(r.succeeded, "probe failed: \(r.summary)")
                let outcome = r.stdout.split(separator: " ").first.map(String.init) ?? ""
                #expect(outcome == "RESET", "the client must see a reset, not EOF or an open connection: \(r.stdout)\nrelay log:\n\(tail(relay.log))")
                #expect(relay.process.isRunning, "relay exited:\n\(tail(relay.log))")
                await relay.stop()
            }
        }

        /// The upstream swallows SYNs: --connect-timeout bounds the wait (without it the kernel
        /// would retry SYNs for about two minutes), and the client is reset, not closed.
        @Test func connectTimeoutClosesClient() async throws {
            try await withEnv { env in
                try await Proc.check(in: env.tb.srvNS, ["nft", "-f", "-"], stdin: """
                    table inet blackhole { chain syn_drop { type filter hook input priority 0; tcp dport 7998 drop; }; }
                    """)
                let relay = try await env.relay(listen: "\(env.tb.gwLanIP):7006", upstream: "\(env.tb.srvIP):7998",
                                                extraArgs: ["--connect-timeout", "1"])
                let r = try await env.lanPeer("probe-close", ["--host", env.tb.gwLanIP, "--port", "7006", "--timeout", "10"], timeout: 30)
                try #require(r.succeeded, "probe failed: \(r.summary)")
                let fields = r.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" })
                #expect(fields.first == "RESET", "the client must see a reset, not EOF or an open connection: \(r.stdout)\nrelay log:\n\(tail(relay.log))")
                // It ends at the timeout (1 s), not at the kernel's SYN retries; generous for 2 busy cores.
                if let after = fields.dropFirst().first.flatMap({ Double($0) }) {
                    #expect(after < 6, "the reset came \(after) s after connect, want about 1 s")
                }
                await relay.stop()
            }
        }

        /// An idle connection is closed after --idle-timeout.
        @Test func idleTimeoutClosesConnection() async throws {
            try await withEnv { env in
                _ = try await env.peerServer("echo-server", [], port: 7007, mptcp: true, log: "server.log")
                let relay = try await env.relay(listen: "\(env.tb.gwLanIP):7007", upstream: "\(env.tb.srvIP):7007",
                                                extraArgs: ["--idle-timeout", "1"])
                let r = try await env.lanPeer("idle-probe", ["--host", env.tb.gwLanIP, "--port", "7007", "--timeout", "10"], timeout: 30)
                try #require(r.succeeded, "probe failed: \(r.summary)")
                let fields = r.stdout.split(whereSeparator: { $0 == " " || $0 == "\n" })
                #expect(fields.first == "EOF" || fields.first == "RESET", "idle connection stayed open: \(r.stdout)\nrelay log:\n\(tail(relay.log))")
                await relay.stop()
            }
        }
    }
}

/// The rest of the first line of `text` that starts with `prefix`.
func line(_ text: String, prefix: String) -> String? {
    text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }).map { String($0.dropFirst(prefix.count)) }
}
