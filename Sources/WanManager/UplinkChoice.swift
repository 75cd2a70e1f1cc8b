import Netlink

/// Where the relay's new upstream connections start, decided from the WANs' state. Pure.
///
/// MPTCP's initial subflow follows the main routing table. While the WAN that carries the
/// main default route is in service nothing is steered (the administrator's routing
/// stands); once it is out of service (probes fail, or its carrier is gone but the route
/// stayed), upstream sockets are bound to the address of the first WAN in service, regular
/// before backup, and its `from ADDR` rule takes the SYN out through it.
public struct UplinkChoice: Sendable, Equatable, CustomStringConvertible {
    public struct Prefix: Sendable, Equatable {
        public var address: IPAddress
        public var length: Int
    }

    /// At most one address per family.
    public var sources: [IPAddress] = []
    /// The WAN the sources belong to.
    public var via: String?
    /// Set when no WAN is in service: why, for the reset's log line.
    public var refusal: String?
    /// Connected prefixes (the LAN, each WAN's subnet): reached directly, never steered.
    public var exempt: [Prefix] = []

    public init(sources: [IPAddress] = [], via: String? = nil, refusal: String? = nil, exempt: [Prefix] = []) {
        self.sources = sources
        self.via = via
        self.refusal = refusal
        self.exempt = exempt
    }

    public var isActive: Bool { !sources.isEmpty || refusal != nil }

    public var description: String {
        if let refusal { return "none: \(refusal)" }
        guard let via else { return "main routing table" }
        return "\(via) (\(sources.map(\.description).joined(separator: ", ")))"
    }

    /// - Parameter service: for each enabled WAN, nil when it is in service, else why not.
    public static func choose(_ plan: WanPlan, _ view: KernelView, service: [String: String?]) -> UplinkChoice {
        var out = UplinkChoice()
        let wans = plan.enabledWans
        guard !wans.isEmpty else { return out }
        out.exempt = view.addresses.map { Prefix(address: $0.address.masked($0.prefixLength), length: $0.prefixLength) }
        let usable = wans.filter { (service[$0.interface] ?? "not known") == nil }
        guard !usable.isEmpty else {
            let why = wans.map { "\($0.interface): \((service[$0.interface] ?? "not known") ?? "")" }.joined(separator: "; ")
            out.refusal = "no WAN in service (\(why))"
            return out
        }
        let preferred = usable.filter { !$0.backup } + usable.filter(\.backup)
        for family in [IPAddress.Family.v4, .v6] {
            let main = view.routes.filter { $0.table == 254 && $0.isDefault && $0.family == family }.min { $0.metric < $1.metric }
            if let main {
                // A default route through something that is not a WAN, or through a WAN in
                // service: the main table is right.
                guard let wan = wans.first(where: { view.link(named: $0.interface)?.ifindex == main.oif }),
                      !usable.contains(where: { $0.interface == wan.interface }) else { continue }
            }
            for wan in preferred {
                guard let link = view.link(named: wan.interface),
                      let source = view.addresses.filter({ $0.ifindex == link.ifindex && $0.isUsable && $0.address.family == family })
                          .map(\.address).min() else { continue }
                out.sources.append(source)
                if out.via == nil { out.via = wan.interface }
                break
            }
        }
        if out.sources.isEmpty { out.exempt = [] }
        return out
    }
}
