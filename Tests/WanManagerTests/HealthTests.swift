#if canImport(Glibc)
import Glibc
#endif
import Netlink
import RelayConfig
import Testing
@testable import WanManager

@Suite("WAN health probes")
struct HealthTests {
    let settings = HealthSettings()

    @Test func downAfterThreeFailuresUpAfterTwoAnswers() {
        var h = WanHealth()
        #expect(h.state == .unknown && h.inService, "a WAN not yet probed carries traffic")
        #expect(h.record(answered: true, detail: "ok", settings: settings) == .up)
        #expect(h.record(answered: false, detail: "x", settings: settings) == nil)
        #expect(h.record(answered: false, detail: "x", settings: settings) == nil)
        #expect(h.inService, "two failures are not enough")
        #expect(h.record(answered: false, detail: "timed out", settings: settings) == .down)
        #expect(!h.inService && h.lastResult == "timed out")
        #expect(h.record(answered: true, detail: "ok", settings: settings) == nil)
        #expect(h.record(answered: false, detail: "x", settings: settings) == nil, "a failure breaks the streak of answers")
        #expect(h.record(answered: true, detail: "ok", settings: settings) == nil)
        #expect(h.record(answered: true, detail: "ok", settings: settings) == .up)
        #expect(h.rounds == 8 && h.failures == 4)
        // An answer in the middle of failures starts the count again.
        _ = h.record(answered: false, detail: "x", settings: settings)
        _ = h.record(answered: false, detail: "x", settings: settings)
        _ = h.record(answered: true, detail: "ok", settings: settings)
        _ = h.record(answered: false, detail: "x", settings: settings)
        #expect(h.record(answered: false, detail: "x", settings: settings) == nil)
        #expect(h.record(answered: false, detail: "x", settings: settings) == .down)
        #expect(h.downReason == "x", "the round that took it out")
        _ = h.record(answered: true, detail: "ok", settings: settings)
        h.pause()
        #expect(h.state == .down && h.streak == 0, "a pause keeps the verdict and drops the streak")
        #expect(h.record(answered: true, detail: "ok", settings: settings) == nil)
        #expect(h.record(answered: true, detail: "ok", settings: settings) == .up)
        h.forget()
        #expect(h.state == .unknown && h.inService)
    }

    @Test func roundVerdicts() {
        var r = ProbeResult(wan: "wan1")
        #expect(r.verdict(defaultsAnswered: false) == nil, "nothing probed says nothing")
        r.unable = ["ping 192.0.2.1: Operation not permitted"]
        #expect(r.verdict(defaultsAnswered: false) == nil, "probes that could not start say nothing about the WAN")
        r.fallbackAnswered = ["ping gateway 10.1.0.2 in 0.3 ms"]
        #expect(r.verdict(defaultsAnswered: false)?.answered == true)
        #expect(r.verdict(defaultsAnswered: true) == nil, "a fallback answer no longer counts, and nothing failed")
        r.failed = ["tcp 1.1.1.1:443: no answer in 1 s"]
        #expect(r.verdict(defaultsAnswered: true)?.answered == false)
        #expect(r.verdict(defaultsAnswered: true)?.detail == "no answer: tcp 1.1.1.1:443: no answer in 1 s")
        r.answered = ["tcp 8.8.8.8:443 in 9 ms"]
        #expect(r.verdict(defaultsAnswered: true)?.answered == true, "any answer wins")
    }

    @Test func detectionTimeOfTheDefaults() {
        #expect(settings.detectionSeconds <= 5, "the issue's default: out of service within 5 s")
        #expect(settings.detectionSeconds == 4)
    }

    @Test func probeTargetsParse() {
        #expect(ProbeTarget("192.0.2.1:443") == .tcp(ip("192.0.2.1"), port: 443))
        #expect(ProbeTarget("[2001:db8::1]:80") == .tcp(ip("2001:db8::1"), port: 80))
        #expect(ProbeTarget("2001:db8::1") == .icmp(ip("2001:db8::1")))
        #expect(ProbeTarget("192.0.2.1") == .icmp(ip("192.0.2.1")))
        #expect(ProbeTarget("gateway") == .gateway)
        for bad in ["example.com:443", "192.0.2.1:0", "192.0.2.1:70000", "2001:db8::1:80x", "[2001:db8::1]", "", "gw"] {
            #expect(ProbeTarget(bad) == nil, "\(bad) must be refused")
        }
        #expect(ProbeTarget(ProbeTarget.tcp(ip("2001:db8::1"), port: 80).description) == .tcp(ip("2001:db8::1"), port: 80))
    }

    @Test func icmpChecksumIsRFC1071() {
        // The example of RFC 1071 section 3: 0001 f203 f4f5 f6f7 sums to ddf2, checksum 220d.
        #expect(ProbeSocket.checksum([0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]) == 0x220d)
        let packet = ProbeSocket.echoRequest(v6: false, identifier: 0x1234, sequence: 7)
        #expect(ProbeSocket.checksum(packet) == 0, "a packet with its checksum in place sums to zero")
        #expect(packet[0] == 8 && packet[6] == 0 && packet[7] == 7)
    }

    /// The jobs: targets of the WAN's families only, from its own address; the gateway as
    /// fallback only while the default targets never answered.
    @Test func jobsFollowFamiliesAndFallback() {
        let k = FakeKernel.twoWans()
        let wan = WanSpec(interface: "wan1", table: 1001, probes: [.tcp(ip("192.0.2.1"), port: 443), .icmp(ip("2001:db8::9")), .gateway])
        let job = WanManager.job(for: wan, link: FakeKernel.wan1, k.view, fallback: false)
        #expect(job.probes.map(\.source) == [ip("10.1.0.1"), ip("fd00:1::1"), ip("10.1.0.1"), ip("fd00:1::1")])
        #expect(job.probes.map(\.address) == [ip("192.0.2.1"), ip("2001:db8::9"), ip("10.1.0.2"), ip("fd00:1::2")])
        #expect(job.probes.allSatisfy { !$0.fallback })

        var v4only = k.view
        v4only.addresses.removeAll { $0.address.family == .v6 }
        let defaults = WanManager.job(for: WanSpec(interface: "wan2", table: 1002), link: FakeKernel.wan2, v4only, fallback: true)
        #expect(defaults.probes.map(\.address) == [ip("1.1.1.1"), ip("8.8.8.8"), ip("10.2.0.2")])
        #expect(defaults.probes.map(\.fallback) == [false, false, true])
        #expect(defaults.probes.map(\.acceptReset) == [false, false, true], "a RST from a default target (which listens) proves nothing")
        #expect(job.probes.map(\.acceptReset) == [true, true, true, true], "configured targets may be closed ports")
        let later = WanManager.job(for: WanSpec(interface: "wan2", table: 1002), link: FakeKernel.wan2, v4only, fallback: false)
        #expect(later.probes.count == 2, "once a default target answered, the gateway no longer judges")
        let off = WanManager.job(for: WanSpec(interface: "wan2", table: 1002, probes: []), link: FakeKernel.wan2, k.view, fallback: true)
        #expect(off.probes.isEmpty)
    }

    /// A real round on loopback: a closed port answers with a RST (the path works), a
    /// silent address does not.
    @Test(.enabled(if: geteuid() == 0, "SO_BINDTODEVICE needs CAP_NET_RAW")) func roundOnLoopback() throws {
        let source = ip("127.0.0.1")
        let jobs = [
            ProbeJob(wan: "answers", interface: "lo", probes: [.init(target: .tcp(ip("127.0.0.1"), port: 9), address: ip("127.0.0.1"), source: source, fallback: false),
                                                               .init(target: .icmp(ip("127.0.0.1")), address: ip("127.0.0.1"), source: source, fallback: false)]),
            // Bound to loopback, a TEST-NET address has no route: the probe fails at once or times out.
            ProbeJob(wan: "silent", interface: "lo", probes: [.init(target: .tcp(ip("192.0.2.1"), port: 9), address: ip("192.0.2.1"), source: source, fallback: false)]),
            // A probe this process cannot set up (no such device here) says nothing about the WAN.
            ProbeJob(wan: "unable", interface: "nosuchif0", probes: [.init(target: .icmp(ip("127.0.0.1")), address: ip("127.0.0.1"), source: source, fallback: false)]),
        ]
        let results = WanProber.round(jobs, timeout: 0.5, sequence: 1)
        #expect(results[0].answered.count == 2 && results[0].failed.isEmpty, "\(results[0])")
        #expect(results[1].answered.isEmpty && results[1].failed.count == 1, "\(results[1])")
        #expect(results[2].failed.isEmpty && results[2].unable.count == 1, "\(results[2])")
    }
}

/// Where new connections start.
@Suite("Uplink choice")
struct UplinkChoiceTests {
    /// Endpoints, per-WAN rules and routes alone: `[routing]` has a suite of its own (ServiceRoutingTests).
    let plan = WanPlan.twoWansWithoutServiceRouting
    let allIn: [String: String?] = ["wan1": String?.none, "wan2": String?.none]

    @Test func mainTableDecidesWhileItsWanIsInService() {
        let c = UplinkChoice.choose(plan, FakeKernel.twoWans().view, service: allIn)
        #expect(!c.isActive && c.exempt.isEmpty)
        // WAN 2 out: the main default route goes through WAN 1, nothing to steer.
        let c2 = UplinkChoice.choose(plan, FakeKernel.twoWans().view, service: ["wan1": String?.none, "wan2": "probes failing"])
        #expect(!c2.isActive)
    }

    @Test func primaryOutOfServiceSteersToTheOther() {
        var k = FakeKernel.twoWans()
        k.view.routes.append(Route(table: 254, destination: ip("10.1.0.0"), prefixLength: 24, gateway: nil, oif: 3, protocolID: 2))
        let c = UplinkChoice.choose(plan, k.view, service: ["wan1": "probes failing", "wan2": String?.none])
        #expect(c.v4 == .bind(ip("10.2.0.1"), via: "wan2") && c.v6 == .bind(ip("fd00:2::1"), via: "wan2"))
        #expect(c.exempt.contains(UplinkChoice.Prefix(address: ip("10.1.0.0"), length: 24)), "the main table's specific routes are not steered")
        #expect(!c.exempt.contains { $0.length == 0 })
    }

    @Test func regularBeforeBackup() {
        let three = WanPlan(wans: [WanSpec(interface: "wan1", table: 1001), WanSpec(interface: "wan3", backup: true, table: 1003),
                                   WanSpec(interface: "wan2", table: 1002)])
        var k = FakeKernel.twoWans()
        k.view.links.append(Link(ifindex: 5, name: "wan3", flags: 0x1 | 0x10000, operState: 6))
        k.view.addresses.append(InterfaceAddress(ifindex: 5, address: ip("10.3.0.1"), prefixLength: 24))
        let c = UplinkChoice.choose(three, k.view, service: ["wan1": "link down", "wan2": String?.none, "wan3": String?.none])
        #expect(c.v4 == .bind(ip("10.2.0.1"), via: "wan2"))
        let backupOnly = UplinkChoice.choose(three, k.view, service: ["wan1": "link down", "wan2": "probes failing", "wan3": String?.none])
        #expect(backupOnly.v4 == .bind(ip("10.3.0.1"), via: "wan3"))
        if case .refuse = backupOnly.v6 {} else { Issue.record("the backup has no IPv6 address and the IPv6 default leads to a dead WAN: refused, got \(backupOnly.v6)") }
    }

    @Test func noneInServiceRefuses() {
        let c = UplinkChoice.choose(plan, FakeKernel.twoWans().view, service: ["wan1": "probes failing (no answer)", "wan2": "link down"])
        #expect(c.v4 == .refuse("no WAN in service (wan1: probes failing (no answer); wan2: link down)"))
    }

    /// Review finding: the main default route through an interface that is not a [[wan]]
    /// (the primary uplink left to the administrator) stands even when every WAN is dead.
    @Test func defaultRouteThroughSomethingElseIsLeftAlone() {
        var k = FakeKernel.twoWans()
        k.view.routes = k.view.routes.map { var r = $0; if r.table == 254 { r.oif = 9 }; return r }
        let oneOut = UplinkChoice.choose(plan, k.view, service: ["wan1": "probes failing", "wan2": String?.none])
        #expect(oneOut == UplinkChoice())
        let allOut = UplinkChoice.choose(plan, k.view, service: ["wan1": "no such interface", "wan2": "link down"])
        #expect(allOut == UplinkChoice(), "no [[wan]] in service, but the main table's route does not use one: nothing is refused")
    }

    /// No default route in the main table (it lives in the administrator's own table, or
    /// there is no IPv6 uplink): nothing is bound, whatever the WANs' state.
    @Test func noMainDefaultRouteNoSteering() {
        var k = FakeKernel.twoWans()
        k.view.routes.removeAll { $0.table == 254 && $0.family == .v6 }
        let c = UplinkChoice.choose(plan, k.view, service: ["wan1": "probes failing", "wan2": String?.none])
        #expect(c.v4 == .bind(ip("10.2.0.1"), via: "wan2") && c.v6 == .mainTable)
    }

    /// A multipath default route (oif 0 in the dump): any WAN out of service may take a
    /// connection, so steering starts; with all in service it does not.
    @Test func multipathDefaultRoute() {
        var k = FakeKernel.twoWans()
        k.view.routes.removeAll { $0.table == 254 && $0.family == .v4 }
        k.view.routes.append(Route(table: 254, destination: ip("0.0.0.0"), prefixLength: 0, gateway: nil, oif: 0, protocolID: 3))
        #expect(UplinkChoice.choose(plan, k.view, service: allIn).v4 == .mainTable)
        #expect(UplinkChoice.choose(plan, k.view, service: ["wan1": "probes failing", "wan2": String?.none]).v4 == .bind(ip("10.2.0.1"), via: "wan2"))
    }
}

@Suite("WAN reconciler and probes")
struct ReconcilerHealthTests {
    /// Endpoints, per-WAN rules and routes alone: `[routing]` has a suite of its own (ServiceRoutingTests).
    let plan = WanPlan.twoWansWithoutServiceRouting

    /// Out of service: the endpoints go, the rule and routes stay (the probes leave by them).
    @Test func outOfServiceWithdrawsEndpointsOnly() {
        var k = FakeKernel.twoWans()
        let first = WanReconciler.reconcile(plan, k.view, owned: [], limits: plan.limits)
        k.apply(first.actions)
        let r = WanReconciler.reconcile(plan, k.view, owned: first.owned, limits: plan.limits, outOfService: ["wan1"])
        let deleted = r.actions.compactMap { if case .deleteEndpoint(let e) = $0 { return e.address } else { return nil } }
        #expect(Set(deleted) == [ip("10.1.0.1"), ip("fd00:1::1")])
        #expect(r.actions.count == 2, "nothing but the two endpoints: \(r.actions)")
        k.apply(r.actions)
        let back = WanReconciler.reconcile(plan, k.view, owned: r.owned, limits: plan.limits)
        let added = back.actions.compactMap { if case .addEndpoint(let e, _) = $0 { return e.address } else { return nil } }
        #expect(Set(added) == [ip("10.1.0.1"), ip("fd00:1::1")], "back in service: the endpoints return")
    }

    @Test func foreignEndpointOnAnOutOfServiceWanIsANote() {
        var k = FakeKernel.twoWans()
        k.view.endpoints.append(Endpoint(id: 1, address: ip("10.1.0.1"), flags: .subflow, ifindex: 3))
        let r = WanReconciler.reconcile(plan, k.view, owned: [], limits: plan.limits, outOfService: ["wan1"])
        #expect(!r.actions.contains { if case .deleteEndpoint = $0 { return true } else { return false } }, "never someone else's")
        #expect(r.notes.contains { $0.contains("wan1: out of service, but 10.1.0.1 is endpoint id 1, not created by mptcp-relay") }, "\(r.notes)")
    }
}

@Suite("[health] and probe config")
struct HealthConfigTests {
    let listener = "[[listener]]\nlisten = \"127.0.0.1:8081\"\nmode = \"forward\"\nupstream = \"127.0.0.1:80\"\n"

    func parse(_ text: String) throws -> RelayConfigFile { try RelayConfigFile.parse(text: listener + text, origin: "gw.toml") }
    func error(_ text: String) -> String? {
        do { _ = try parse(text); return nil } catch { return "\(error)" }
    }

    @Test func probesAndHealth() throws {
        let c = try parse("""
            [health]
            interval = 0.5
            timeout = 0.4
            down_after = 4
            up_after = 3
            [[wan]]
            interface = "eth1"
            probe = ["192.0.2.1:443", "[2001:db8::1]:443", "gateway"]
            [[wan]]
            interface = "wwan0"
            probe = []
            [[wan]]
            interface = "eth2"
            """)
        #expect(c.wan.health.interval == 0.5 && c.wan.health.timeout == 0.4 && c.wan.health.downAfter == 4 && c.wan.health.upAfter == 3)
        #expect(c.wan.wans[0].probes == [.tcp(ip("192.0.2.1"), port: 443), .tcp(ip("2001:db8::1"), port: 443), .gateway])
        #expect(c.wan.wans[1].probes == [])
        #expect(c.wan.wans[2].probes == nil)
        #expect(try parse("[[wan]]\ninterface = \"eth1\"\n").wan.health == HealthSettings())
    }

    @Test func badProbeConfigNamesTheLine() {
        let e1 = error("[[wan]]\ninterface = \"eth1\"\nprobe = [\"1.1.1.1:443\",\n  \"dns.google:443\"]\n")
        #expect(e1?.contains("gw.toml:8") == true && e1?.contains("dns.google:443") == true, "\(e1 ?? "no error")")
        let e2 = error("[health]\ninterval = 1\ntimeout = 2\n")
        #expect(e2?.contains("gw.toml:7") == true && e2?.contains("longer than interval") == true, "\(e2 ?? "no error")")
        let e3 = error("[health]\ndown_after = 0\n")
        #expect(e3?.contains("down_after = 0 is out of range") == true, "\(e3 ?? "no error")")
        let e5 = error("[[wan]]\ninterface = \"eth1\"\nprobe = [\"127.0.0.1:80\"]\n")
        #expect(e5?.contains("loopback") == true, "\(e5 ?? "no error")")
        #expect(error("[[wan]]\ninterface = \"eth1\"\nprobe = [\"[::]:443\"]\n") != nil)
        #expect(error("[[wan]]\ninterface = \"eth1\"\nprobe = [\"224.0.0.1\"]\n") != nil)
        let e4 = error("[health]\nprobe = [\"1.1.1.1\"]\n")
        #expect(e4?.contains("probe") == true, "a probe list belongs in a [[wan]]: \(e4 ?? "no error")")
    }
}
