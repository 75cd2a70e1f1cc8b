import Foundation
import Testing
import TestSupport

extension Integration {
    @Suite("Byte-exact transfers")
    struct Transfer {
        /// 50 MB down and up through the relay to http.server under mptcpize: same SHA-256 at
        /// both ends, MPTCP negotiated (relay log and the server kernel's MP_CAPABLE counter).
        /// Both splice engines: inline splice(2) (the default) and IORING_OP_SPLICE.
        @Test(arguments: ["inline", "ring"])
        func largeBodiesBothWaysOverMPTCP(splice: String) async throws {
            try await withEnv { env in
                let size = 50_000_000
                let srvDir = env.tmp.file("srv"), lanDir = env.tmp.file("lan")
                try FileManager.default.createDirectory(at: srvDir, withIntermediateDirectories: true)
                try FileManager.default.createDirectory(at: lanDir, withIntermediateDirectories: true)
                try await Files.random(srvDir.appendingPathComponent("down.bin"), bytes: size)
                try await Files.random(lanDir.appendingPathComponent("up.bin"), bytes: size)

                let capableBefore = try await Net.counter("MPTcpExtMPCapableSYNRX", ns: env.tb.srvNS)
                _ = try await env.peerServer("http-server", ["--dir", srvDir.path], port: 8080, mptcp: true, log: "http.log")
                let relay = try await env.relay(listen: "\(env.tb.gwLanIP):8080", upstream: "\(env.tb.srvIP):8080", extraArgs: ["--splice", splice])
                let base = "http://\(env.tb.gwLanIP):8080"

                let down = try await env.lan(["curl", "-sS", "--fail", "-o", lanDir.appendingPathComponent("down.bin").path, "\(base)/down.bin"])
                try #require(down.succeeded, "download failed: \(down.summary)\nrelay log:\n\(tail(relay.log))")
                #expect(try await Files.sha256(lanDir.appendingPathComponent("down.bin"))
                        == (try await Files.sha256(srvDir.appendingPathComponent("down.bin"))), "download corrupted")

                let up = try await env.lan(["curl", "-sS", "--fail", "-H", "Expect:", "-T", lanDir.appendingPathComponent("up.bin").path, "\(base)/up.bin"])
                try #require(up.succeeded, "upload failed: \(up.summary)\nrelay log:\n\(tail(relay.log))")
                #expect(try await Files.sha256(srvDir.appendingPathComponent("up.bin"))
                        == (try await Files.sha256(lanDir.appendingPathComponent("up.bin"))), "upload corrupted")

                #expect(await relay.waitForLog("mptcp=yes", count: 2), "relay log lacks mptcp=yes twice:\n\(tail(relay.log))")
                #expect(occurrences(of: "mptcp=no", in: relay.log) == 0, "unexpected fallback:\n\(tail(relay.log))")
                let capableAfter = try await Net.counter("MPTcpExtMPCapableSYNRX", ns: env.tb.srvNS)
                #expect(capableAfter - capableBefore >= 2, "server saw \(capableAfter - capableBefore) MP_CAPABLE SYNs, want >= 2")
                await relay.stop()
            }
        }

        /// A server that does not speak MPTCP: the kernel falls back to TCP, bytes stay exact,
        /// and the relay says so.
        @Test func fallbackToPlainTCPServer() async throws {
            try await withEnv { env in
                let srvDir = env.tmp.file("srv"), got = env.tmp.file("got.bin")
                try FileManager.default.createDirectory(at: srvDir, withIntermediateDirectories: true)
                try await Files.random(srvDir.appendingPathComponent("f.bin"), bytes: 20_000_000)

                let fallbackBefore = try await Net.counter("MPTcpExtMPCapableFallbackSYNACK", ns: env.tb.gwNS)
                _ = try await env.peerServer("http-server", ["--dir", srvDir.path], port: 8080, mptcp: false, log: "http.log")
                let relay = try await env.relay(listen: "\(env.tb.gwLanIP):8080", upstream: "\(env.tb.srvIP):8080")

                let r = try await env.lan(["curl", "-sS", "--fail", "-o", got.path, "http://\(env.tb.gwLanIP):8080/f.bin"])
                try #require(r.succeeded, "download failed: \(r.summary)\nrelay log:\n\(tail(relay.log))")
                #expect(try await Files.sha256(got) == (try await Files.sha256(srvDir.appendingPathComponent("f.bin"))))

                #expect(await relay.waitForLog("mptcp=no"), "relay log lacks mptcp=no:\n\(tail(relay.log))")
                #expect(await relay.waitForLog("fallback"), "relay log does not say fallback:\n\(tail(relay.log))")
                #expect(occurrences(of: "mptcp=yes", in: relay.log) == 0)
                // The gateway kernel tried MPTCP and got a plain SYN-ACK back.
                let fallbackAfter = try await Net.counter("MPTcpExtMPCapableFallbackSYNACK", ns: env.tb.gwNS)
                #expect(fallbackAfter > fallbackBefore, "gw saw no fallback SYN-ACK: was the upstream socket MPTCP?")
                await relay.stop()
            }
        }

        /// Same over IPv6 on both sides of the relay.
        @Test func ipv6EndToEnd() async throws {
            try await withEnv { env in
                let srvDir = env.tmp.file("srv"), got = env.tmp.file("got.bin")
                try FileManager.default.createDirectory(at: srvDir, withIntermediateDirectories: true)
                try await Files.random(srvDir.appendingPathComponent("f.bin"), bytes: 20_000_000)

                let capableBefore = try await Net.counter("MPTcpExtMPCapableSYNRX", ns: env.tb.srvNS)
                _ = try await env.peerServer("http-server", ["--bind", "::", "--dir", srvDir.path], port: 8080, mptcp: true, log: "http.log")
                let relay = try await env.relay(listen: "[\(env.tb.gwLanIP6)]:8080", upstream: "[\(env.tb.srvIP6)]:8080")

                let r = try await env.lan(["curl", "-sS", "--fail", "-g", "-o", got.path, "http://[\(env.tb.gwLanIP6)]:8080/f.bin"])
                try #require(r.succeeded, "download failed: \(r.summary)\nrelay log:\n\(tail(relay.log))")
                #expect(try await Files.sha256(got) == (try await Files.sha256(srvDir.appendingPathComponent("f.bin"))))
                #expect(await relay.waitForLog("mptcp=yes"), "relay log lacks mptcp=yes:\n\(tail(relay.log))")
                let capableAfter = try await Net.counter("MPTcpExtMPCapableSYNRX", ns: env.tb.srvNS)
                #expect(capableAfter > capableBefore)
                await relay.stop()
            }
        }
    }
}
