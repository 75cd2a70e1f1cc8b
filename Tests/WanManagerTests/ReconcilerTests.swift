import Netlink
import Testing
import WanManager

@Suite("WAN reconciler")
struct ReconcilerTests {
    /// Endpoints, per-WAN rules and routes alone: `[routing]` has a suite of its own (ServiceRoutingTests).
    let plan = WanPlan.twoWansWithoutServiceRouting

    /// Reconciles and applies until nothing is left to do; returns the record of owned endpoints.
    @discardableResult
    func converge(_ plan: WanPlan, _ k: inout FakeKernel, owned: Set<OwnedEndpoint> = [], flapped: Set<Int32> = []) -> Set<OwnedEndpoint> {
        let first = WanReconciler.reconcile(plan, k.view, owned: owned, flapped: flapped, limits: plan.limits)
        k.apply(first.actions)
        let again = WanReconciler.reconcile(plan, k.view, owned: first.owned, limits: plan.limits)
        #expect(again.actions.isEmpty, "not converged after one pass: \(again.actions)")
        return first.owned
    }

    @Test func freshGatewayGetsEndpointsRulesRoutesAndLimits() {
        var k = FakeKernel.twoWans()
        let r = WanReconciler.reconcile(plan, k.view, owned: [], limits: plan.limits)
        #expect(r.actions.first == .setLimits(PathLimits(subflows: 4, addAddrAccepted: 2)))
        let endpoints = r.actions.compactMap { if case .addEndpoint(let e, _) = $0 { return e } else { return nil } }
        #expect(endpoints.map(\.address) == [ip("10.1.0.1"), ip("fd00:1::1"), ip("10.2.0.1"), ip("fd00:2::1")])
        #expect(endpoints.map(\.id) == [100, 101, 102, 103])
        #expect(endpoints.allSatisfy { $0.flags == .subflow })
        #expect(endpoints[2].ifindex == 4)
        let rules = r.actions.compactMap { if case .addRule(let x) = $0 { return x } else { return nil } }
        #expect(Set(rules.map { "\($0.source)>\($0.table)" }) == ["10.1.0.1>1001", "fd00:1::1>1001", "10.2.0.1>1002", "fd00:2::1>1002"])
        let defaults = r.actions.compactMap { if case .addRoute(let x) = $0, x.isDefault { return x } else { return nil } }
        #expect(Set(defaults.map { "\($0.gateway!)@\($0.table)" }) == ["10.1.0.2@1001", "fd00:1::2@1001", "10.2.0.2@1002", "fd00:2::2@1002"])
        // Endpoints come last: their subflows need the rule and route in place.
        let lastNonEndpoint = r.actions.lastIndex { if case .addEndpoint = $0 { return false } else { return true } }!
        let firstEndpoint = r.actions.firstIndex { if case .addEndpoint = $0 { return true } else { return false } }!
        #expect(lastNonEndpoint < firstEndpoint)
        converge(plan, &k)
    }

    @Test func renumberedAddressReplacesEndpointAndRule() {
        var k = FakeKernel.twoWans()
        var owned = converge(plan, &k)
        k.view.addresses.removeAll { $0.address == ip("10.2.0.1") }
        k.view.addresses.append(InterfaceAddress(ifindex: 4, address: ip("10.2.0.77"), prefixLength: 24))
        let r = WanReconciler.reconcile(plan, k.view, owned: owned, limits: plan.limits)
        #expect(r.actions.contains(.deleteEndpoint(k.view.endpoints.first { $0.address == ip("10.2.0.1") }!)))
        #expect(r.actions.contains { if case .addEndpoint(let e, "wan2") = $0 { return e.address == ip("10.2.0.77") } else { return false } })
        #expect(r.actions.contains { if case .deleteRule(let x) = $0 { return x.source == ip("10.2.0.1") } else { return false } })
        #expect(r.actions.contains { if case .addRule(let x) = $0 { return x.source == ip("10.2.0.77") && x.table == 1002 } else { return false } })
        #expect(r.actions.count == 4, "\(r.actions)")
        k.apply(r.actions)
        owned = r.owned
        #expect(!owned.contains { $0.address == ip("10.2.0.1") })
        #expect(WanReconciler.reconcile(plan, k.view, owned: owned, limits: plan.limits).actions.isEmpty)
    }

    @Test func linkDownRemovesAndLinkUpAddsAgain() {
        var k = FakeKernel.twoWans()
        var owned = converge(plan, &k)
        k.setLink(3, up: false)
        let down = WanReconciler.reconcile(plan, k.view, owned: owned, limits: plan.limits)
        #expect(down.actions.filter { if case .deleteEndpoint(let e) = $0 { return e.ifindex == 3 } else { return false } }.count == 2)
        #expect(down.actions.filter { if case .deleteRule(let x) = $0 { return x.table == 1001 } else { return false } }.count == 2)
        #expect(!down.actions.contains { if case .addEndpoint = $0 { return true } else { return false } })
        k.apply(down.actions)
        owned = down.owned
        k.setLink(3, up: true)
        // DHCP puts the main-table default route back.
        k.view.routes.append(Route(table: 254, destination: ip("0.0.0.0"), prefixLength: 0, gateway: ip("10.1.0.2"), oif: 3, protocolID: 3))
        let up = WanReconciler.reconcile(plan, k.view, owned: owned, limits: plan.limits)
        #expect(up.actions.filter { if case .addEndpoint(let e, "wan1") = $0 { return e.ifindex == 3 } else { return false } }.count == 2)
        k.apply(up.actions)
        #expect(WanReconciler.reconcile(plan, k.view, owned: up.owned, limits: plan.limits).actions.isEmpty)
    }

    /// Down and up between two passes: the endpoint looks right but is replaced anyway, so
    /// existing connections get a subflow over the link again.
    @Test func flapSeenOnlyAsEventsStillReplacesTheEndpoint() {
        var k = FakeKernel.twoWans()
        let owned = converge(plan, &k)
        let r = WanReconciler.reconcile(plan, k.view, owned: owned, flapped: [3], limits: plan.limits)
        let deleted = r.actions.compactMap { if case .deleteEndpoint(let e) = $0 { return e.address } else { return nil } }
        let added = r.actions.compactMap { if case .addEndpoint(let e, _) = $0 { return e.address } else { return nil } }
        #expect(Set(deleted) == [ip("10.1.0.1"), ip("fd00:1::1")])
        #expect(Set(added) == Set(deleted))
        k.apply(r.actions)
        #expect(r.owned == owned, "a replaced endpoint keeps its id")
    }

    @Test func foreignEndpointsAreNeverTouched() {
        var k = FakeKernel.twoWans()
        // Someone else's: one on wan2's address, one on an unrelated address whose id is in
        // the range the manager numbers from.
        let foreignSame = Endpoint(id: 1, address: ip("10.2.0.1"), flags: .signal, ifindex: 0)
        let foreignOther = Endpoint(id: 104, address: ip("192.0.2.9"), flags: .subflow, ifindex: 0)
        k.view.endpoints = [foreignSame, foreignOther]
        let r = WanReconciler.reconcile(plan, k.view, owned: [], limits: plan.limits)
        #expect(!r.actions.contains { if case .deleteEndpoint = $0 { return true } else { return false } })
        #expect(!r.actions.contains { if case .addEndpoint(let e, _) = $0 { return e.address == ip("10.2.0.1") || e.id == 1 || e.id == 104 } else { return false } })
        #expect(r.notes.contains { $0.contains("10.2.0.1 is already endpoint id 1") })
        k.apply(r.actions)
        #expect(k.view.endpoints.contains(foreignSame) && k.view.endpoints.contains(foreignOther))
        // Removing every WAN removes only what is ours.
        let gone = WanReconciler.reconcile(WanPlan(wans: []), k.view, owned: r.owned)
        k.apply(gone.actions)
        #expect(Set(k.view.endpoints) == [foreignSame, foreignOther])
        #expect(k.view.rules.isEmpty)
        #expect(!k.view.routes.contains { $0.protocolID == WanPlan.routeProtocol })
    }

    /// After SIGKILL the record says what is ours: a restart keeps what still fits, removes
    /// the stale, adds nothing twice.
    @Test func restartAfterKillConverges() {
        var k = FakeKernel.twoWans()
        let owned = converge(plan, &k)
        // While the manager was dead, wan2 was renumbered.
        k.view.addresses.removeAll { $0.address == ip("10.2.0.1") }
        k.view.addresses.append(InterfaceAddress(ifindex: 4, address: ip("10.2.0.9"), prefixLength: 24))
        let r = WanReconciler.reconcile(plan, k.view, owned: owned, limits: plan.limits)
        k.apply(r.actions)
        #expect(k.view.endpoints.count == 4)
        #expect(Set(k.view.endpoints.map(\.address)) == [ip("10.1.0.1"), ip("fd00:1::1"), ip("10.2.0.9"), ip("fd00:2::1")])
        #expect(k.view.rules.count == 4)
        #expect(WanReconciler.reconcile(plan, k.view, owned: r.owned, limits: plan.limits).actions.isEmpty)
        // An empty record (file lost) adds nothing over the endpoints already there.
        let blind = WanReconciler.reconcile(plan, k.view, owned: [], limits: plan.limits)
        #expect(!blind.actions.contains { if case .addEndpoint = $0 { return true } else { return false } })
    }

    @Test func removedWanLosesEverything() {
        var k = FakeKernel.twoWans()
        let owned = converge(plan, &k)
        let one = WanPlan(wans: [plan.wans[0]])
        let r = WanReconciler.reconcile(one, k.view, owned: owned, limits: one.limits)
        k.apply(r.actions)
        #expect(!k.view.endpoints.contains { $0.ifindex == 4 })
        #expect(!k.view.rules.contains { $0.table == 1002 })
        #expect(!k.view.routes.contains { $0.table == 1002 })
        #expect(k.view.limits == PathLimits(subflows: 2, addAddrAccepted: 1))
    }

    @Test func backupFlagAndItsChange() {
        var k = FakeKernel.twoWans()
        var backup = plan
        backup.wans[1].backup = true
        let owned = converge(backup, &k)
        #expect(k.view.endpoints.filter { $0.ifindex == 4 }.allSatisfy { $0.flags == [.subflow, .backup] })
        #expect(k.view.endpoints.filter { $0.ifindex == 3 }.allSatisfy { $0.flags == .subflow })
        // Only the backup bit changes: switched in place (SET_FLAGS), subflows kept.
        let r = WanReconciler.reconcile(plan, k.view, owned: owned, limits: plan.limits)
        #expect(r.actions.count == 2 && r.actions.allSatisfy { if case .setEndpointFlags = $0 { return true } else { return false } }, "\(r.actions)")
        k.apply(r.actions)
        #expect(r.owned == owned)
        #expect(k.view.endpoints.filter { $0.ifindex == 4 }.allSatisfy { $0.flags == .subflow })
        // Another kind is a different endpoint: replaced.
        var mesh = plan
        mesh.paths.endpointKind = .fullmesh
        let m = WanReconciler.reconcile(mesh, k.view, owned: r.owned, limits: mesh.limits)
        #expect(m.actions.filter { if case .deleteEndpoint = $0 { return true } else { return false } }.count == 4)
    }

    @Test func fullmeshKind() {
        var k = FakeKernel.twoWans()
        var p = plan
        p.paths.endpointKind = .fullmesh
        converge(p, &k)
        #expect(k.view.endpoints.allSatisfy { $0.flags == [.subflow, .fullmesh] })
    }

    @Test func missingGatewayIsANoteNotARoute() {
        var k = FakeKernel.twoWans()
        k.view.routes.removeAll { $0.oif == 4 && $0.family == .v6 }
        let r = WanReconciler.reconcile(plan, k.view, owned: [], limits: plan.limits)
        #expect(r.notes.contains { $0.hasPrefix("wan2: no IPv6 gateway") })
        #expect(!r.actions.contains { if case .addRoute(let x) = $0 { return x.isDefault && x.oif == 4 && x.family == .v6 } else { return false } })
        // A configured gateway needs no route to learn from.
        var p = plan
        p.wans[1].gateways = [ip("fd00:2::fe")]
        let r2 = WanReconciler.reconcile(p, k.view, owned: [], limits: p.limits)
        #expect(r2.actions.contains { if case .addRoute(let x) = $0 { return x.gateway == ip("fd00:2::fe") && x.table == 1002 } else { return false } })
    }

    @Test func absentInterfaceAndDisabledWan() {
        var k = FakeKernel.twoWans()
        var p = plan
        p.wans.append(WanSpec(interface: "wwan0", table: 1003))
        p.wans[1].enabled = false
        let r = WanReconciler.reconcile(p, k.view, owned: [], limits: p.limits)
        #expect(r.notes.contains { $0.hasPrefix("wwan0: no such interface") })
        k.apply(r.actions)
        #expect(k.view.endpoints.allSatisfy { $0.ifindex == 3 })
        #expect(p.limits == PathLimits(subflows: 4, addAddrAccepted: 2))
    }

    @Test func addressMasking() {
        #expect(ip("10.2.0.77").masked(24) == ip("10.2.0.0"))
        #expect(ip("fd00:2::1").masked(64) == ip("fd00:2::"))
        #expect(ip("10.2.3.4").masked(20) == ip("10.2.0.0"))
        #expect(IPAddress("10.2.0.1/24") == nil)
    }
}
