import Netlink

/// An endpoint this process created, as recorded: its id and address. A kernel endpoint is
/// ours only when both match (the kernel hands the next id to whoever adds an endpoint
/// next, so an id range alone would claim other people's endpoints).
public struct OwnedEndpoint: Hashable, Sendable, Comparable {
    public var id: UInt8
    public var address: IPAddress
    public init(id: UInt8, address: IPAddress) {
        self.id = id
        self.address = address
    }
    public static func < (a: OwnedEndpoint, b: OwnedEndpoint) -> Bool { a.id < b.id }
}

/// The outcome of one reconciliation.
public struct Reconciliation: Sendable, Equatable {
    /// Netlink changes, in order: limits, deletions (endpoints, rules, routes), additions
    /// (routes, rules, endpoints last, so a new endpoint's subflows find their route).
    public var actions: [WanAction] = []
    /// Endpoints owned once the actions are applied.
    public var owned: Set<OwnedEndpoint> = []
    /// Conditions an operator should know of (no gateway, an address taken by a foreign endpoint).
    public var notes: [String] = []
}

/// Desired state (config) + observed state (kernel) -> netlink actions. Pure: no I/O.
public enum WanReconciler {
    /// - Parameters:
    ///   - flapped: interfaces that went down since the last reconciliation; their
    ///     endpoints are replaced even if they look right, because re-adding an endpoint is
    ///     what gives existing connections a subflow over the link again.
    ///   - limits: the limits to hold, or nil to leave the kernel's alone.
    ///   - outOfService: WANs whose probes fail although their link is up: their endpoints
    ///     are withdrawn (no new subflow uses them) but their rule and routes stay, so the
    ///     probes still leave through them and notice the recovery.
    ///   - steering: where the relay's new connections start; with `[routing]
    ///     follow_service`, routed traffic of a family steered to a WAN goes there too.
    public static func reconcile(_ plan: WanPlan, _ view: KernelView, owned: Set<OwnedEndpoint>,
                                 flapped: Set<Int32> = [], limits: PathLimits? = nil,
                                 outOfService: Set<String> = [], steering: UplinkChoice = UplinkChoice()) -> Reconciliation {
        var out = Reconciliation()
        var desired = desiredState(plan, view, notes: &out.notes)
        if plan.followsService { addServiceRouting(plan, view, outOfService: outOfService, steering: steering, to: &desired) }
        for (e, wan) in desired.endpoints where outOfService.contains(wan) {
            if let have = view.endpoints.first(where: { $0.address == e.address }), !owned.contains(OwnedEndpoint(id: have.id, address: have.address)) {
                out.notes.append("\(wan): out of service, but \(e.address) is endpoint id \(have.id), not created by mptcp-relay: left as it is (new subflows may still use it)")
            }
        }
        desired.endpoints.removeAll { outOfService.contains($0.wan) }

        if let limits, view.limits != limits { out.actions.append(.setLimits(limits)) }

        // Endpoints.
        let observedByAddress = Dictionary(view.endpoints.map { ($0.address, $0) }, uniquingKeysWith: { a, _ in a })
        let mine = view.endpoints.filter { owned.contains(OwnedEndpoint(id: $0.id, address: $0.address)) }
        let wanted = Set(desired.endpoints.map(\.endpoint.address))
        var deletes: [Endpoint] = mine.filter { !wanted.contains($0.address) }
        var adds: [(Endpoint, String)] = []
        var flagChanges: [Endpoint] = []
        var usedIDs = Set(view.endpoints.map(\.id))
        for (want, wan) in desired.endpoints {
            if let have = observedByAddress[want.address] {
                guard owned.contains(OwnedEndpoint(id: have.id, address: have.address)) else {
                    out.notes.append("\(wan): \(want.address) is already endpoint id \(have.id), not created by mptcp-relay: left as it is")
                    continue
                }
                if have.ifindex == want.ifindex && have.port == want.port && !flapped.contains(want.ifindex)
                    && have.flags.symmetricDifference(want.flags).isSubset(of: .backup) {
                    out.owned.insert(OwnedEndpoint(id: have.id, address: have.address))
                    if have.flags != want.flags {
                        var changed = have
                        changed.flags = want.flags
                        flagChanges.append(changed)
                    }
                    continue
                }
                deletes.append(have)
                var replacement = want
                replacement.id = have.id
                adds.append((replacement, wan))
            } else {
                guard let id = nextID(&usedIDs) else {
                    out.notes.append("\(wan): no free MPTCP endpoint id for \(want.address)")
                    continue
                }
                var fresh = want
                fresh.id = id
                adds.append((fresh, wan))
            }
        }
        for e in adds { out.owned.insert(OwnedEndpoint(id: e.0.id, address: e.0.address)) }

        // Rules and routes: ours carry WanPlan.routeProtocol.
        let ourRules = view.rules.filter { $0.protocolID == WanPlan.routeProtocol }
        let ourRoutes = view.routes.filter { $0.protocolID == WanPlan.routeProtocol }
        let ruleDeletes = ourRules.filter { have in !desired.rules.contains { ruleKey($0) == ruleKey(have) } }
        let ruleAdds = desired.rules.filter { want in !ourRules.contains { ruleKey($0) == ruleKey(want) } }
        let routeDeletes = ourRoutes.filter { have in !desired.routes.contains { routeKey($0) == routeKey(have) } }
        let routeAdds = desired.routes.filter { want in !ourRoutes.contains { routeKey($0) == routeKey(want) } }

        out.actions += deletes.sorted { $0.id < $1.id }.map(WanAction.deleteEndpoint)
        out.actions += ruleDeletes.map(WanAction.deleteRule)
        out.actions += routeDeletes.map(WanAction.deleteRoute)
        out.actions += routeAdds.map(WanAction.addRoute)
        out.actions += ruleAdds.map(WanAction.addRule)
        out.actions += adds.sorted { $0.0.id < $1.0.id }.map { WanAction.addEndpoint($0.0, wan: $0.1) }
        out.actions += flagChanges.map(WanAction.setEndpointFlags)
        return out
    }

    /// What the kernel should hold for the WANs whose link is up.
    struct Desired {
        var endpoints: [(endpoint: Endpoint, wan: String)] = []
        var rules: [Rule] = []
        var routes: [Route] = []
    }

    static func desiredState(_ plan: WanPlan, _ view: KernelView, notes: inout [String]) -> Desired {
        var d = Desired()
        for wan in plan.enabledWans {
            guard let link = view.link(named: wan.interface) else {
                notes.append("\(wan.interface): no such interface (yet)")
                continue
            }
            guard link.isUp else { continue }
            let addresses = view.addresses.filter { $0.ifindex == link.ifindex && $0.isUsable }
                .sorted { $0.address < $1.address }
            for family in [IPAddress.Family.v4, .v6] {
                let ofFamily = addresses.filter { $0.address.family == family }
                guard !ofFamily.isEmpty else { continue }
                for a in ofFamily {
                    d.endpoints.append((Endpoint(id: 0, address: a.address, flags: plan.endpointFlags(wan), ifindex: link.ifindex), wan.interface))
                    d.rules.append(Rule(source: a.address, sourceLength: family.bitCount, table: wan.table,
                                        priority: WanPlan.rulePriority, protocolID: WanPlan.routeProtocol))
                    if a.prefixLength < family.bitCount {
                        let net = Route(table: wan.table, destination: a.address.masked(a.prefixLength), prefixLength: a.prefixLength,
                                        gateway: nil, oif: link.ifindex, protocolID: WanPlan.routeProtocol,
                                        scope: family == .v4 ? 253 : 0)
                        if !d.routes.contains(where: { routeKey($0) == routeKey(net) }) { d.routes.append(net) }
                    }
                }
                if let route = defaultRoute(through: wan, link: link, family: family, table: wan.table, view) {
                    d.routes.append(route)
                } else {
                    let name = family == .v4 ? "IPv4" : "IPv6"
                    notes.append("\(wan.interface): no \(name) gateway (no default route through it in the main table): set gateway = \"...\" in its [[wan]]; its \(name) subflows may not leave")
                }
            }
        }
        // `[server] advertise`: signal endpoints, owned like the WANs' (AdvertisedAddress.swift).
        for a in plan.advertise where !d.endpoints.contains(where: { $0.endpoint.address == a.address }) {
            d.endpoints.append((a.endpoint, "advertise \(a)"))
        }
        return d
    }

    /// `[routing] follow_service`: the rule trio of both families (WanPlan.suppressPriority)
    /// and, per family steered away from the main table's default WAN, a default route in
    /// the relay's table through the WAN the relay's own connections start on.
    static func addServiceRouting(_ plan: WanPlan, _ view: KernelView, outOfService: Set<String>, steering: UplinkChoice,
                                  to d: inout Desired) {
        for family in [IPAddress.Family.v4, .v6] {
            let any = IPAddress.unspecified(family)
            d.rules.append(Rule(source: any, sourceLength: 0, table: 254, priority: WanPlan.suppressPriority,
                                protocolID: WanPlan.routeProtocol, suppressPrefixLength: 0))
            for wan in plan.enabledWans where !outOfService.contains(wan.interface) {
                guard view.link(named: wan.interface)?.isUp == true, let mark = plan.mark(of: wan.interface) else { continue }
                d.rules.append(Rule(source: any, sourceLength: 0, table: wan.table, priority: WanPlan.markPriority,
                                    protocolID: WanPlan.routeProtocol, fwmark: mark, fwmask: WanPlan.markMask))
            }
            d.rules.append(Rule(source: any, sourceLength: 0, table: plan.routing.table, priority: WanPlan.servicePriority,
                                protocolID: WanPlan.routeProtocol))
            guard case .bind(_, let via) = steering.decision(family), let route = detour(plan, view, family: family, via: via) else { continue }
            d.routes.append(route)
        }
    }

    /// The default route of the relay's table through WAN `via`, or nil when there is none
    /// to make (no gateway known for the family, not point-to-point, link not up).
    public static func detour(_ plan: WanPlan, _ view: KernelView, family: IPAddress.Family, via: String) -> Route? {
        guard let wan = plan.enabledWans.first(where: { $0.interface == via }), let link = view.link(named: via), link.isUp else { return nil }
        return defaultRoute(through: wan, link: link, family: family, table: plan.routing.table, view)
    }

    /// A default route of `table` out through a WAN: via its gateway, or on-link for a
    /// point-to-point link; nil when it has neither (the caller says what that means).
    static func defaultRoute(through wan: WanSpec, link: Link, family: IPAddress.Family, table: UInt32, _ view: KernelView) -> Route? {
        let any = IPAddress.unspecified(family)
        if let gateway = view.gateway(for: wan, ifindex: link.ifindex, family: family) {
            return Route(table: table, destination: any, prefixLength: 0, gateway: gateway, oif: link.ifindex, protocolID: WanPlan.routeProtocol)
        }
        guard link.flags & 0x10 != 0 else { return nil }  // IFF_POINTOPOINT
        return Route(table: table, destination: any, prefixLength: 0, gateway: nil, oif: link.ifindex, protocolID: WanPlan.routeProtocol, scope: 253)
    }

    /// The lowest id from `WanPlan.firstEndpointID` up (then from 1) not in use.
    static func nextID(_ used: inout Set<UInt8>) -> UInt8? {
        let order = Array(WanPlan.firstEndpointID...255) + Array(1..<WanPlan.firstEndpointID)
        guard let id = order.first(where: { !used.contains($0) }) else { return nil }
        used.insert(id)
        return id
    }

    struct RuleKey: Hashable {
        var family: IPAddress.Family; var source: IPAddress?; var length: Int; var table: UInt32; var priority: UInt32
        var fwmark: UInt32; var fwmask: UInt32; var suppress: Int?
    }
    static func ruleKey(_ r: Rule) -> RuleKey {
        RuleKey(family: r.family, source: r.sourceLength == 0 ? nil : r.source, length: r.sourceLength, table: r.table, priority: r.priority,
                fwmark: r.fwmark, fwmask: r.fwmask, suppress: r.suppressPrefixLength)
    }

    /// Metric, scope and flags are left out: the kernel reports IPv6 routes added without a
    /// metric as 1024.
    struct RouteKey: Hashable { var table: UInt32; var destination: IPAddress; var length: Int; var gateway: IPAddress?; var oif: Int32 }
    static func routeKey(_ r: Route) -> RouteKey {
        RouteKey(table: r.table, destination: r.destination, length: r.prefixLength, gateway: r.gateway, oif: r.oif)
    }
}
