import Foundation
import Testing
import TestSupport

/// Helpers for the tests of the relay's `[[wan]]` manager: the gateway's kernel state as
/// `ip` shows it.
struct WanProbe {
    let env: Env

    func endpoints() async throws -> String { try await Proc.check(in: env.tb.gwNS, ["ip", "mptcp", "endpoint", "show"]) }
    func rules() async throws -> String {
        try await Proc.check(in: env.tb.gwNS, ["ip", "-4", "rule", "show"]) + (try await Proc.check(in: env.tb.gwNS, ["ip", "-6", "rule", "show"]))
    }
    /// Routes and rules the manager installed (its protocol number, 245).
    func ours() async throws -> String {
        let routes = try await Proc.check(in: env.tb.gwNS, ["ip", "-4", "route", "show", "table", "all", "proto", "245"])
            + (try await Proc.check(in: env.tb.gwNS, ["ip", "-6", "route", "show", "table", "all", "proto", "245"]))
        // Debian 12's `ip rule show` ignores a protocol filter: pick the lines by hand.
        let rules = try await self.rules().split(separator: "\n").filter { $0.hasSuffix("proto 245") }
        return routes + rules.joined(separator: "\n")
    }
    func limits() async throws -> String { try await Proc.check(in: env.tb.gwNS, ["ip", "mptcp", "limits", "show"]) }
    func ip(_ args: String) async throws { _ = try await Proc.check(in: env.tb.gwNS, ["ip"] + args.split(separator: " ").map(String.init)) }

    /// Polls `condition` every 100 ms for up to `seconds`; true once it holds. Callers give
    /// generous bounds (two busy cores): the tests wait for an event, they do not time it.
    func within(_ seconds: Double, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await condition() { return true }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        return try await condition()
    }

    /// curl on the LAN fetching `url` into `name`, to completion: what each WAN received
    /// meanwhile (the proof of aggregation: both carry a share), the joins the server
    /// accepted, and curl's average for the log (speed is the benchmarks' business).
    func download(_ url: String, to name: String) async throws -> (file: URL, perWan: [Int], joins: Int64, average: Double) {
        let file = env.tmp.file(name)
        let (rx0, joins0) = (try await perWanRx(), try await Net.counter("MPTcpExtMPJoinAckRx", ns: env.tb.srvNS))
        let r = try await env.lan(["curl", "-sS", "--max-time", "120", "-o", file.path, "-w", "speed=%{speed_download}\n", url], timeout: 150)
        try #require(r.succeeded, "\(r.summary)")
        let (rx1, joins1) = (try await perWanRx(), try await Net.counter("MPTcpExtMPJoinAckRx", ns: env.tb.srvNS))
        let average = (Double(r.stdout.components(separatedBy: "speed=").last?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "") ?? 0) * 8 / 1e6
        return (file, zip(rx1, rx0).map { $0 - $1 }, joins1 - joins0, average)
    }

    /// Bytes received on each of the gateway's WAN interfaces (wan1 first).
    func perWanRx() async throws -> [Int] {
        var out: [Int] = []
        for k in 1...env.tb.wans { out.append(try await rxBytes(env.tb.gwNS, "wan\(k)")) }
        return out
    }

    /// Bytes received on the gateway's WAN interfaces together.
    func wanRx() async throws -> Int { try await perWanRx().reduce(0, +) }
}

/// Aggregation, proven by bytes: each WAN carried at least a quarter of a `body`-byte
/// download (one path alone leaves the other with almost nothing; two equal ones share about
/// half each) and the server accepted a join.
func expectAggregated(_ got: (file: URL, perWan: [Int], joins: Int64, average: Double), body: Int, _ what: String,
                      sourceLocation: SourceLocation = #_sourceLocation) {
    print("\(what): per-WAN bytes \(got.perWan) for a \(body)-byte body, \(got.joins) join(s), curl average \(Int(got.average)) Mbit/s")
    #expect(got.perWan.allSatisfy { $0 > body / 4 }, "\(what): a WAN carried less than a quarter: \(got.perWan) bytes for \(body)", sourceLocation: sourceLocation)
    #expect(got.joins >= 1, "\(what): the server accepted no MP_JOIN", sourceLocation: sourceLocation)
}

/// A forward-mode relay on the gateway's LAN address with `[[wan]]` tables `wans`.
func wanConfig(_ env: Env, wans: String, extra: String = "") throws -> URL {
    let file = env.tmp.file("wan.toml")
    // `extra` holds top-level keys: they must come before the first table.
    try Files.write("""
        \(extra)
        [[listener]]
        listen = "\(env.tb.gwLanIP):8081"
        mode = "forward"
        upstream = "\(env.tb.srvIP):8080"

        \(wans)
        """, to: file)
    return file
}

extension Integration {
    /// The relay's multi-WAN manager on a testbed whose gateway has no MPTCP endpoint,
    /// limit or policy route (testbed.sh --bare): everything these tests see working, the
    /// relay set up from its config.
    @Suite("WAN manager")
    struct WanManagerIntegration {
        /// examples/gateway.toml as written on a bare gateway: aggregation over both WANs,
        /// and on exit nothing of the manager's is left.
        @Test func configAloneAggregates() async throws {
            try await withEnv(wans: 2, rateMbit: 50, bare: true) { env in
                let probe = WanProbe(env: env)
                let limitsBefore = try await probe.limits()
                #expect(try await probe.endpoints().isEmpty, "a --bare testbed has no endpoints")
                let g = try await GatewaySetup.start(env, config: Repo.path("examples/gateway.toml").path)
                let endpoints = try await probe.endpoints()
                for address in ["10.1.0.1", "10.2.0.1", "fd00:1::1", "fd00:2::1"] {
                    #expect(endpoints.contains("\(address) id "), "no endpoint for \(address):\n\(endpoints)")
                }
                #expect(try await probe.rules().contains("from 10.2.0.1 lookup 1002 proto 245"))
                let bodyBytes = 40_000_000
                let body = try await g.body(bytes: bodyBytes)
                let agg = try await probe.download("http://\(env.tb.srvIP):8080/body.bin", to: "agg.bin")
                #expect(try await Files.sha256(agg.file) == body.sha)
                expectAggregated(agg, body: bodyBytes, "wan manager, config alone")
                // IPv6 subflows need the per-WAN rules: without them WAN 2 carries nothing.
                let v6 = try await probe.download("http://[\(env.tb.srvIP6)]:8080/body.bin", to: "agg6.bin")
                #expect(try await Files.sha256(v6.file) == body.sha)
                expectAggregated(v6, body: bodyBytes, "wan manager, config alone, IPv6")

                // SIGTERM: endpoints, rules, routes gone; limits as found.
                g.relay.signal(SIGTERM)
                #expect(await g.relay.waitForExit(timeout: 40))
                let (leftEndpoints, leftOurs) = (try await probe.endpoints(), try await probe.ours())
                #expect(leftEndpoints.isEmpty, "left behind: \(leftEndpoints)")
                #expect(leftOurs.isEmpty, "left behind: \(leftOurs)")
                #expect(try await probe.limits() == limitsBefore)
            }
        }

        /// DHCP-style renumbering of WAN 2 (old address deleted, new one added): within 2 s the
        /// endpoint and rule follow, and a new connection aggregates again. Then SIGHUP with
        /// WAN 2 gone from the config removes its endpoints, rules and routes.
        @Test func renumberingAndReload() async throws {
            try await withEnv(wans: 2, rateMbit: 50, bare: true) { env in
                let probe = WanProbe(env: env)
                let config = try wanConfig(env, wans: "[[wan]]\ninterface = \"wan1\"\n[[wan]]\ninterface = \"wan2\"\n")
                let g = try await GatewaySetup.start(env, config: config.path, port: 8081, intercept: false)
                let bodyBytes = 40_000_000
                let body = try await g.body(bytes: bodyBytes)
                #expect(try await probe.endpoints().contains("10.2.0.1 id "))

                try await probe.ip("addr del 10.2.0.1/24 dev wan2")
                try await probe.ip("addr add 10.2.0.7/24 dev wan2")
                let followed = try await probe.within(10) {
                    let e = try await probe.endpoints(), r = try await probe.rules()
                    return e.contains("10.2.0.7 id ") && !e.contains("10.2.0.1 id ") && r.contains("from 10.2.0.7 lookup") && !r.contains("from 10.2.0.1 lookup")
                }
                let (e2, r2) = (try await probe.endpoints(), try await probe.rules())
                #expect(followed, "after 10 s:\n\(e2)\n\(r2)")
                let got = try await probe.download("http://\(env.tb.gwLanIP):8081/body.bin", to: "renumbered.bin")
                #expect(try await Files.sha256(got.file) == body.sha)
                expectAggregated(got, body: bodyBytes, "wan manager, after renumbering")

                try Files.write(try String(contentsOf: config, encoding: .utf8).replacingOccurrences(of: "[[wan]]\ninterface = \"wan2\"\n", with: ""), to: config)
                g.relay.signal(SIGHUP)
                let removed = try await probe.within(10) {
                    let all = try await probe.endpoints() + (try await probe.ours())
                    return !all.contains("wan2") && !all.contains("1002")
                }
                let (e3, o3) = (try await probe.endpoints(), try await probe.ours())
                #expect(removed, "WAN 2 removed from the config, still there:\n\(e3)\n\(o3)")
                #expect(try await probe.endpoints().contains("10.1.0.1 id "), "WAN 1 lost its endpoint on reload")
            }
        }

        /// WAN 1 (the initial subflow's) down then up during one long download: once it is
        /// back, the same connection runs over both links again.
        @Test func linkDownUpRegainsThePath() async throws {
            try await withEnv(wans: 2, rateMbit: 50, bare: true) { env in
                let probe = WanProbe(env: env)
                // debug: the manager logs the subflow events it reads from mptcp_pm_events.
                let config = try wanConfig(env, wans: "[[wan]]\ninterface = \"wan1\"\n[[wan]]\ninterface = \"wan2\"\n", extra: "log_level = \"debug\"")
                let g = try await GatewaySetup.start(env, config: config.path, port: 8081, intercept: false)
                let body = try await g.body(bytes: 150_000_000)
                let curl = try BackgroundProcess(in: env.tb.lanNS, ["curl", "-sS", "--max-time", "90", "-o", env.tmp.file("long.bin").path,
                                                                    "http://\(env.tb.gwLanIP):8081/body.bin"], log: env.tmp.file("curl-long.log"))
                env.started.add(curl)
                try await Task.sleep(nanoseconds: 2_000_000_000)
                try await env.tb.link(1, up: false)
                #expect(try await probe.within(10) { !(try await probe.endpoints()).contains("10.1.0.1 id ") }, "WAN 1's endpoint stayed while its link was down")
                try await Task.sleep(nanoseconds: 2_000_000_000)
                try await env.tb.link(1, up: true)
                #expect(try await probe.within(10) { (try await probe.endpoints()).contains("10.1.0.1 id ") }, "WAN 1's endpoint did not come back")
                // The same connection uses both links again: from now on each WAN carries a
                // share (bytes, not a rate: the cores here are shared).
                let rx0 = try await probe.perWanRx()
                try await Task.sleep(nanoseconds: 4_000_000_000)
                let rx1 = try await probe.perWanRx()
                try #require(curl.isRunning, "the download ended before the measurement: make the body larger")
                let window = zip(rx1, rx0).map { $0 - $1 }
                print("wan manager, same connection after WAN 1 came back: per-WAN bytes in 4 s \(window)")
                #expect(window[0] > window.reduce(0, +) / 5, "WAN 1 carried \(window[0]) of \(window.reduce(0, +)) bytes in the 4 s after it came back")
                #expect(window[1] > window.reduce(0, +) / 5, "WAN 2 carried \(window[1]) of \(window.reduce(0, +)) bytes in the 4 s after WAN 1 came back")
                #expect(await curl.waitForExit(timeout: 90) && curl.exitStatus == 0, "download: \(curl.log)")
                #expect(try await Files.sha256(env.tmp.file("long.bin")) == body.sha)
                // mptcp_pm_events: the rejoin over WAN 1 after it came back was seen.
                let log = g.relay.log
                let rejoin = log.range(of: "add endpoint id 100 10.1.0.1 dev wan1", options: .backwards)
                    .map { log[$0.upperBound...].contains("subflow established over wan1: 10.1.0.1 -> \(env.tb.srvIP)") } ?? false
                #expect(rejoin, "no subflow event over WAN 1 after it came back:\n\(tail(log, lines: 40))")
            }
        }

        /// A backup WAN carries (almost) nothing while WAN 1 works, and the rest of the
        /// download when it fails.
        @Test func backupWan() async throws {
            try await withEnv(wans: 2, rateMbit: 50, bare: true) { env in
                let probe = WanProbe(env: env)
                let config = try wanConfig(env, wans: "[[wan]]\ninterface = \"wan1\"\n[[wan]]\ninterface = \"wan2\"\nbackup = true\n")
                let g = try await GatewaySetup.start(env, config: config.path, port: 8081, intercept: false)
                let shown = try await probe.endpoints()
                #expect(shown.contains("10.2.0.1 id 102 subflow backup dev wan2"), "\(shown)")
                let body = try await g.body(bytes: 30_000_000)
                let before = try await rxBytes(env.tb.gwNS, "wan2")
                let joins = try await Net.counter("MPTcpExtMPJoinSynAckRx", ns: env.tb.gwNS)
                let got = try await g.download("http://\(env.tb.gwLanIP):8081/body.bin", to: "primary.bin")
                let onBackup = try await rxBytes(env.tb.gwNS, "wan2") - before
                print("wan manager, backup WAN: \(onBackup) bytes of a 30 MB download over the backup (\(String(format: "%.3f", Double(onBackup) / 300_000)) %)")
                #expect(try await Files.sha256(got.file) == body.sha)
                #expect(try await Net.counter("MPTcpExtMPJoinSynAckRx", ns: env.tb.gwNS) > joins, "no subflow joined over the backup WAN")
                #expect(Double(onBackup) < 0.01 * 30_000_000, "the backup WAN carried \(onBackup) bytes while WAN 1 was up")
                let status = try await Proc.run(in: env.tb.gwNS, [try await RelayBinary.path(), "wan", "--config", config.path])
                #expect(status.succeeded, "\(status.summary)")
                for line in ["wan2: link up, table 1002, backup", "endpoint:  id 102 10.2.0.1 subflow,backup", "gateways:  10.1.0.2 fd00:1::2"] {
                    #expect(status.stdout.contains(line), "`mptcp-relay wan` lacks '\(line)':\n\(status.stdout)")
                }

                let curl = try BackgroundProcess(in: env.tb.lanNS, ["curl", "-sS", "--max-time", "90", "-o", env.tmp.file("failover.bin").path,
                                                                    "http://\(env.tb.gwLanIP):8081/body.bin"], log: env.tmp.file("curl-failover.log"))
                env.started.add(curl)
                try await Task.sleep(nanoseconds: 1_500_000_000)
                let backupBefore = try await rxBytes(env.tb.gwNS, "wan2")
                try await env.tb.link(1, up: false)
                try #require(curl.isRunning, "the download ended before WAN 1 went down")
                #expect(await curl.waitForExit(timeout: 90) && curl.exitStatus == 0, "download after WAN 1 failed: \(curl.log)")
                #expect(try await Files.sha256(env.tmp.file("failover.bin")) == body.sha, "body differs after failing over to the backup")
                #expect(try await rxBytes(env.tb.gwNS, "wan2") - backupBefore > 5_000_000, "the backup WAN did not carry the rest")

                // SIGHUP without `backup`: the flag is switched in place (SET_FLAGS), not by
                // replacing the endpoint.
                try Files.write(try String(contentsOf: config, encoding: .utf8).replacingOccurrences(of: "backup = true\n", with: ""), to: config)
                g.relay.signal(SIGHUP)
                let switched = try await probe.within(10) { (try await probe.endpoints()).contains("10.2.0.1 id 102 subflow dev wan2") }
                let now = try await probe.endpoints()
                #expect(switched, "backup flag still set after reload:\n\(now)")
                #expect(await g.relay.waitForLog("set endpoint id 102 10.2.0.1 subflow"), "\(tail(g.relay.log))")
                #expect(!g.relay.log.contains("delete endpoint id 102"), "the endpoint was replaced, not switched")
            }
        }

        /// Endpoints someone else added (before and while the relay runs, one with an id the
        /// relay's numbering would reach) survive everything; SIGKILL then restart converges
        /// with no duplicate and nothing stale, even though WAN 2 was renumbered meanwhile.
        @Test func foreignEndpointsAndRestartAfterKill() async throws {
            try await withEnv(wans: 2, rateMbit: 50, bare: true) { env in
                let probe = WanProbe(env: env)
                try await probe.ip("mptcp endpoint add 192.168.50.1 id 7 signal")
                try await probe.ip("mptcp endpoint add fd00:2::1 id 50 dev wan2 subflow")
                let config = try wanConfig(env, wans: "[[wan]]\ninterface = \"wan1\"\n[[wan]]\ninterface = \"wan2\"\n")
                let bin = try await RelayBinary.path()
                var relay = try await env.daemon(in: env.tb.gwNS, [bin, "run", "--config", config.path], port: 8081, log: "relay1.log")
                #expect(await relay.waitForLog("fd00:2::1 is already endpoint id 50"), "\(tail(relay.log))")
                // The kernel numbers an id-less endpoint after the highest one: into the relay's range.
                try await probe.ip("mptcp endpoint add fd00:50::1 dev lan0 subflow")
                var e = try await probe.endpoints()
                let foreign = e.split(separator: "\n").filter { $0.contains("192.168.50.1") || $0.contains("fd00:2::1") || $0.contains("fd00:50::1") }
                #expect(foreign.count == 3, "\(e)")
                #expect(foreign.contains { $0.hasPrefix("fd00:50::1 id 10") }, "the kernel numbered it outside the relay's range: \(e)")

                env.started.checksOwnExit(relay)  // killed on purpose: status 137
                relay.signal(SIGKILL)
                #expect(await relay.waitForExit(timeout: 10))
                try await probe.ip("addr del 10.2.0.1/24 dev wan2")
                try await probe.ip("addr add 10.2.0.8/24 dev wan2")
                relay = try await env.daemon(in: env.tb.gwNS, [bin, "run", "--config", config.path], port: 8081, log: "relay2.log")
                e = try await probe.endpoints()
                let lines = e.split(separator: "\n").map(String.init)
                let addresses = lines.compactMap { $0.split(separator: " ").first.map(String.init) }
                #expect(Set(addresses).count == addresses.count, "duplicate endpoints:\n\(e)")
                #expect(Set(addresses) == ["10.1.0.1", "fd00:1::1", "10.2.0.8", "fd00:2::1", "192.168.50.1", "fd00:50::1"], "\(e)")
                for f in foreign { #expect(lines.contains(String(f)), "foreign endpoint changed: \(f)\n\(e)") }
                let r = try await probe.rules()
                #expect(!r.contains("10.2.0.1"), "stale rule:\n\(r)")
                #expect(r.contains("from 10.2.0.8 lookup 1002"), "\(r)")
                #expect(occurrences(of: "from 10.1.0.1 lookup", in: r) == 1, "duplicate rule:\n\(r)")

                relay.signal(SIGTERM)
                #expect(await relay.waitForExit(timeout: 40))
                let after = try await probe.endpoints().split(separator: "\n").map(String.init)
                #expect(Set(after) == Set(foreign.map(String.init)), "after exit:\n\(after)")
                #expect(try await probe.ours().isEmpty)
                let check = try await Proc.run([bin, "check", "--no-bind", "--config", try wanConfig(env, wans: "[[wan]]\ninterface = \"wwan9\"\n").path])
                #expect(check.succeeded && check.stderr.contains("'wwan9' does not exist (yet)"), "\(check.summary)")
            }
        }

        /// block_quic: LAN UDP to 443 is rejected with ICMP at once (another UDP port is not),
        /// while TCP to 443 is still intercepted and relayed.
        @Test func blockQuic() async throws {
            try await withEnv(wans: 1, rateMbit: 100, bare: true) { env in
                let config = env.tmp.file("quic.toml")
                try Files.write("""
                    [[listener]]
                    listen = "[::]:7000"
                    mode = "transparent"

                    [interception]
                    lan_interfaces = ["lan0"]
                    exclude = ["192.168.50.0/24", "fd00:50::/64", "127.0.0.0/8", "::1/128"]
                    block_quic = true

                    [[wan]]
                    interface = "wan1"
                    """, to: config)
                let g = try await GatewaySetup.start(env, config: config.path)
                // UDP listeners on srv: without the rule nothing would answer with ICMP.
                for port in [443, 444] {
                    let p = try BackgroundProcess(in: env.tb.srvNS, ["socat", "-u", "UDP6-RECV:\(port),ipv6only=0", "/dev/null"], log: env.tmp.file("udp\(port).log"))
                    env.started.add(p)
                }
                try await Task.sleep(nanoseconds: 300_000_000)
                let udp = """
                    import socket, sys
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    s.connect((sys.argv[1], int(sys.argv[2])))
                    s.settimeout(2)
                    try:
                        s.send(b"quic"); s.recv(100); print("answered")
                    except ConnectionRefusedError: print("refused")
                    except socket.timeout: print("timeout")
                    """
                let quic = try await env.lan(["python3", "-c", udp, env.tb.srvIP, "443"])
                #expect(quic.stdout.contains("refused"), "UDP to 443: \(quic.summary)")
                let other = try await env.lan(["python3", "-c", udp, env.tb.srvIP, "444"])
                #expect(other.stdout.contains("timeout"), "UDP to 444 should pass untouched: \(other.summary)")
                _ = try await env.server(["python3", "-m", "http.server", "443", "--bind", "::", "--directory", g.www.path], port: 443, mptcp: true, log: "https.log")
                let body = try await g.body(bytes: 1_000_000)
                let got = try await g.download("http://\(env.tb.srvIP):443/body.bin", to: "tcp443.bin")
                #expect(try await Files.sha256(got.file) == body.sha)
                #expect(await g.relay.waitForLog("upstream=\(env.tb.srvIP):443 mptcp=yes"), "TCP to 443 was not relayed: \(tail(g.relay.log))")
            }
        }
    }
}
