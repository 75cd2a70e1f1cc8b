import Netlink
import WanManager

/// A kernel in memory: applies `WanAction`s to a `KernelView` the way the real one would
/// (routes through a downed link vanish, ids are unique), so reconciliations can be chained.
struct FakeKernel {
    var view: KernelView

    static let wan1 = Link(ifindex: 3, name: "wan1", flags: 0x1 | 0x10000, operState: 6)
    static let wan2 = Link(ifindex: 4, name: "wan2", flags: 0x1 | 0x10000, operState: 6)

    /// Two WANs like scripts/testbed.sh --bare: addresses, main-table default routes.
    static func twoWans() -> FakeKernel {
        var k = FakeKernel(view: KernelView(links: [wan1, wan2], limits: PathLimits(subflows: 2, addAddrAccepted: 0)))
        for (link, n) in [(wan1, 1), (wan2, 2)] {
            k.view.addresses.append(InterfaceAddress(ifindex: link.ifindex, address: ip("10.\(n).0.1"), prefixLength: 24))
            k.view.addresses.append(InterfaceAddress(ifindex: link.ifindex, address: ip("fd00:\(n)::1"), prefixLength: 64))
            k.view.routes.append(Route(table: 254, destination: ip("0.0.0.0"), prefixLength: 0, gateway: ip("10.\(n).0.2"),
                                       oif: link.ifindex, protocolID: 3, metric: UInt32(100 * (n - 1))))
            k.view.routes.append(Route(table: 254, destination: ip("::"), prefixLength: 0, gateway: ip("fd00:\(n)::2"),
                                       oif: link.ifindex, protocolID: 3, metric: 1024))
        }
        return k
    }

    mutating func apply(_ actions: [WanAction]) {
        for a in actions {
            switch a {
            case .setLimits(let l): view.limits = l
            case .deleteEndpoint(let e): view.endpoints.removeAll { $0.id == e.id }
            case .addEndpoint(let e, _):
                precondition(!view.endpoints.contains { $0.id == e.id || $0.address == e.address }, "EEXIST for \(e)")
                view.endpoints.append(e)
            case .setEndpointFlags(let e):
                guard let i = view.endpoints.firstIndex(where: { $0.id == e.id }) else { preconditionFailure("ENOENT for \(e)") }
                view.endpoints[i].flags = e.flags
            case .deleteRule(let r): view.rules.removeAll { $0 == r }
            case .addRule(let r): view.rules.append(r)
            case .deleteRoute(let r): view.routes.removeAll { $0 == r }
            case .addRoute(let r):
                // IPv6 routes come back with the default metric.
                var stored = r
                if r.family == .v6 && r.metric == 0 { stored.metric = 1024 }
                view.routes.append(stored)
            }
        }
    }

    mutating func setLink(_ ifindex: Int32, up: Bool) {
        guard let i = view.links.firstIndex(where: { $0.ifindex == ifindex }) else { return }
        view.links[i].flags = up ? 0x1 | 0x10000 : 0
        if !up { view.routes.removeAll { $0.oif == ifindex } }
    }
}

func ip(_ text: String) -> IPAddress {
    guard let a = IPAddress(text) else { fatalError("bad test address \(text)") }
    return a
}

extension WanPlan {
    /// The two WANs of `FakeKernel.twoWans()` with `[routing] follow_service = false`.
    static var twoWansWithoutServiceRouting: WanPlan {
        var plan = WanPlan(wans: [WanSpec(interface: "wan1", table: 1001), WanSpec(interface: "wan2", table: 1002)])
        plan.routing.followService = false
        return plan
    }
}
