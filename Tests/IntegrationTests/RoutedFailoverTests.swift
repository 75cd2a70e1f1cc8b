import Foundation
import Testing
import TestSupport

/// A site as issue 22 describes it, on a `--bare --nat` testbed: per-WAN masquerade (the
/// ISPs route only their own addresses), the transparent relay with both WANs probed, a
/// resolver on the gateway (dnsmasq, no cache) forwarding to a DNS server beyond both WANs,
/// the LAN client resolving through it, and a UDP echo beyond both WANs.
struct RoutedSite {
    let env: Env
    let g: GatewaySetup
    let config: URL
    let script: String
    let smallSHA: String
    /// The LAN namespace's resolv.conf (`ip netns exec` binds it over /etc/resolv.conf).
    let netnsEtc: URL

    static let name = "far.test"

    static func start(_ env: Env, admin: Int, extra: String = "", intercept: Bool = true) async throws -> RoutedSite {
        let tb = env.tb
        let config = env.tmp.file("routed.toml")
        try Files.write("""
            [[listener]]
            listen = "[::]:7000"
            mode = "transparent"

            [[listener]]
            listen = "\(tb.gwLanIP):8081"
            mode = "forward"
            upstream = "\(tb.srvFarIP):8080"

            [interception]
            lan_interfaces = ["lan0"]
            exclude = ["192.168.50.0/24", "127.0.0.0/8", "fd00:50::/64", "::1/128", "fe80::/10"]
            ipv6 = true

            [admin]
            listen = "127.0.0.1:\(admin)"

            \(extra)

            \(probedWans(tb))
            """, to: config)
        let script = Repo.path("scripts/lib/routed-peer.py").path
        // Beyond both WANs: an authoritative DNS server and the UDP echo.
        let dnsLog = env.tmp.file("dns-srv.log")
        env.started.add(try BackgroundProcess(in: tb.srvNS, ["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
                                                             "--listen-address=\(tb.srvFarIP)", "--address=/\(name)/\(tb.srvFarIP)",
                                                             "--pid-file=\(env.tmp.file("dns-srv.pid").path)", "--user=root"], log: dnsLog))
        let echo = try BackgroundProcess(in: tb.srvNS, ["python3", script, "echo", "7", tb.srvFarIP, tb.srvFarIP6], log: env.tmp.file("echo.log"))
        env.started.add(echo)
        // The gateway's resolver, no cache: every lookup goes out over a WAN.
        env.started.add(try BackgroundProcess(in: tb.gwNS, ["dnsmasq", "--no-daemon", "--no-resolv", "--no-hosts", "--bind-interfaces",
                                                            "--listen-address=\(tb.gwLanIP)", "--server=\(tb.srvFarIP)", "--cache-size=0",
                                                            "--pid-file=\(env.tmp.file("dns-gw.pid").path)", "--user=root"],
                                                    log: env.tmp.file("dns-gw.log")))
        let netnsEtc = URL(fileURLWithPath: "/etc/netns/\(tb.lanNS)")
        try FileManager.default.createDirectory(at: netnsEtc, withIntermediateDirectories: true)
        try Files.write("nameserver \(tb.gwLanIP)\n", to: netnsEtc.appendingPathComponent("resolv.conf"))
        let g = try await GatewaySetup.start(env, config: config.path, port: 8081, intercept: intercept)
        let small = g.www.appendingPathComponent("small.bin")
        try await Files.random(small, bytes: 200_000)
        let site = RoutedSite(env: env, g: g, config: config, script: script, smallSHA: try await Files.sha256(small), netnsEtc: netnsEtc)
        #expect(await echo.waitForLog("listening"), "udp echo: \(echo.log)")
        #expect(await g.relay.waitForLog("wan: wan1 probes answer"), "\(tail(g.relay.log))")
        #expect(await g.relay.waitForLog("wan: wan2 probes answer"), "\(tail(g.relay.log))")
        return site
    }

    func remove() { try? FileManager.default.removeItem(at: netnsEtc) }

    /// scripts/lib/routed-peer.py `flow` (a datagram every 50 ms) or `lookups` (a name lookup
    /// every 250 ms) on the LAN client, until its stop file exists (`finish`).
    func background(_ kind: String, _ target: String, _ arg: String) throws -> (BackgroundProcess, URL) {
        let stop = env.tmp.file("\(kind).stop")
        let p = try BackgroundProcess(in: env.tb.lanNS, ["python3", script, kind, target, arg, "120", stop.path], log: env.tmp.file("\(kind).log"))
        env.started.add(p)
        return (p, stop)
    }

    /// Stops a `flow` or `lookups` loop; its gaps, as text ("3.55 s at 1.9 s, ...").
    func finish(_ p: BackgroundProcess, stop: URL) async throws -> String {
        let s = try await summary(p, stop: stop)
        return "\(s.answered) of \(s.sent) answered, gaps: \(s.gapsText.isEmpty ? "none" : s.gapsText.joined(separator: ", "))"
    }

    /// Stops a `flow` or `lookups` loop and reads the summary it printed last.
    func summary(_ p: BackgroundProcess, stop: URL) async throws -> FlowSummary {
        try Files.write("", to: stop)
        #expect(await p.waitForExit(timeout: 10), "\(p.command) ends")
        return try JSONDecoder().decode(FlowSummary.self, from: Data((p.log.split(separator: "\n").last.map(String.init) ?? "").utf8))
    }

    /// `count` fetches by host name (each a different name, so each is a lookup), all at
    /// once: how many came back byte-exact.
    func fetchesByName(_ label: String, count: Int = 5, maxTime: Int = 8) async throws -> Int {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for i in 1...count {
                group.addTask {
                    let file = env.tmp.file("\(label)\(i).bin")
                    let r = try await env.lan(["curl", "-sS", "--max-time", "\(maxTime)", "-o", file.path,
                                               "http://\(label)\(i).\(Self.name):8080/small.bin"], timeout: Double(maxTime) + 10)
                    guard r.succeeded else { print("routed: fetch \(label)\(i): \(r.summary)"); return false }
                    return try await Files.sha256(file) == smallSHA
                }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
    }

    /// `count` UDP exchanges with the echo beyond both WANs, each from a new socket (a new
    /// flow), all at once: how many were answered.
    func udpExchanges(count: Int = 5, to address: String? = nil) async throws -> Int {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 1...count {
                group.addTask { try await env.lan(["python3", script, "once", address ?? env.tb.srvFarIP, "7", "3"], timeout: 15).succeeded }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
    }
}

/// Datagrams to the UDP echo by the WAN address they arrived from (after the gateway's
/// NAT), counted in the server namespace.
struct EchoCounters {
    let env: Env

    func install() async throws {
        _ = try await Proc.check(in: env.tb.srvNS, ["nft", "-f", "-"], stdin: """
            table inet echo_counters {
                chain rx {
                    type filter hook prerouting priority -400;
                    ip saddr 10.1.0.1 udp dport 7 counter comment "wan1"
                    ip saddr 10.2.0.1 udp dport 7 counter comment "wan2"
                }
            }
            """)
    }

    func read() async throws -> (wan1: Int, wan2: Int) {
        let text = try await Proc.check(in: env.tb.srvNS, ["nft", "list", "table", "inet", "echo_counters"])
        var out: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            guard let packets = line.range(of: "packets "), let comment = line.range(of: "comment \"") else { continue }
            out[String(line[comment.upperBound...].prefix { $0 != "\"" })] = Int(line[packets.upperBound...].prefix { $0.isNumber }) ?? 0
        }
        return (out["wan1"] ?? 0, out["wan2"] ?? 0)
    }
}

/// The summary of scripts/lib/routed-peer.py `flow` and `lookups`.
struct FlowSummary: Decodable {
    var sent: Int
    var answered: Int
    var gaps: [[Double]]
    var last_answer: Double
    var duration: Double

    /// "3.45 s from 1.9 s": each gap's length and when it began (seconds into the run).
    var gapsText: [String] { gaps.map { String(format: "%.2f s from %.1f s", $0[1], $0[0]) } }
}

extension Integration {
    /// Issue 22: with a WAN out of service, everything the gateway routes, and its own
    /// traffic, leaves by the WANs in service — not only the relay's connections.
    @Suite("Routed traffic follows the WANs in service")
    struct RoutedFailover {
        /// WAN 1 (the main table's default) blackholed with its link up: name lookups through
        /// the gateway's resolver and LAN UDP get through WAN 2; a running UDP flow NATed to
        /// WAN 1 moves to WAN 2, stays there when WAN 1 comes back, and moves back only when
        /// WAN 2 dies in turn. `wan`, /api, /metrics and the log say where routed traffic goes.
        @Test func deadPrimaryRoutedTrafficMoves() async throws {
            try await withEnv(wans: 2, rateMbit: 50, bare: true, nat: true) { env in
                let site = try await RoutedSite.start(env, admin: 9951)
                defer { site.remove() }
                let counters = EchoCounters(env: env)
                try await counters.install()
                #expect(try await site.fetchesByName("before", count: 1) == 1, "a fetch by name before the outage")
                #expect(try await site.udpExchanges(count: 1) == 1, "a UDP exchange before the outage")

                let (flow, stop) = try site.background("flow", env.tb.srvFarIP, "7")
                let (lookups, lookupStop) = try site.background("lookups", env.tb.gwLanIP, RoutedSite.name)
                try await Task.sleep(nanoseconds: 2_000_000_000)
                #expect(try await counters.read().wan1 > 10, "the flow starts on WAN 1 (the main table's default)")

                try await env.tb.blackhole(1, true)
                let outage = Date()
                #expect(await site.g.relay.waitForLog("wan: wan1 out of service", timeout: 10), "\(tail(site.g.relay.log))")
                #expect(await site.g.relay.waitForLog("routed IPv4 traffic and the gateway's own leave by wan2 too"), "\(tail(site.g.relay.log))")
                #expect(await site.g.relay.waitForLog("wan: wan1 out of service: ", count: 2), "the NATed flows released: \(tail(site.g.relay.log))")
                let wait = 8 - Date().timeIntervalSince(outage)
                if wait > 0 { try await Task.sleep(nanoseconds: UInt64(wait * 1e9)) }
                let byName = try await site.fetchesByName("outage")
                let udp = try await site.udpExchanges()
                let udp6 = try await site.udpExchanges(count: 1, to: env.tb.srvFarIP6)
                let lookupGaps = try await site.finish(lookups, stop: lookupStop)
                print("routed failover: name lookups every 250 ms through the gateway's resolver: \(lookupGaps)")
                print("routed failover: 8 s into the outage of WAN 1: \(byName) of 5 fetches by host name, \(udp) of 5 LAN UDP exchanges (and \(udp6) of 1 over IPv6) succeeded")
                #expect(byName == 5, "fetches by name through the gateway's resolver\n\(tail(site.g.relay.log))")
                #expect(udp == 5 && udp6 == 1, "routed LAN UDP")

                // What an operator sees.
                let bin = try await RelayBinary.path()
                let wan = try await Proc.check(in: env.tb.gwNS, [bin, "wan", "--config", site.config.path])
                #expect(wan.contains("routed traffic: IPv4: by wan2 (the main table's default route leads to a WAN out of service)"), "\(wan)")
                #expect(wan.contains("released:"), "\(wan)")
                let api = try await Proc.check(in: env.tb.gwNS, ["curl", "-sS", "http://127.0.0.1:9951/api/connections"])
                #expect(api.contains("\"via\":\"wan2\""), "\(api)")
                let metrics = try await Proc.check(in: env.tb.gwNS, ["curl", "-sS", "http://127.0.0.1:9951/metrics"])
                #expect(metrics.contains("mptcp_relay_routing_detour{family=\"IPv4\"} 1"), "\(metrics)")
                #expect(metrics.contains("mptcp_relay_wan_flows_released_total{interface=\"wan1\"}"), "\(metrics)")
                let chromium = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--user-data-dir=\(env.tmp.file("chromium").path)",
                                "--virtual-time-budget=4000", "--dump-dom", "http://127.0.0.1:9951/"]
                let dom = try await Proc.run(in: env.tb.gwNS, chromium, timeout: 90)
                #expect(dom.stdout.contains("data-family=\"IPv4\" data-via=\"wan2\"") && dom.stdout.contains("Routed IPv4 traffic: by wan2"),
                        "the dashboard says where routed traffic goes: \(dom.summary)")

                // Recovery: new flows take WAN 1 again; the flow that moved stays on WAN 2.
                try await env.tb.blackhole(1, false)
                #expect(await site.g.relay.waitForLog("wan: wan1 back in service", timeout: 10), "\(tail(site.g.relay.log))")
                #expect(await site.g.relay.waitForLog("wan: new IPv4 connections follow the main routing table again (routed traffic too)", timeout: 3))
                try await Task.sleep(nanoseconds: 500_000_000)
                let a = try await counters.read()
                try await Task.sleep(nanoseconds: 3_000_000_000)
                let b = try await counters.read()
                print("routed failover: after WAN 1 recovered, the moved flow sent \(b.wan2 - a.wan2) datagrams over WAN 2 and \(b.wan1 - a.wan1) over WAN 1 in 3 s")
                #expect(b.wan1 == a.wan1 && b.wan2 - a.wan2 > 20, "the flow that moved stays where it is: \(a) -> \(b)")
                #expect(try await site.udpExchanges(count: 1) == 1)
                #expect(try await counters.read().wan1 > b.wan1, "a new flow takes WAN 1 again")

                // WAN 2 dies in turn: the flow moves back, WAN 1 being the only one left.
                try await env.tb.blackhole(2, true)
                #expect(await site.g.relay.waitForLog("wan: wan2 out of service", timeout: 10), "\(tail(site.g.relay.log))")
                try await Task.sleep(nanoseconds: 1_500_000_000)
                let c = try await counters.read()
                try await Task.sleep(nanoseconds: 2_000_000_000)
                let d = try await counters.read()
                #expect(d.wan1 - c.wan1 > 15, "the flow moves back to WAN 1, the only WAN left: \(c) -> \(d)")

                let summary = try await site.summary(flow, stop: stop)
                let gaps = summary.gapsText
                print("routed failover: UDP flow every 50 ms: \(summary.answered) of \(summary.sent) answered; gaps: \(gaps.joined(separator: ", ")) (WAN 1 blackholed at about 2 s; detection: 3 rounds of 1 s)")
                #expect(summary.last_answer > summary.duration - 1, "the flow is answered at its end: \(summary)")
                // Without the conntrack entry deleted the flow stays on the dead WAN as long as it
                // sends (each datagram refreshes the entry): any bound well under that proves the move.
                #expect(summary.gaps.allSatisfy { $0[1] < 10 }, "each outage of the flow ends: \(gaps)")
            }
        }

        /// The control: the same outage with `[routing] follow_service = false`. The relay
        /// still steers its own connections, but the gateway's resolver and the LAN's UDP
        /// follow the main table into the dead WAN.
        @Test func withoutFollowServiceTheSiteIsOffline() async throws {
            try await withEnv(wans: 2, rateMbit: 50, bare: true, nat: true) { env in
                let site = try await RoutedSite.start(env, admin: 9952, extra: "[routing]\nfollow_service = false\n")
                defer { site.remove() }
                #expect(try await site.fetchesByName("before", count: 1) == 1)
                let (flow, stop) = try site.background("flow", env.tb.srvFarIP, "7")
                let (lookups, lookupStop) = try site.background("lookups", env.tb.gwLanIP, RoutedSite.name)
                try await Task.sleep(nanoseconds: 2_000_000_000)
                try await env.tb.blackhole(1, true)
                let outage = Date()
                #expect(await site.g.relay.waitForLog("wan: wan1 out of service", timeout: 10), "\(tail(site.g.relay.log))")
                let wait = 8 - Date().timeIntervalSince(outage)
                if wait > 0 { try await Task.sleep(nanoseconds: UInt64(wait * 1e9)) }
                let byName = try await site.fetchesByName("outage")
                let udp = try await site.udpExchanges()
                let lookupGaps = try await site.finish(lookups, stop: lookupStop)
                let flowGaps = try await site.finish(flow, stop: stop)
                print("routed failover, control: name lookups every 250 ms: \(lookupGaps); UDP flow every 50 ms: \(flowGaps)")
                print("routed failover, control ([routing] follow_service = false): \(byName) of 5 fetches by host name, \(udp) of 5 LAN UDP exchanges")
                #expect(byName == 0 && udp == 0, "without the feature the dead WAN takes the lookups and the UDP")
                let rules = try await Proc.check(in: env.tb.gwNS, ["ip", "rule"])
                #expect(!rules.contains("suppress_prefixlength"), "\(rules)")
            }
        }

        /// Probe targets that answered at first are then blocked on every WAN (as some
        /// networks block 1.1.1.1 and 8.8.8.8): the relay fails open, says so, and the site
        /// keeps working. (Configured targets stand in for the defaults: test traffic never
        /// goes to public addresses, even inside namespaces.)
        @Test func probesBlockedEverywhereFailOpen() async throws {
            try await withEnv(wans: 2, rateMbit: 50, bare: true, nat: true) { env in
                let site = try await RoutedSite.start(env, admin: 9953)
                defer { site.remove() }
                _ = try await Proc.check(in: env.tb.srvNS, ["nft", "-f", "-"], stdin: """
                    table inet block_probes {
                        chain rx {
                            type filter hook prerouting priority -300;
                            ip daddr \(env.tb.srvFarIP) tcp dport 9 drop
                            ip daddr \(env.tb.srvFarIP) icmp type echo-request drop
                        }
                    }
                    """)
                #expect(await site.g.relay.waitForLog("wan: FAIL OPEN: the probes of every WAN with a link fail", timeout: 12), "\(tail(site.g.relay.log))")
                let byName = try await site.fetchesByName("open")
                let udp = try await site.udpExchanges()
                let (r, _) = try await WanHealthIntegration.fetch(env, "forward.bin")
                print("routed failover: probes blocked on every WAN: fail open; \(byName) of 5 fetches by name, \(udp) of 5 UDP exchanges, forward listener: curl exit \(r.status)")
                #expect(byName == 5 && udp == 5 && r.succeeded, "a site whose probes are blocked keeps working")
                #expect(!site.g.relay.log.contains("refused: no WAN in service"), "nothing refused while failing open")
                let endpoints = try await Proc.check(in: env.tb.gwNS, ["ip", "mptcp", "endpoint", "show"])
                #expect(endpoints.contains("10.1.0.1 ") && endpoints.contains("10.2.0.1 "), "endpoints stay while failing open:\n\(endpoints)")
                let status = try await Proc.check(in: env.tb.gwNS, [try await RelayBinary.path(), "status", "--admin", "127.0.0.1:9953"])
                #expect(status.contains("fail open"), "\(status)")

                _ = try await Proc.check(in: env.tb.srvNS, ["nft", "delete", "table", "inet", "block_probes"])
                #expect(await site.g.relay.waitForLog("wan: fail open ends", timeout: 10), "\(tail(site.g.relay.log))")
            }
        }

        /// SIGKILL while WAN 1 is out: the rules, the detour and the pinning table stay behind;
        /// a restarted relay converges (routed UDP flows out of WAN 2 again), and a clean stop
        /// leaves the host's rules, routes, nftables and endpoints as they were before.
        @Test func killRestartConvergesAndStopRestores() async throws {
            try await withEnv(wans: 2, rateMbit: 50, bare: true, nat: true) { env in
                func snapshot() async throws -> String {
                    var out = ""
                    for cmd in [["ip", "-4", "rule"], ["ip", "-6", "rule"], ["ip", "-4", "route", "show", "table", "all"],
                                ["ip", "-6", "route", "show", "table", "all"], ["nft", "list", "ruleset"], ["ip", "mptcp", "endpoint", "show"]] {
                        out += "# \(cmd.joined(separator: " "))\n" + (try await Proc.check(in: env.tb.gwNS, cmd)) + "\n"
                    }
                    return out
                }
                let before = try await snapshot()
                let site = try await RoutedSite.start(env, admin: 9954, intercept: false)
                defer { site.remove() }
                try await env.tb.blackhole(1, true)
                // The log line comes before the route is in: wait for the route itself.
                var detour = false
                for _ in 0..<100 where !detour {
                    detour = (try? await Proc.check(in: env.tb.gwNS, ["ip", "-4", "route", "show", "table", "1000"]))?.contains("default via 10.2.0.2") == true
                    if !detour { try await Task.sleep(nanoseconds: 100_000_000) }
                }
                #expect(detour, "the detour via WAN 2 is in place: \(tail(site.g.relay.log))")
                env.started.checksOwnExit(site.g.relay)  // killed on purpose: status 137
                site.g.relay.signal(SIGKILL)
                #expect(await site.g.relay.waitForExit(timeout: 5))
                let left = try await Proc.check(in: env.tb.gwNS, ["ip", "-4", "route", "show", "table", "1000"])
                #expect(left.contains("default via 10.2.0.2"), "a killed relay leaves its detour: \(left)")

                let bin = try await RelayBinary.path()
                let again = try await env.daemon(in: env.tb.gwNS, [bin, "run", "--config", site.config.path], port: 8081, log: "restarted.log")
                #expect(await again.waitForLog("routed IPv4 traffic and the gateway's own leave by wan2 too", timeout: 12), "\(tail(again.log))")
                #expect(try await site.udpExchanges(count: 3) == 3, "routed UDP after the restart")
                #expect(try await site.fetchesByName("restarted", count: 2) == 2, "lookups after the restart")

                again.signal(SIGTERM)
                #expect(await again.waitForExit(timeout: 10))
                #expect(again.exitStatus == 0, "the restarted relay stops cleanly: \(tail(again.log))")
                let after = try await snapshot()
                #expect(after == before, "the host as it was before the relay started:\n--- before\n\(before)\n--- after\n\(after)")
            }
        }
    }
}
