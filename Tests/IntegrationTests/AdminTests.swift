import Foundation
import Testing
import TestSupport

/// The operator listener (issue 11): counters against what really moved, fallback reasons,
/// live subflows per WAN, the dashboard in a real browser, and the token.
extension Integration {
    @Suite("Admin listener: metrics, status API, dashboard")
    struct Admin {
        static let adminAddress = "127.0.0.1:9180"

        /// 20 MB down and 5 MB up through an MPTCP upstream, 5 MB down through a plain-TCP
        /// one: byte counters match what curl moved (within 1 %, the rest is HTTP headers),
        /// and the plain-TCP upstream is counted as a fallback with its reason.
        @Test func countersMatchTransfersAndFallbackHasItsReason() async throws {
            try await withEnv { env in
                let srvDir = env.tmp.file("srv"), lanDir = env.tmp.file("lan")
                try FileManager.default.createDirectory(at: srvDir, withIntermediateDirectories: true)
                try FileManager.default.createDirectory(at: lanDir, withIntermediateDirectories: true)
                try await Files.random(srvDir.appendingPathComponent("down.bin"), bytes: 20_000_000)
                try await Files.random(srvDir.appendingPathComponent("small.bin"), bytes: 5_000_000)
                try await Files.random(lanDir.appendingPathComponent("up.bin"), bytes: 5_000_000)
                _ = try await env.peerServer("http-server", ["--dir", srvDir.path], port: 8080, mptcp: true, log: "http.log")
                _ = try await env.peerServer("http-server", ["--dir", srvDir.path], port: 8081, mptcp: false, log: "http-plain.log")
                let relay = try await env.relay(listen: "\(env.tb.gwLanIP):8080", upstream: "\(env.tb.srvIP):8080",
                                                extraArgs: ["--admin", Self.adminAddress])
                let plainRelay = try await env.relay(listen: "\(env.tb.gwLanIP):8081", upstream: "\(env.tb.srvIP):8081",
                                                     extraArgs: ["--admin", "127.0.0.1:9181"], log: "relay-plain.log")

                let down = try await env.lan(["curl", "-sS", "--fail", "-o", lanDir.appendingPathComponent("down.bin").path,
                                              "-w", "%{size_download}", "http://\(env.tb.gwLanIP):8080/down.bin"])
                try #require(down.succeeded, "download failed: \(down.summary)\nrelay log:\n\(tail(relay.log))")
                #expect(try await Files.sha256(lanDir.appendingPathComponent("down.bin"))
                        == (try await Files.sha256(srvDir.appendingPathComponent("down.bin"))), "download corrupted")
                let up = try await env.lan(["curl", "-sS", "--fail", "-H", "Expect:", "-T", lanDir.appendingPathComponent("up.bin").path,
                                            "-w", "%{size_upload}", "http://\(env.tb.gwLanIP):8080/up.bin"])
                try #require(up.succeeded, "upload failed: \(up.summary)")
                let plain = try await env.lan(["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download}",
                                               "http://\(env.tb.gwLanIP):8081/small.bin"])
                try #require(plain.succeeded, "plain download failed: \(plain.summary)")
                let curlDown = try #require(Double(down.stdout)), curlUp = try #require(Double(up.stdout))
                #expect(curlDown == 20_000_000 && curlUp == 5_000_000)

                // Counted when each connection closes: wait for both.
                let metrics = try await scrapeUntil(env, Self.adminAddress) { metricValue($0, "mptcp_relay_connections_closed_total", ["reason": "done"]) >= 2 }
                let bytesDown = metricValue(metrics, "mptcp_relay_bytes_total", ["direction": "down"])
                let bytesUp = metricValue(metrics, "mptcp_relay_bytes_total", ["direction": "up"])
                print("admin: curl moved \(Int(curlDown)) down / \(Int(curlUp)) up; /metrics says \(Int(bytesDown)) / \(Int(bytesUp))")
                #expect(bytesDown >= curlDown && bytesDown <= curlDown * 1.01, "bytes down \(bytesDown) vs curl \(curlDown)\n\(metrics)")
                #expect(bytesUp >= curlUp && bytesUp <= curlUp * 1.01, "bytes up \(bytesUp) vs curl \(curlUp)\n\(metrics)")
                #expect(metricValue(metrics, "mptcp_relay_connections_accepted_total", [:]) == 2)
                #expect(metricValue(metrics, "mptcp_relay_connections_mptcp_total", ["outcome": "mptcp"]) == 2, "\(metrics)")
                #expect(metricValue(metrics, "mptcp_relay_upstream_connect_seconds_count", [:]) == 2, "\(metrics)")

                let plainMetrics = try await scrapeUntil(env, "127.0.0.1:9181") { metricValue($0, "mptcp_relay_connections_closed_total", [:]) >= 1 }
                #expect(metricValue(plainMetrics, "mptcp_relay_connections_mptcp_total", ["outcome": "fallback_peer"]) == 1,
                        "the plain-TCP upstream is not counted as fallback_peer:\n\(plainMetrics)")
                #expect(metricValue(plainMetrics, "mptcp_relay_connections_mptcp_total", ["outcome": "mptcp"]) == 0)
                let plainDown = metricValue(plainMetrics, "mptcp_relay_bytes_total", ["direction": "down"])
                #expect(plainDown >= 5_000_000 && plainDown <= 5_050_000, "plain bytes down \(plainDown)")
                await relay.stop()
                await plainRelay.stop()
            }
        }

        /// During an iperf3 transfer over both WANs: /api/connections shows the connection as
        /// MPTCP with two subflows, one on each WAN; headless Chromium renders the dashboard
        /// with both WAN series non-zero and the connection row; the screenshot is kept.
        @Test func liveSubflowsAndDashboardInChromium() async throws {
            try await withEnv(wans: 2, rateMbit: 30) { env in
                _ = try await env.server(["iperf3", "-s", "-p", "5201", "-1"], port: 5201, mptcp: true, log: "iperf3-s.log")
                let relay = try await env.relay(listen: "\(env.tb.gwLanIP):5201", upstream: "\(env.tb.srvIP):5201",
                                                extraArgs: ["--admin", Self.adminAddress])
                let client = try BackgroundProcess(in: env.tb.lanNS, ["iperf3", "-c", env.tb.gwLanIP, "-p", "5201", "-t", "25"],
                                                   log: env.tmp.file("iperf3-c.log"))
                env.started.add(client)

                // The second subflow joins a moment after the first: wait for it.
                var live: [String: Any]? = nil
                var lastBody = ""
                let deadline = Date().addingTimeInterval(15)
                while Date() < deadline, live == nil {
                    lastBody = try await adminGet(env, Self.adminAddress, "/api/connections")
                    if let doc = try? JSONSerialization.jsonObject(with: Data(lastBody.utf8)) as? [String: Any],
                       let conns = doc["connections"] as? [[String: Any]] {
                        live = conns.first { c in
                            let subflows = c["subflows"] as? [[String: Any]] ?? []
                            return c["mptcp"] as? String == "mptcp" && Set(subflows.compactMap { $0["interface"] as? String }) == ["wan1", "wan2"]
                        }
                    }
                    if live == nil { try await Task.sleep(nanoseconds: 300_000_000) }
                }
                let conn = try #require(live, "no MPTCP connection with subflows on wan1 and wan2 in /api/connections:\n\(lastBody)")
                let subflows = conn["subflows"] as? [[String: Any]] ?? []
                #expect(subflows.count == 2, "subflows: \(subflows)")
                #expect(conn["client"] as? String != nil && conn["destination"] as? String == "\(env.tb.srvIP):5201")
                #expect(conn["phase"] as? String == "relaying")
                #expect((conn["bytes_up"] as? Int ?? 0) > 0, "no bytes up in \(conn)")

                // The CLI's table shows the same connection, its subflows named by WAN.
                let bin = try await RelayBinary.path()
                let table = try await Proc.run(in: env.tb.gwNS, [bin, "status", "--admin", Self.adminAddress])
                let row = table.stdout.split(separator: "\n").first { $0.hasPrefix("\(conn["id"] as? String ?? "?") ") }
                #expect(row.map { $0.contains("relaying") && $0.contains("mptcp") && ($0.contains("2 (wan1,wan2)") || $0.contains("2 (wan2,wan1)")) } == true,
                        "status table lacks the live connection: \(table.summary)\n\(table.stdout)")
                let json = try await Proc.run(in: env.tb.gwNS, [bin, "status", "--admin", Self.adminAddress, "--json"])
                #expect((try? JSONSerialization.jsonObject(with: Data(json.stdout.utf8))) != nil, "status --json is not JSON: \(json.stdout.prefix(300))")

                // Let both WANs carry a few seconds of traffic, then scrape and open the page.
                try await Task.sleep(nanoseconds: 2_000_000_000)
                let metrics = try await adminGet(env, Self.adminAddress, "/metrics")
                for wan in ["wan1", "wan2"] {
                    #expect(metricValue(metrics, "mptcp_relay_wan_subflows", ["interface": wan]) >= 1, "no subflow on \(wan) in /metrics:\n\(metrics)")
                    #expect(metricValue(metrics, "mptcp_relay_wan_bytes_total", ["interface": wan, "direction": "sent"]) > 0, "no bytes sent on \(wan)")
                }
                #expect(metricValue(metrics, "mptcp_relay_open_connections", [:]) == 2, "iperf3 holds a control and a data connection")
                #expect(metricValue(metrics, "mptcp_relay_pipes_in_use", [:]) >= 1)
                let browserDir = env.tmp.file("chromium")
                let chromium = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(browserDir.path)",
                                "--virtual-time-budget=6000", "--window-size=1280,1000"]
                let dom = try await Proc.run(in: env.tb.gwNS, chromium + ["--dump-dom", "http://\(Self.adminAddress)/"], timeout: 90)
                try #require(dom.succeeded, "chromium --dump-dom failed: \(dom.summary)")
                let html = dom.stdout
                for wan in ["wan1", "wan2"] {
                    let peak = attribute("data-peak", ofElement: "polyline", with: "data-interface=\"\(wan)\"", in: html)
                    #expect((peak.flatMap(Double.init) ?? 0) > 0, "chart series of \(wan) missing or zero (data-peak \(peak ?? "none"))\n\(html.prefix(4000))")
                    let bytes = attribute("data-bytes", ofElement: "tr", with: "data-interface=\"\(wan)\"", in: html)
                    #expect((bytes.flatMap(Double.init) ?? 0) > 0, "WAN row of \(wan) missing or zero")
                }
                let id = try #require(conn["id"] as? String)
                #expect(html.contains("class=\"conn\" data-id=\"\(id)\" data-mptcp=\"mptcp\" data-subflows=\"2\""),
                        "no connection row for \(id) with MPTCP and 2 subflows:\n\(html.prefix(6000))")
                // The chart has labelled axes with units, and a stacked total above both WANs.
                #expect(html.contains("id=\"rate-unit\">Mbit/s<") && html.contains("id=\"time-unit\">time (seconds before now)<"), "axes unlabelled:\n\(html.prefix(4000))")
                #expect(occurrences(of: "class=\"axis-label rate-tick\"", in: html) >= 3 && html.contains(">now</text>"), "no rate or time ticks")
                let total = attribute("data-peak", ofElement: "polyline", with: "class=\"total\"", in: html)
                #expect((total.flatMap(Double.init) ?? 0) > 0, "no stacked total")
                // No uplinks configured here: no empty uplink table shows.
                #expect(html.contains("id=\"uplinks-section\" class=\"hidden\""), "an empty uplink table is shown")
                // A connection's subflows on demand: a click puts its id in the address (#conn=ID);
                // the page opened at that address shows them.
                let opened = try await Proc.run(in: env.tb.gwNS, chromium + ["--user-data-dir=\(env.tmp.file("chromium2").path)", "--dump-dom",
                                                                             "http://\(Self.adminAddress)/#conn=\(id)"], timeout: 90)
                #expect(occurrences(of: "class=\"subflow\"", in: opened.stdout) == 2 && opened.stdout.contains("RTT "),
                        "the connection's two subflows, with their RTT, are not shown:\n\(opened.stdout.prefix(6000))")

                let shot = env.tmp.file("dashboard.png")
                let screenshot = try await Proc.run(in: env.tb.gwNS, chromium + ["--screenshot=\(shot.path)", "http://\(Self.adminAddress)/"], timeout: 90)
                try #require(screenshot.succeeded, "chromium --screenshot failed: \(screenshot.summary)")
                #expect(try Files.size(shot) > 10_000, "screenshot is suspiciously small")
                let artifacts = ProcessInfo.processInfo.environment["MPTCP_RELAY_ARTIFACTS"].map { URL(fileURLWithPath: $0) }
                    ?? Repo.path(".build/test-artifacts")
                try FileManager.default.createDirectory(at: artifacts, withIntermediateDirectories: true)
                let kept = artifacts.appendingPathComponent("dashboard.png")
                try? FileManager.default.removeItem(at: kept)
                try FileManager.default.copyItem(at: shot, to: kept)
                print("admin: dashboard screenshot kept at \(kept.path)")

                await client.stop()
                await relay.stop()
            }
        }

        /// A tunnel server counts its refusals by reason: a header under another key is
        /// `not_authorized`, a cut-off one `malformed`.
        @Test func tunnelRefusalsByReason() async throws {
            try await withEnv(wans: 1, rateMbit: 100) { env in
                let script = env.tmp.file("tunnel.py")
                _ = try Files.write(tunnelScript, to: script)
                let key = try TunnelSetup.writeKey(env.tmp.file("tunnel.key"))
                let wrongKey = try TunnelSetup.writeKey(env.tmp.file("wrong.key"))
                let bin = try await RelayBinary.path()
                let server = try await env.daemon(in: env.tb.srvNS, [bin, "run", "--listen", "\(env.tb.srvIP):4000", "--server", "--key-file", key,
                                                                     "--header-timeout", "2", "--admin", Self.adminAddress], port: 4000, log: "tunnel-server.log")
                for (name, count) in [("wrong-key", 2), ("truncated", 1)] {
                    for _ in 0..<count {
                        let r = try await env.lan(["python3", script.path, name, "--server", env.tb.srvIP, "--port", "4000",
                                                   "--key", key, "--wrong-key", wrongKey, "--dest", "203.0.113.9", "--dest-port", "80"], timeout: 30)
                        #expect(r.succeeded && !r.stdout.contains("reply=ok"), "\(name): \(r.summary) \(r.stdout)")
                    }
                }
                var metrics = ""
                let deadline = Date().addingTimeInterval(10)
                while Date() < deadline {
                    metrics = (try? await adminGet(env, Self.adminAddress, "/metrics", ns: env.tb.srvNS)) ?? ""
                    if metricValue(metrics, "mptcp_relay_tunnel_refusals_total", [:]) >= 3 { break }
                    try await Task.sleep(nanoseconds: 200_000_000)
                }
                #expect(metricValue(metrics, "mptcp_relay_tunnel_refusals_total", ["reason": "not_authorized"]) == 2, "\(metrics)\n\(tail(server.log))")
                #expect(metricValue(metrics, "mptcp_relay_tunnel_refusals_total", ["reason": "malformed"]) == 1, "\(metrics)\n\(tail(server.log))")
                #expect(metricValue(metrics, "mptcp_relay_connections_closed_total", ["reason": "refused"]) == 3)
            }
        }

        /// A non-loopback admin listener needs a token: without one the relay refuses to start;
        /// with one, a request without `Authorization: Bearer` gets 401 and one with it 200.
        @Test func tokenGuardsNonLoopbackListener() async throws {
            try await withEnv { env in
                _ = try await env.peerServer("http-server", ["--dir", env.tmp.url.path], port: 8080, mptcp: false, log: "http.log")
                let exposed = "\(env.tb.gwLanIP):9180"
                let bin = try await RelayBinary.path()
                let refused = try await Proc.run(in: env.tb.gwNS, [bin, "run", "--listen", "\(env.tb.gwLanIP):8080",
                                                                   "--upstream", "\(env.tb.srvIP):8080", "--admin", exposed], timeout: 30)
                #expect(!refused.succeeded && refused.stderr.contains("token"), "a non-loopback admin listener without a token started: \(refused.summary)")

                let tokenFile = env.tmp.file("admin.token")
                _ = try Files.write("0123456789abcdef0123456789abcdef\n", to: tokenFile)
                chmod(tokenFile.path, 0o600)
                let relay = try await env.relay(listen: "\(env.tb.gwLanIP):8080", upstream: "\(env.tb.srvIP):8080",
                                                extraArgs: ["--admin", exposed, "--admin-token-file", tokenFile.path])
                try await Net.waitListening(ns: env.tb.gwNS, port: 9180, alive: { relay.process.isRunning })
                for path in ["/metrics", "/api/connections", "/"] {
                    let anonymous = try await env.lan(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://\(exposed)\(path)"])
                    #expect(anonymous.stdout == "401", "\(path) without a token answered \(anonymous.stdout)")
                    let wrong = try await env.lan(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer 0123456789abcdef0123456789abcdeX", "http://\(exposed)\(path)"])
                    #expect(wrong.stdout == "401", "\(path) with a wrong token answered \(wrong.stdout)")
                }
                let allowed = try await env.lan(["curl", "-s", "-H", "Authorization: Bearer 0123456789abcdef0123456789abcdef", "http://\(exposed)/metrics"])
                #expect(allowed.stdout.contains("mptcp_relay_open_connections"), "with the token: \(allowed.summary) \(allowed.stdout.prefix(300))")
                let status = try await Proc.run(in: env.tb.gwNS, [bin, "status", "--admin", exposed, "--token-file", tokenFile.path])
                #expect(status.succeeded && status.stdout.contains("connections: 0 open"), "status: \(status.summary) \(status.stdout)")
                await relay.stop()
            }
        }
    }
}

/// GET on the admin listener from inside the gateway namespace.
func adminGet(_ env: Env, _ address: String, _ path: String, ns: String? = nil) async throws -> String {
    let r = try await Proc.run(in: ns ?? env.tb.gwNS, ["curl", "-sS", "--fail", "--max-time", "5", "http://\(address)\(path)"], timeout: 10)
    guard r.succeeded else { throw ProcError("GET \(path) on the admin listener failed: \(r.summary)") }
    return r.stdout
}

/// Scrapes /metrics until `done` holds (counters move when connections close), 15 s at most.
func scrapeUntil(_ env: Env, _ address: String, _ done: (String) -> Bool) async throws -> String {
    var text = ""
    let deadline = Date().addingTimeInterval(15)
    while Date() < deadline {
        text = (try? await adminGet(env, address, "/metrics")) ?? ""
        if done(text) { return text }
        try await Task.sleep(nanoseconds: 200_000_000)
    }
    return text
}

/// The sum of a metric's samples whose labels include `labels` (Prometheus text format).
func metricValue(_ text: String, _ name: String, _ labels: [String: String]) -> Double {
    var sum = 0.0
    for line in text.split(separator: "\n") where line.hasPrefix(name) && !line.hasPrefix("#") {
        let rest = line.dropFirst(name.count)
        guard rest.first == "{" || rest.first == " " else { continue }
        let labelText = rest.first == "{" ? String(rest[rest.index(after: rest.startIndex)..<(rest.firstIndex(of: "}") ?? rest.endIndex)]) : ""
        let matches = labels.allSatisfy { labelText.contains("\($0.key)=\"\($0.value)\"") }
        if matches, let value = line.split(separator: " ").last.flatMap({ Double($0) }) { sum += value }
    }
    return sum
}

/// The value of `attribute` on the first `<element ...>` tag that contains `marker`.
func attribute(_ attribute: String, ofElement element: String, with marker: String, in html: String) -> String? {
    for tag in html.components(separatedBy: "<\(element) ").dropFirst() {
        let head = tag.prefix { $0 != ">" }
        guard head.contains(marker), let start = head.range(of: "\(attribute)=\"") else { continue }
        return String(head[start.upperBound...].prefix { $0 != "\"" })
    }
    return nil
}
