import Foundation
import Testing
import TestSupport

extension Integration {
    /// Issues 8 and 28: a soak with the product's own set-up (a bare gateway whose WANs come
    /// from `[[wan]]`, with health probes) and the promises a user is given checked, not
    /// merely survived. Mixed bulk (3 MB downloads), short (echo of up to 20 KB) and
    /// client-aborted connections run through forward, transparent (TPROXY), tunnel
    /// (redirect + `via`, to a tunnel server) and a forward listener that a reload added, at
    /// once. Every relay gets a SIGHUP every 3 s that changes the carrying listeners'
    /// settings (idle timeout, the added listener's upstream port).
    ///
    /// Phase 1, reloads only: every transfer ends byte-exact (or aborted by its own client):
    /// a reload resets nothing. Phase 2, reloads while WAN 2 flaps every 8 s and WAN 1 once:
    /// never a truncated, corrupt or stalled transfer; a reset or refusal is allowed only to a
    /// transfer that was in flight when a WAN went down (its only subflow may have been on
    /// that WAN: the join had not been made yet), and they are counted. Every other transfer
    /// — started with a WAN in service, another WAN in service all along — is byte-exact.
    @Suite("Soak (issues 8, 28)")
    struct Soak {
        /// Seconds of traffic in phase 2 (phase 1 is 24 s); MPTCP_RELAY_SOAK_SECONDS sets
        /// another (a longer soak by hand).
        static let seconds = Int(ProcessInfo.processInfo.environment["MPTCP_RELAY_SOAK_SECONDS"] ?? "") ?? 48
        static let reloadPhase = 24

        @Test func mixedTrafficWhileLinksFlapAndConfigsReload() async throws {
            try await withEnv(wans: 2, rateMbit: 100, bare: true) { env in
                let script = try writeHardeningScript(env)
                let bin = try await RelayBinary.path()
                let webIP = Integration.Hardening.webIP
                let far = env.tb.srvFarIP
                let key = try TunnelSetup.writeKey(env.tmp.file("tunnel.key"))
                for ns in [env.tb.gwNS, env.tb.srvNS] {
                    _ = try await Proc.check(in: ns, ["sysctl", "-qw", "net.ipv4.tcp_fastopen=3"])
                }
                _ = try await Proc.check(in: env.tb.srvNS, ["ip", "addr", "add", "\(webIP)/32", "dev", "lo"])
                // 7601 and 7604 (forward upstreams), 7602 (transparent destination), 7603 (the
                // tunnel's destination, reached from the tunnel server): MPTCP, TCP accepted too.
                _ = try await env.server(["python3", script, "soak-server", "--ports", "7601,7602,7603,7604"], port: 7601, mptcp: true, log: "soak-server.log")

                // Version 0 is the start; a reload adds the listener on 7690, then they
                // alternate between 1 and 2, which differ in every carrying listener's settings.
                let interception = "\n[interception]\nlan_interfaces = [\"lan0\"]\nexclude = [\"192.168.50.0/24\", \"127.0.0.0/8\"]\n"
                func gatewayConfig(_ v: Int) -> String {
                    """
                    idle_timeout = \(v == 2 ? 25 : 20)
                    [[listener]]
                    listen = "\(env.tb.gwLanIP):7600"
                    mode = "forward"
                    upstream = "\(far):7601"

                    [[listener]]
                    listen = "0.0.0.0:7000"
                    mode = "transparent"

                    \(v == 0 ? "" : "\n[[listener]]\nlisten = \"\(env.tb.gwLanIP):7690\"\nmode = \"forward\"\nupstream = \"\(far):\(v == 2 ? 7604 : 7601)\"\n")
                    \(interception)

                    \(probedWans(env.tb))
                    """
                }
                // The tunnel gateway is a second relay (one transparent or redirect listener per
                // family and config). Only one relay may manage the WANs: this one dials by the
                // main table, whose default route is WAN 1's.
                func tunnelGatewayConfig(_ v: Int) -> String {
                    """
                    idle_timeout = \(v == 2 ? 25 : 20)
                    [[listener]]
                    listen = "0.0.0.0:7001"
                    mode = "redirect"
                    via = "\(far):4000"
                    key_file = "\(key)"
                    # Fast Open off: with it, about 5 % of short tunnelled connections are reset at
                    # once (TunnelTests.fastOpenNeverResetsShortConnections, a known issue).
                    fast_open = false
                    \(interception)
                    """
                }
                func serverConfig(_ v: Int) -> String {
                    """
                    idle_timeout = \(v == 2 ? 25 : 20)
                    [[listener]]
                    listen = "0.0.0.0:4000"
                    mode = "tunnel-server"
                    key_file = "\(key)"
                    allow = ["\(webIP)/32"]
                    """
                }
                let configs = [(env.tmp.file("gateway.toml"), gatewayConfig), (env.tmp.file("tunnel-gateway.toml"), tunnelGatewayConfig),
                               (env.tmp.file("server.toml"), serverConfig)]
                func writeConfigs(_ v: Int) throws {
                    for (file, make) in configs { try Files.write(make(v), to: file) }
                }
                try writeConfigs(0)
                for (file, _) in configs {
                    let check = try await Proc.run([bin, "check", "--config", file.path, "--no-bind"])
                    try #require(check.succeeded, "\(file.lastPathComponent): \(check.summary)")
                }
                let server = try await env.daemon(in: env.tb.srvNS, [bin, "run", "--config", configs[2].0.path], port: 4000, log: "tunnel-server.log")
                let gateway = try await env.daemon(in: env.tb.gwNS, [bin, "run", "--config", configs[0].0.path], port: 7600, log: "gateway.log")
                let tunnelGateway = try await env.daemon(in: env.tb.gwNS, [bin, "run", "--config", configs[1].0.path], port: 7001, log: "tunnel-gateway.log")
                let relays = [("gateway", gateway), ("tunnel gateway", tunnelGateway), ("tunnel server", server)]
                for k in 1...2 {
                    #expect(await gateway.waitForLog("wan: wan\(k) probes answer", timeout: 30), "\(tail(gateway.log))")
                }

                // Interception of two destination ports only: TPROXY for 7602, REDIRECT for 7603.
                _ = try await Proc.check(in: env.tb.gwNS, ["nft", "-f", "-"], stdin: """
                    table inet it_soak {
                        chain intercept {
                            type filter hook prerouting priority mangle; policy accept;
                            iifname "lan0" tcp dport 7602 socket transparent 1 meta mark set 0x4d50 accept
                            iifname "lan0" meta nfproto ipv4 tcp dport 7602 tproxy ip to :7000 meta mark set 0x4d50 accept
                        }
                    }
                    table ip it_soak_nat {
                        chain pre { type nat hook prerouting priority dstnat; iifname "lan0" tcp dport 7603 redirect to :7001; }
                    }
                    """)
                _ = try await Proc.check(in: env.tb.gwNS, ["ip", "-4", "rule", "add", "fwmark", "0x4d50", "lookup", "100"])
                _ = try await Proc.check(in: env.tb.gwNS, ["ip", "-4", "route", "replace", "local", "0.0.0.0/0", "dev", "lo", "table", "100"])

                // The first reload adds the listener on 7690; the soak uses it from then on.
                let baseline = relays.map { Net.openFDs(pid: $0.1.pid) }
                try writeConfigs(1)
                for (_, r) in relays { r.signal(SIGHUP) }
                var reloads = 1
                for (name, r) in relays { try #require(await r.waitForLog("reloaded:", timeout: 15), "\(name): \(tail(r.log))") }
                try await Net.waitListening(ns: env.tb.gwNS, port: 7690, alive: { gateway.isRunning })

                let seconds = Self.reloadPhase + Self.seconds
                let soak = try BackgroundProcess(in: env.tb.lanNS, ["python3", script, "soak-client", "--seconds", "\(seconds)", "--workers", "8",
                                                                    "--bulk", "3000000", "--stall", "30", "--xfers",
                                                                    "--targets", "forward=\(env.tb.gwLanIP):7600,transparent=\(far):7602,tunnel=\(webIP):7603,added=\(env.tb.gwLanIP):7690"],
                                                 log: env.tmp.file("soak-client.log"))
                env.started.add(soak)
                let start = monotonicNow()

                // The disturbances, on a one-second clock, until the clients are done. Each
                // reload is awaited (two SIGHUPs pending at once would count as one).
                var tick = 0, flaps = 0, version = 1
                var wentDown: [Double] = []   // CLOCK_MONOTONIC of every link-down
                var wan1Down: [(Double, Double)] = []
                var phase2Start = 0.0
                func flap(_ k: Int, up: Bool) async throws {
                    let before = monotonicNow()
                    try await env.tb.link(k, up: up)
                    if !up { wentDown.append(before); flaps += 1 }
                    if k == 1 { if up { wan1Down[wan1Down.count - 1].1 = monotonicNow() } else { wan1Down.append((before, .infinity)) } }
                }
                do {
                    while soak.isRunning && tick < seconds + 90 {
                        try await Task.sleep(nanoseconds: 1_000_000_000)
                        tick += 1
                        if tick % 3 == 0 {
                            for (_, r) in relays { _ = await r.waitForLog("reloaded:", count: reloads, timeout: 10) }
                            version = version == 1 ? 2 : 1
                            try writeConfigs(version)
                            for (_, r) in relays { r.signal(SIGHUP) }
                            reloads += 1
                        }
                        guard tick > Self.reloadPhase && tick <= seconds else { continue }
                        if phase2Start == 0 { phase2Start = monotonicNow() }
                        let t = tick - Self.reloadPhase
                        switch t % 8 {
                        case 2: try await flap(2, up: false)
                        case 5: try await flap(2, up: true)
                        default: break
                        }
                        // WAN 1 (the main table's default route) once, while WAN 2 is up.
                        if t == 14 { try await flap(1, up: false) }
                        if t == 16 { try await flap(1, up: true) }
                    }
                } catch {
                    _ = try? await env.tb.link(1, up: true)
                    _ = try? await env.tb.link(2, up: true)
                    throw error
                }
                try await env.tb.link(1, up: true)
                try await env.tb.link(2, up: true)
                #expect(await soak.waitForExit(timeout: 60), "the soak clients never finished")

                // Back to the start's listener set, so the descriptor counts match the baseline.
                for (_, r) in relays { _ = await r.waitForLog("reloaded:", count: reloads, timeout: 15) }
                try writeConfigs(0)
                for (_, r) in relays { r.signal(SIGHUP) }
                reloads += 1
                for (name, r) in relays {
                    #expect(await r.waitForLog("reloaded:", count: reloads, timeout: 15),
                            "\(name): \(occurrences(of: "reloaded:", in: r.log)) reloads logged of \(reloads) sent:\n\(tail(r.log, lines: 10))")
                }

                // Every transfer, judged by when it ran.
                struct Transfer { let path, kind, outcome: String; let start, end: Double }
                let report = soak.log
                let transfers = report.split(separator: "\n").compactMap { l -> Transfer? in
                    let f = l.split(separator: " ")
                    guard f.count == 6, f[0] == "xfer", let s = Double(f[4]), let e = Double(f[5]) else { return nil }
                    return Transfer(path: String(f[1]), kind: String(f[2]), outcome: String(f[3]), start: s, end: e)
                }
                let good: Set<String> = ["ok", "aborted"]
                let broken: Set<String> = ["truncated", "corrupt", "stalled"]
                // In flight when a WAN went down, or started within half a second of it (the
                // manager hears of the link change over netlink a moment later).
                func exposed(_ t: Transfer) -> Bool { wentDown.contains { t.start - 0.5 < $0 && $0 < t.end } }
                // The tunnel gateway does not steer: its connections started while WAN 1 (the
                // main table's default route) was down have no route.
                func unrouted(_ t: Transfer) -> Bool { t.path == "tunnel" && wan1Down.contains { $0.0 - 0.5 < t.start && t.start < $0.1 + 0.5 } }
                let phase1 = transfers.filter { $0.end < (phase2Start > 0 ? phase2Start : .infinity) }
                let phase2 = transfers.filter { phase2Start > 0 && $0.end >= phase2Start }
                let phase1Bad = phase1.filter { !good.contains($0.outcome) }
                let phase2Broken = phase2.filter { broken.contains($0.outcome) }
                let phase2Failed = phase2.filter { !good.contains($0.outcome) }
                let unexcused = phase2Failed.filter { !exposed($0) && !unrouted($0) && !broken.contains($0.outcome) }
                let unroutedCount = phase2Failed.filter { !exposed($0) && unrouted($0) }.count
                func describe(_ ts: [Transfer]) -> String {
                    ts.prefix(10).map { "\($0.path)/\($0.kind) \($0.outcome) t=\(String(format: "%.1f-%.1f", $0.start - start, $0.end - start))" }.joined(separator: "\n")
                }
                let byPath = Dictionary(grouping: phase2Failed, by: { "\($0.path)/\($0.outcome)" }).mapValues(\.count).sorted { $0.key < $1.key }
                print("soak: phase 1 (\(Self.reloadPhase) s, reloads only): \(phase1.count) transfers, \(phase1Bad.count) not byte-exact; "
                      + "phase 2 (\(Self.seconds) s, reloads and \(flaps) link-downs at t=\(wentDown.map { String(format: "%.1f", $0 - start) })): "
                      + "\(phase2.count) transfers, \(phase2Failed.count) reset or refused (\(byPath.map { "\($0.key)=\($0.value)" }.joined(separator: " "))), "
                      + "of which \(unroutedCount) tunnel ones started while WAN 1 was down and \(unexcused.count) neither; \(reloads) reloads in all")
                // What the relays said about the connections that did not end "done".
                func notDone() -> String {
                    relays.map { name, r in
                        "\(name):\n" + r.log.split(separator: "\n").filter { $0.contains("closed conn=") && !$0.contains(" done ") }.suffix(8).joined(separator: "\n")
                    }.joined(separator: "\n")
                }
                #expect(phase1Bad.isEmpty, "a reload reset or refused connections (no link changed in phase 1):\n\(describe(phase1Bad))\n\(notDone())")
                // A transfer stalled by a link-down (its only subflow was there) and ended by the
                // idle timeout got a clean FIN, so its client took a truncated stream for a
                // whole one. Bytes the relay wrote and the peer never acknowledged now make it
                // a reset (SIOCOUTQ, IdleTimeoutTests). Left: a stalled download leaves nothing
                // unacknowledged at the relay (the far sender holds the bytes), so it still
                // ends with a FIN. Counted apart, as a known issue.
                let idleTruncated = phase2Broken.filter { $0.outcome == "truncated" && exposed($0) && $0.end - $0.start >= 19 }
                let otherBroken = phase2Broken.filter { t in !idleTruncated.contains { $0.start == t.start && $0.path == t.path } }
                #expect(otherBroken.isEmpty, "truncated, corrupt or stalled transfers:\n\(describe(otherBroken))\n\(notDone())")
                withKnownIssue("the idle timeout ends a stalled connection with a clean FIN: its client sees a truncated stream as whole", isIntermittent: true) {
                    #expect(idleTruncated.isEmpty, "stalled by a link-down, then closed cleanly by the idle timeout:\n\(describe(idleTruncated))")
                }
                #expect(unexcused.isEmpty, "transfers that began with a WAN in service and kept one failed:\n\(describe(unexcused))\n\(notDone())")
                for path in ["forward", "transparent", "tunnel", "added"] {
                    for (kind, outcome, least) in [("bulk", "ok", 3), ("short", "ok", 10), ("abort", "aborted", 1)] {
                        let n = transfers.filter { $0.path == path && $0.kind == kind && $0.outcome == outcome }.count
                        #expect(n >= least, "\(path): only \(n) \(kind) transfers \(outcome)")
                    }
                }

                // Closes complete asynchronously; spare pipes go on the next tick. A connection
                // whose far end vanished while its only path was down (the reset never crossed)
                // is the idle timeout's to end: 20-25 s here, so the wait covers it.
                var after = relays.map { Net.openFDs(pid: $0.1.pid) }
                let deadline = Date().addingTimeInterval(60)
                while zip(after, baseline).contains(where: { $0.total != $1.total || $0.pipes != $1.pipes }) && Date() < deadline {
                    try await Task.sleep(nanoseconds: 250_000_000)
                    after = relays.map { Net.openFDs(pid: $0.1.pid) }
                }
                for (name, r) in relays {
                    print("soak: \(name): \(occurrences(of: "idle timeout", in: r.log)) connection(s) ended by the idle timeout")
                }
                for (i, (name, r)) in relays.enumerated() {
                    #expect(r.isRunning, "\(name) died:\n\(tail(r.log))")
                    #expect(!r.log.contains("critical") && !r.log.contains("Fatal error"), "\(name) lost a worker:\n\(tail(r.log))")
                    #expect(after[i].total == baseline[i].total, "\(name): \(after[i].total) descriptors after the soak, \(baseline[i].total) before")
                    #expect(after[i].pipes == baseline[i].pipes, "\(name): \(after[i].pipes) pipe descriptors after the soak, \(baseline[i].pipes) before")
                }
            }
        }
    }
}

/// CLOCK_MONOTONIC in seconds: the clock Python's time.monotonic() reads in the peers.
func monotonicNow() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}
