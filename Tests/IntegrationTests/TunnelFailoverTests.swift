import Foundation
import Testing
import TestSupport

extension Integration {
    /// Issue 28: a download through the tunnel (gateway with `[[wan]]` and health probes,
    /// redirect + `via` to our server, to a plain web server) while one WAN fails: WAN 1 down,
    /// WAN 2 down, WAN 1 blackholed (link up, probes on), 5 % loss on WAN 2. Each is
    /// byte-exact and the surviving WAN carried the rest (per-WAN bytes printed).
    /// MPTCP_RELAY_FAILOVER_MB sets the body (default 30; the full run is 60).
    @Suite("Tunnel failover (issue 28)")
    struct TunnelFailover {
        static let megabytes = Int(ProcessInfo.processInfo.environment["MPTCP_RELAY_FAILOVER_MB"] ?? "") ?? 30

        enum Failure: String, CaseIterable { case wan1Down = "WAN 1 down", wan2Down = "WAN 2 down", wan1Blackholed = "WAN 1 blackholed", wan2Loss = "5 % loss on WAN 2" }

        @Test func downloadsThroughTheTunnelSurviveAFailingWAN() async throws {
            try await withEnv(wans: 2, rateMbit: 50, bare: true) { env in
                let bin = try await RelayBinary.path()
                let webIP = Integration.Tunnel.webIP
                let far = env.tb.srvFarIP
                _ = try await Proc.check(in: env.tb.srvNS, ["ip", "addr", "add", "\(webIP)/32", "dev", "lo"])
                let www = env.tmp.file("www")
                try FileManager.default.createDirectory(at: www, withIntermediateDirectories: true)
                let bytes = Self.megabytes * 1_000_000
                try await Files.random(www.appendingPathComponent("body.bin"), bytes: bytes)
                let sha = try await Files.sha256(www.appendingPathComponent("body.bin"))
                _ = try await env.serverIn(["python3", "-m", "http.server", "8080", "--bind", webIP, "--directory", www.path], port: 8080, log: "http.log")
                let key = try TunnelSetup.writeKey(env.tmp.file("tunnel.key"))
                let server = try await env.daemon(in: env.tb.srvNS, [bin, "run", "--listen", "0.0.0.0:4000", "--server", "--key-file", key, "--allow", "\(webIP)/32"],
                                                  port: 4000, log: "tunnel-server.log")
                let config = env.tmp.file("gateway.toml")
                try Files.write("""
                    [[listener]]
                    listen = "0.0.0.0:7000"
                    mode = "redirect"
                    via = "\(far):4000"
                    key_file = "\(key)"
                    fast_open = false   # TunnelTests.fastOpenNeverResetsShortConnections

                    [interception]
                    lan_interfaces = ["lan0"]
                    exclude = ["192.168.50.0/24", "127.0.0.0/8"]

                    \(probedWans(env.tb))
                    """, to: config)
                let gateway = try await env.daemon(in: env.tb.gwNS, [bin, "run", "--config", config.path], port: 7000, log: "gateway.log")
                _ = try await Proc.check(in: env.tb.gwNS, ["nft", "table ip it_redirect { chain pre { type nat hook prerouting priority dstnat; iifname \"lan0\" tcp dport 8080 redirect to :7000; }; }"])
                for k in 1...2 { #expect(await gateway.waitForLog("wan: wan\(k) probes answer", count: 1, timeout: 30), "\(tail(gateway.log))") }

                func perWan() async throws -> [Int] { [try await rxBytes(env.tb.gwNS, "wan1"), try await rxBytes(env.tb.gwNS, "wan2")] }
                for (i, failure) in Failure.allCases.enumerated() {
                    let file = env.tmp.file("dl-\(i).bin")
                    let rx0 = try await perWan()
                    let curl = try BackgroundProcess(in: env.tb.lanNS, ["curl", "-sS", "--max-time", "150", "-o", file.path, "http://\(webIP):8080/body.bin"],
                                                     log: env.tmp.file("curl-\(i).log"))
                    env.started.add(curl)
                    if failure == .wan2Loss { try await env.tb.loss(2, percent: 5) }
                    // 2 x 50 Mbit/s move 30 MB in under 3 s: fail a WAN early, about a quarter in.
                    try await Task.sleep(nanoseconds: 700_000_000)
                    try #require(curl.isRunning, "\(failure.rawValue): the download ended before the failure: \(curl.log)\n\(tail(gateway.log, lines: 8))\n\(tail(server.log, lines: 5))")
                    let rxAtFailure = try await perWan()
                    switch failure {
                    case .wan1Down: try await env.tb.link(1, up: false)
                    case .wan2Down: try await env.tb.link(2, up: false)
                    case .wan1Blackholed: try await env.tb.blackhole(1, true)
                    case .wan2Loss: break
                    }
                    let finished = await curl.waitForExit(timeout: 150)
                    let rx1 = try await perWan()
                    // Put the WAN back and wait until both are in service again.
                    switch failure {
                    case .wan1Down: try await env.tb.link(1, up: true)
                    case .wan2Down: try await env.tb.link(2, up: true)
                    case .wan1Blackholed: try await env.tb.blackhole(1, false)
                    case .wan2Loss: try await env.tb.loss(2, percent: 0)
                    }
                    let whole = zip(rx1, rx0).map { $0 - $1 }, after = zip(rx1, rxAtFailure).map { $0 - $1 }
                    print("tunnel failover, \(failure.rawValue): per-WAN bytes \(whole) in all, \(after) after the failure; curl exit \(curl.exitStatus ?? -1)")
                    #expect(finished && curl.exitStatus == 0, "\(failure.rawValue): \(curl.log)\n\(tail(gateway.log, lines: 8))")
                    #expect(try await Files.sha256(file) == sha, "\(failure.rawValue): body differs")
                    switch failure {
                    case .wan1Down, .wan1Blackholed:
                        #expect(after[1] > bytes / 4, "\(failure.rawValue): WAN 2 carried \(after[1]) bytes after the failure")
                    case .wan2Down:
                        #expect(after[0] > bytes / 4, "\(failure.rawValue): WAN 1 carried \(after[0]) bytes after the failure")
                    case .wan2Loss:
                        #expect(whole.allSatisfy { $0 > bytes / 10 }, "\(failure.rawValue): per-WAN bytes \(whole)")
                    }
                    try await waitFor("both WANs back in service after \(failure.rawValue)", timeout: 60) {
                        let status = try await Proc.run(in: env.tb.gwNS, [bin, "wan", "--config", config.path])
                        return occurrences(of: "service:", in: status.stdout) == 2 && !status.stdout.contains("out of service")
                    }
                }
                #expect(server.isRunning && gateway.isRunning)
            }
        }
    }
}
