import Netlink
import RelayConfig
import Testing
import WanManager

/// `[routing] follow_service` (issue 22): rules in front of the main table, a detour route
/// in the relay's table while the main table's default WAN is out of service, pinned flows.
@Suite("Routing follows the WANs in service")
struct ServiceRoutingTests {
    let plan = WanPlan(wans: [WanSpec(interface: "wan1", table: 1001), WanSpec(interface: "wan2", table: 1002)])

    func rules(_ k: FakeKernel) -> Set<String> {
        Set(k.view.rules.filter { $0.sourceLength == 0 }.map { "\($0.family == .v4 ? 4 : 6) \($0.priority) \(WanAction.addRule($0))" })
    }

    func detours(_ k: FakeKernel) -> [Route] { k.view.routes.filter { $0.table == 1000 } }

    /// Healthy: the rule trio of each family, both WANs' mark rules, no detour; the main
    /// table decides as before.
    @Test func inServiceRulesButNoDetour() {
        var k = FakeKernel.twoWans()
        let r = WanReconciler.reconcile(plan, k.view, owned: [], limits: plan.limits)
        k.apply(r.actions)
        #expect(rules(k) == [
            "4 31100 add rule (IPv4) from all lookup main suppress_prefixlength 0",
            "4 31101 add rule (IPv4) from all fwmark 0x1000000/0xff000000 lookup 1001",
            "4 31101 add rule (IPv4) from all fwmark 0x2000000/0xff000000 lookup 1002",
            "4 31200 add rule (IPv4) from all lookup 1000",
            "6 31100 add rule (IPv6) from all lookup main suppress_prefixlength 0",
            "6 31101 add rule (IPv6) from all fwmark 0x1000000/0xff000000 lookup 1001",
            "6 31101 add rule (IPv6) from all fwmark 0x2000000/0xff000000 lookup 1002",
            "6 31200 add rule (IPv6) from all lookup 1000",
        ])
        #expect(k.view.rules.allSatisfy { $0.protocolID == WanPlan.routeProtocol })
        #expect(detours(k).isEmpty)
        // The WANs' own `from ADDR` rules come first: traffic bound to a WAN keeps it.
        #expect(WanPlan.rulePriority < WanPlan.suppressPriority && WanPlan.suppressPriority < WanPlan.markPriority
                && WanPlan.markPriority < WanPlan.servicePriority && WanPlan.servicePriority < 32766)
        #expect(WanReconciler.reconcile(plan, k.view, owned: r.owned, limits: plan.limits).actions.isEmpty, "converged")
    }

    /// WAN 1 (the main table's default) out of service: a detour via WAN 2 in table 1000 for
    /// both families, WAN 1's mark rules gone (its pinned flows follow the detour), its
    /// endpoints withdrawn. Back in service: the detour goes, the mark rules return.
    @Test func primaryOutOfServiceDetoursAndComesBack() {
        var k = FakeKernel.twoWans()
        let first = WanReconciler.reconcile(plan, k.view, owned: [], limits: plan.limits)
        k.apply(first.actions)
        let service: [String: String?] = ["wan1": "probes failing", "wan2": String?.none]
        let choice = UplinkChoice.choose(plan, k.view, service: service)
        let out = WanReconciler.reconcile(plan, k.view, owned: first.owned, limits: plan.limits, outOfService: ["wan1"], steering: choice)
        k.apply(out.actions)
        #expect(Set(detours(k).map { "\($0.gateway!) \($0.oif)" }) == ["10.2.0.2 4", "fd00:2::2 4"])
        #expect(!rules(k).contains { $0.contains("0x1000000") })
        #expect(rules(k).contains("4 31101 add rule (IPv4) from all fwmark 0x2000000/0xff000000 lookup 1002"))
        #expect(!k.view.endpoints.contains { $0.address == ip("10.1.0.1") })

        let back = WanReconciler.reconcile(plan, k.view, owned: out.owned, limits: plan.limits,
                                           steering: UplinkChoice.choose(plan, k.view, service: ["wan1": String?.none, "wan2": String?.none]))
        k.apply(back.actions)
        #expect(detours(k).isEmpty)
        #expect(rules(k).contains("6 31101 add rule (IPv6) from all fwmark 0x1000000/0xff000000 lookup 1001"))
    }

    /// The second WAN out of service while the first carries the main default: no detour
    /// (the main table already avoids it), only its mark rule goes.
    @Test func secondaryOutOfServiceNeedsNoDetour() {
        var k = FakeKernel.twoWans()
        let first = WanReconciler.reconcile(plan, k.view, owned: [], limits: plan.limits)
        k.apply(first.actions)
        let choice = UplinkChoice.choose(plan, k.view, service: ["wan1": String?.none, "wan2": "probes failing"])
        let r = WanReconciler.reconcile(plan, k.view, owned: first.owned, limits: plan.limits, outOfService: ["wan2"], steering: choice)
        k.apply(r.actions)
        #expect(detours(k).isEmpty)
        #expect(!rules(k).contains { $0.contains("0x2000000") })
    }

    /// Off, or the relay stopping (an empty plan): every rule and route of ours goes, the
    /// main table is never touched.
    @Test func offOrStoppedRemovesEverything() {
        var k = FakeKernel.twoWans()
        let mainBefore = k.view.routes.filter { $0.table == 254 }
        let choice = UplinkChoice.choose(plan, k.view, service: ["wan1": "probes failing", "wan2": String?.none])
        let r = WanReconciler.reconcile(plan, k.view, owned: [], limits: plan.limits, outOfService: ["wan1"], steering: choice)
        k.apply(r.actions)
        #expect(!detours(k).isEmpty)
        var off = plan
        off.routing.followService = false
        let o = WanReconciler.reconcile(off, k.view, owned: r.owned, limits: plan.limits, outOfService: ["wan1"], steering: choice)
        k.apply(o.actions)
        #expect(rules(k).isEmpty && detours(k).isEmpty, "\(k.view.rules)")
        let stop = WanReconciler.reconcile(WanPlan(wans: []), k.view, owned: o.owned)
        k.apply(stop.actions)
        #expect(k.view.rules.isEmpty && k.view.routes.filter { $0.protocolID == WanPlan.routeProtocol }.isEmpty)
        #expect(k.view.routes.filter { $0.table == 254 } == mainBefore)
    }

    /// The nftables table: each WAN's mark by position, set once per connection on the way
    /// out, copied to packets only when nothing else (TPROXY) marked them.
    @Test func pinningRuleset() {
        var p = plan
        p.wans.append(WanSpec(interface: "lte0", backup: true, table: 1003, enabled: false))
        let text = FlowPinning.render(p)
        #expect(text.hasPrefix("table inet mptcp_relay_wan\ndelete table inet mptcp_relay_wan\ntable inet mptcp_relay_wan {\n"))
        #expect(text.contains("\t\tct mark & 0xff000000 != 0 return\n\t\toifname \"wan1\" ct mark set ct mark | 0x1000000\n\t\toifname \"wan2\" ct mark set ct mark | 0x2000000\n"))
        #expect(!text.contains("lte0"), "a disabled WAN is not pinned")
        #expect(text.contains("\t\tmeta mark != 0 return\n\t\tct mark & 0xff000000 != 0 meta mark set ct mark & 0xff000000\n"))
        #expect(p.mark(of: "lte0") == 0x300_0000 && p.mark(of: "eth9") == nil)
    }
}

@Suite("[routing] config")
struct RoutingConfigTests {
    let head = "[[listener]]\nlisten = \"127.0.0.1:8081\"\nmode = \"forward\"\nupstream = \"127.0.0.1:80\"\n\n[[wan]]\ninterface = \"wan1\"\n\n"

    func error(_ text: String) -> String? {
        do { _ = try RelayConfigFile.parse(text: head + text, origin: "gw.toml"); return nil } catch { return "\(error)" }
    }

    @Test func defaultsAndSettings() throws {
        let plain = try RelayConfigFile.parse(text: head, origin: "gw.toml")
        #expect(plain.wan.routing.followService && plain.wan.routing.table == 1000 && plain.wan.followsService)
        let set = try RelayConfigFile.parse(text: head + "[routing]\nfollow_service = false\ntable = 77\n", origin: "gw.toml")
        #expect(!set.wan.routing.followService && set.wan.routing.table == 77 && !set.wan.followsService)
        #expect(set.wanRoutingSummary().first?.contains("follow_service = false") == true)
    }

    @Test func badRoutingNamesTheLine() {
        #expect(error("[routing]\ntable = 254\n")?.contains("gw.toml:10:") == true)
        #expect(error("[routing]\ntable = 254\n")?.contains("system routing table") == true)
        #expect(error("[routing]\ntable = 1001\n")?.contains("WAN 'wan1''s table") == true)
        #expect(error("[routing]\ntable = 100\n")?.contains("[interception]'s table") == true)
        #expect(error("[routing]\nfollow = true\n") != nil)
        let markClash = error("[interception]\nlan_interfaces = [\"lan0\"]\nmark = 0x1000000\n")
        #expect(markClash?.contains("gw.toml:11:") == true && markClash?.contains("uses the bits 0xff000000") == true, "\(markClash ?? "accepted")")
        #expect(error("[interception]\nlan_interfaces = [\"lan0\"]\nmark = 0x1000000\n[routing]\nfollow_service = false\n") == nil)
        #expect(error("[routing]\nfollow_service = \"yes\"\n")?.contains("gw.toml:10:") == true)
    }
}
