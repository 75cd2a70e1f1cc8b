import Netlink

/// Where the relay's new upstream connections start, decided from the WANs' state. Pure.
///
/// MPTCP's initial subflow follows the main routing table. Nothing is steered while the
/// main table's default route of a family leads to a WAN in service, or to an interface
/// that is not a `[[wan]]` (the administrator's routing stands), or when there is none.
/// Once it leads to a WAN out of service (probes fail, or its carrier is gone but the route
/// stayed), upstream sockets of that family are bound to the address of the first WAN in
/// service, regular before backup, whose `from ADDR` rule takes the SYN out through it; with
/// none in service, they are refused.
public struct UplinkChoice: Sendable, Equatable, CustomStringConvertible {
    public enum Decision: Sendable, Equatable {
        case mainTable
        case bind(IPAddress, via: String)
        case refuse(String)
    }

    public struct Prefix: Sendable, Equatable {
        public var address: IPAddress
        public var length: Int
    }

    public var v4: Decision = .mainTable
    public var v6: Decision = .mainTable
    /// Destinations the main table routes more specifically than by its default route
    /// (connected prefixes, static routes, VPNs): never steered.
    public var exempt: [Prefix] = []

    public init(v4: Decision = .mainTable, v6: Decision = .mainTable, exempt: [Prefix] = []) {
        self.v4 = v4
        self.v6 = v6
        self.exempt = exempt
    }

    public var isActive: Bool { v4 != .mainTable || v6 != .mainTable }

    public func decision(_ family: IPAddress.Family) -> Decision { family == .v4 ? v4 : v6 }

    public var description: String {
        func text(_ d: Decision) -> String {
            switch d {
            case .mainTable: return "main routing table"
            case .bind(let a, let via): return "\(via) (bound to \(a))"
            case .refuse(let why): return "refused: \(why)"
            }
        }
        return "IPv4: \(text(v4)); IPv6: \(text(v6))"
    }

    /// - Parameter service: for each enabled WAN, nil when it is in service, else why not.
    public static func choose(_ plan: WanPlan, _ view: KernelView, service: [String: String?]) -> UplinkChoice {
        var out = UplinkChoice()
        let wans = plan.enabledWans
        guard !wans.isEmpty else { return out }
        let usable = wans.filter { (service[$0.interface] ?? "not known") == nil }
        let preferred = usable.filter { !$0.backup } + usable.filter(\.backup)
        for family in [IPAddress.Family.v4, .v6] {
            let defaults = view.routes.filter { $0.table == 254 && $0.isDefault && $0.family == family }
            guard let main = defaults.min(by: { $0.metric < $1.metric }) else { continue }
            let leadsToDeadWan: Bool
            if main.oif == 0 {
                // Several next hops (ECMP) or a nexthop object: which WAN a connection hashes
                // to is unknown, so any WAN out of service may take it.
                leadsToDeadWan = usable.count < wans.count
            } else if let wan = wans.first(where: { view.link(named: $0.interface)?.ifindex == main.oif }) {
                leadsToDeadWan = !usable.contains { $0.interface == wan.interface }
            } else {
                leadsToDeadWan = false
            }
            guard leadsToDeadWan else { continue }
            var decision = Decision.refuse("no WAN in service (" + wans.map { "\($0.interface): \((service[$0.interface] ?? "not known") ?? "in service")" }.joined(separator: "; ") + ")")
            for wan in preferred {
                guard let link = view.link(named: wan.interface),
                      let source = view.addresses.filter({ $0.ifindex == link.ifindex && $0.isUsable && $0.address.family == family })
                          .map(\.address).min() else { continue }
                decision = .bind(source, via: wan.interface)
                break
            }
            if family == .v4 { out.v4 = decision } else { out.v6 = decision }
        }
        if out.isActive {
            out.exempt = view.routes.filter { $0.table == 254 && !$0.isDefault }
                .map { Prefix(address: $0.destination.masked($0.prefixLength), length: $0.prefixLength) }
        }
        return out
    }
}
