import Foundation
import Testing
import TestSupport

extension Integration {
    /// Issue 27: `mptcp-relay init` takes a bare gateway (two uplinks with DHCP-like default
    /// routes of different metrics, a LAN interface) and a bare server to an aggregating site.
    @Suite("init: from a bare box to an aggregating site")
    struct InitSetup {
        /// `init gateway --yes`: detected uplinks and LAN, a key of mode 0600, a config that
        /// passes check; run as written, it aggregates a LAN download over both WANs.
        @Test func gatewayAsWrittenAggregates() async throws {
            try await withEnv(wans: 2, rateMbit: 50, bare: true) { env in
                let bin = try await RelayBinary.path()
                let config = env.tmp.file("etc/config.toml")
                let r = try await Proc.run(in: env.tb.gwNS, [bin, "init", "gateway", "--yes", "--output", config.path])
                try #require(r.succeeded, "\(r.summary)")
                #expect(r.stdout.contains("uplinks: wan1, wan2; LAN: lan0"), "\(r.stdout)")
                let text = try String(contentsOf: config, encoding: .utf8)
                #expect(text.contains("interface = \"wan1\"") && text.contains("interface = \"wan2\"") && text.contains("lan_interfaces = [\"lan0\"]"))
                // wan1 carries the main table's preferred default route: it stays first.
                #expect(text.range(of: "\"wan1\"")!.lowerBound < text.range(of: "\"wan2\"")!.lowerBound)
                let key = env.tmp.file("etc/tunnel.key").path
                var st = stat()
                #expect(stat(key, &st) == 0 && st.st_mode & 0o777 == 0o600, "the key file is 0600")
                let again = try await Proc.run(in: env.tb.gwNS, [bin, "init", "gateway", "--yes", "--output", config.path])
                #expect(!again.succeeded && again.stderr.contains("exists: give --force"), "no overwrite without --force: \(again.summary)")

                // GatewaySetup runs check, loads `nft` and its routes, and starts the relay with the file as written.
                let g = try await GatewaySetup.start(env, config: config.path, port: 7000)
                let body = try await g.body(bytes: 30_000_000)
                let (w1, w2) = (try await rxBytes(env.tb.gwNS, "wan1"), try await rxBytes(env.tb.gwNS, "wan2"))
                let got = try await g.download("http://\(env.tb.srvFarIP):8080/body.bin", to: "init.bin")
                let (d1, d2) = (try await rxBytes(env.tb.gwNS, "wan1") - w1, try await rxBytes(env.tb.gwNS, "wan2") - w2)
                print("init gateway --yes, run as written: \(Int(got.mbit)) Mbit/s over 2 x 50 Mbit/s (curl average); WAN 1 carried \(d1 / 1_000_000) MB, WAN 2 \(d2 / 1_000_000) MB")
                #expect(try await Files.sha256(got.file) == body.sha)
                #expect(d1 > 8_000_000 && d2 > 8_000_000, "both WANs carry the download: \(d1) / \(d2) bytes")
            }
        }

        /// `init server` with the key `init gateway` printed, then the gateway re-initialised
        /// with `--server`: a download from a plain TCP server goes through the tunnel over
        /// MPTCP, byte-exact, over both WANs.
        @Test func serverAndGatewayTunnel() async throws {
            try await withEnv(wans: 2, rateMbit: 50, bare: true) { env in
                let bin = try await RelayBinary.path()
                let gwConfig = env.tmp.file("gw/config.toml")
                let first = try await Proc.run(in: env.tb.gwNS, [bin, "init", "gateway", "--yes", "--output", gwConfig.path])
                try #require(first.succeeded, "\(first.summary)")
                // The printed command, with this test's paths: the key hex after `echo`.
                let line = try #require(first.stdout.split(separator: "\n").first { $0.contains("mptcp-relay init server") })
                let hex = try #require(line.split(separator: " ").drop { $0 != "echo" }.dropFirst().first.map(String.init))
                let srvKey = env.tmp.file("srv/tunnel.key")
                try FileManager.default.createDirectory(at: srvKey.deletingLastPathComponent(), withIntermediateDirectories: true)
                try Files.write(hex + "\n", to: srvKey)
                chmod(srvKey.path, 0o600)
                let srvConfig = env.tmp.file("srv/config.toml")
                let s = try await Proc.run(in: env.tb.srvNS, [bin, "init", "server", "--key-file", srvKey.path, "--output", srvConfig.path,
                                                              "--allow", "\(env.tb.srvFarIP)/32"])
                try #require(s.succeeded, "\(s.summary)")
                #expect(s.stdout.contains("kept the tunnel key"), "\(s.stdout)")
                let server = try await env.daemon(in: env.tb.srvNS, [bin, "run", "--config", srvConfig.path], port: 4443, log: "tunnel-server.log")

                let re = try await Proc.run(in: env.tb.gwNS, [bin, "init", "gateway", "--yes", "--force", "--output", gwConfig.path,
                                                              "--server", "\(env.tb.srvFarIP):4443"])
                try #require(re.succeeded, "\(re.summary)")
                #expect(re.stdout.contains("kept the tunnel key"), "a re-run keeps the key the server has")
                let g = try await GatewaySetup.start(env, config: gwConfig.path, port: 7000)
                // A plain TCP server: only the tunnel can make this aggregate.
                let www = env.tmp.file("plain")
                try FileManager.default.createDirectory(at: www, withIntermediateDirectories: true)
                try await Files.random(www.appendingPathComponent("body.bin"), bytes: 20_000_000)
                let sha = try await Files.sha256(www.appendingPathComponent("body.bin"))
                _ = try await env.server(["python3", "-m", "http.server", "8090", "--bind", env.tb.srvFarIP, "--directory", www.path],
                                         port: 8090, mptcp: false, log: "plain.log")
                let (w1, w2) = (try await rxBytes(env.tb.gwNS, "wan1"), try await rxBytes(env.tb.gwNS, "wan2"))
                let got = try await g.download("http://\(env.tb.srvFarIP):8090/body.bin", to: "tunnel.bin")
                let (d1, d2) = (try await rxBytes(env.tb.gwNS, "wan1") - w1, try await rxBytes(env.tb.gwNS, "wan2") - w2)
                print("init server + init gateway --server: \(Int(got.mbit)) Mbit/s through the tunnel from a plain TCP server; WAN 1 \(d1 / 1_000_000) MB, WAN 2 \(d2 / 1_000_000) MB")
                #expect(try await Files.sha256(got.file) == sha)
                #expect(await g.relay.waitForLog("via=\(env.tb.srvFarIP):4443 mptcp=yes"), "\(tail(g.relay.log))")
                #expect(d1 > 5_000_000 && d2 > 5_000_000, "both WANs carry the tunnel: \(d1) / \(d2)")
                #expect(server.isRunning)
            }
        }

        /// The interactive path, driven on a terminal (tmux): Enter accepts each detected
        /// answer, a typed server address is taken.
        @Test func interactiveOnATerminal() async throws {
            try await withEnv(wans: 2, rateMbit: 50, bare: true) { env in
                let bin = try await RelayBinary.path()
                let config = env.tmp.file("tty/config.toml")
                let session = "init\(getpid())"
                _ = try await Proc.check(["tmux", "new-session", "-d", "-s", session, "-x", "200", "-y", "50",
                                          "ip netns exec \(env.tb.gwNS) \(bin) init gateway --output \(config.path); sleep 30"])
                defer { _ = Proc.runBlocking(["tmux", "kill-session", "-t", session]) }
                func screen() async throws -> String { try await Proc.check(["tmux", "capture-pane", "-p", "-t", session]) }
                /// Waits for `text` on the screen; what the screen shows, for the failure message.
                func waitFor(_ text: String) async throws -> (found: Bool, screen: String) {
                    var last = ""
                    for _ in 0..<100 {
                        last = try await screen()
                        if last.contains(text) { return (true, last) }
                        try await Task.sleep(nanoseconds: 100_000_000)
                    }
                    return (false, last)
                }
                do { let w = try await waitFor("Uplink (WAN) interfaces [wan1,wan2]:"); #expect(w.found, "\(w.screen)") }
                _ = try await Proc.check(["tmux", "send-keys", "-t", session, "Enter"])
                do { let w = try await waitFor("LAN interfaces [lan0]:"); #expect(w.found, "\(w.screen)") }
                _ = try await Proc.check(["tmux", "send-keys", "-t", session, "Enter"])
                do { let w = try await waitFor("Aggregation server ADDR:PORT (empty: none) []:"); #expect(w.found, "\(w.screen)") }
                _ = try await Proc.check(["tmux", "send-keys", "-t", session, "\(env.tb.srvFarIP):4443", "Enter"])
                do { let w = try await waitFor("wrote \(config.path) (uplinks: wan1, wan2; LAN: lan0; through \(env.tb.srvFarIP):4443)"); #expect(w.found, "\(w.screen)") }
                let text = try String(contentsOf: config, encoding: .utf8)
                #expect(text.contains("via = \"\(env.tb.srvFarIP):4443\""), "\(text)")
                let check = try await Proc.run([bin, "check", "--config", config.path, "--no-bind"])
                #expect(check.succeeded, "\(check.summary)")
            }
        }
    }
}
