import Netlink

/// One WAN as `mptcp-relay wan` shows it: config and kernel state side by side.
public struct WanStatus: Sendable, Equatable {
    public var interface: String
    public var backup: Bool
    public var enabled: Bool
    public var table: UInt32
    /// "up", "down" or "absent".
    public var link: String
    public var addresses: [IPAddress]
    public var gateways: [IPAddress]
    /// Endpoints on its addresses, and whether this gateway created them.
    public var endpoints: [(endpoint: Endpoint, owned: Bool)]

    public static func == (a: WanStatus, b: WanStatus) -> Bool {
        a.interface == b.interface && a.link == b.link && a.addresses == b.addresses && a.gateways == b.gateways
            && a.endpoints.map(\.endpoint) == b.endpoints.map(\.endpoint) && a.endpoints.map(\.owned) == b.endpoints.map(\.owned)
    }

    public static func of(_ plan: WanPlan, _ view: KernelView, owned: Set<OwnedEndpoint>) -> [WanStatus] {
        plan.wans.map { wan in
            guard let link = view.link(named: wan.interface) else {
                return WanStatus(interface: wan.interface, backup: wan.backup, enabled: wan.enabled, table: wan.table,
                                 link: "absent", addresses: [], gateways: [], endpoints: [])
            }
            let addresses = view.addresses.filter { $0.ifindex == link.ifindex && $0.isUsable }.map(\.address).sorted()
            let gateways = [IPAddress.Family.v4, .v6].compactMap { view.gateway(for: wan, ifindex: link.ifindex, family: $0) }
            let endpoints = view.endpoints.filter { addresses.contains($0.address) || $0.ifindex == link.ifindex }
                .sorted { $0.id < $1.id }
                .map { ($0, owned.contains(OwnedEndpoint(id: $0.id, address: $0.address))) }
            return WanStatus(interface: wan.interface, backup: wan.backup, enabled: wan.enabled, table: wan.table,
                             link: link.isUp ? "up" : "down", addresses: addresses, gateways: gateways, endpoints: endpoints)
        }
    }
}
