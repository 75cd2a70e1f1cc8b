import Netlink
import Testing
@testable import WanManager

@Suite("WAN status and subflow table")
struct StatusTests {
    @Test func statusRowsShowOwnershipAndAbsence() {
        var k = FakeKernel.twoWans()
        let plan = WanPlan(wans: [WanSpec(interface: "wan1", table: 1001), WanSpec(interface: "wan2", backup: true, table: 1002),
                                  WanSpec(interface: "wwan0", table: 1003)])
        let r = WanReconciler.reconcile(plan, k.view, owned: [], limits: plan.limits)
        k.apply(r.actions)
        k.view.endpoints.append(Endpoint(id: 7, address: ip("10.1.0.9"), flags: .signal, ifindex: 3))
        k.setLink(4, up: false)
        let rows = WanStatus.of(plan, k.view, owned: r.owned)
        #expect(rows.map(\.link) == ["up", "down", "absent"])
        #expect(rows[0].gateways == [ip("10.1.0.2"), ip("fd00:1::2")])
        #expect(rows[0].endpoints.map(\.owned) == [false, true, true], "sorted by id: the foreign id 7 first")
        #expect(rows[1].backup && rows[1].endpoints.allSatisfy { $0.endpoint.flags.contains(.backup) })
        #expect(rows[2].addresses.isEmpty && rows[2].endpoints.isEmpty)
    }

    func event(_ kind: PathManagerEvent.Kind, token: UInt32, source: String, port: UInt16) -> PathManagerEvent {
        PathManagerEvent(kind: kind, token: token, source: ip(source), destination: ip("10.1.0.2"), sourcePort: port,
                         destinationPort: 8080, localID: 0, ifindex: 0, backup: false, error: 0)
    }

    @Test func subflowTableCounts() {
        let t = SubflowTable()
        t.apply(event(.established, token: 1, source: "10.1.0.1", port: 1000), interface: "wan1")
        t.apply(event(.subflowEstablished, token: 1, source: "10.2.0.1", port: 1001), interface: "wan2")
        t.apply(event(.established, token: 2, source: "10.1.0.1", port: 1002), interface: "wan1")
        #expect(t.perInterface() == ["wan1": 2, "wan2": 1])
        t.apply(event(.subflowClosed, token: 1, source: "10.2.0.1", port: 1001), interface: "wan2")
        #expect(t.perInterface() == ["wan1": 2])
        t.apply(event(.closed, token: 1, source: "0.0.0.0", port: 0), interface: "")
        #expect(t.perInterface() == ["wan1": 1])
        t.apply(event(.overrun, token: 0, source: "0.0.0.0", port: 0), interface: "")
        #expect(t.perInterface().isEmpty)
    }
}
