import Netlink
import SystemPackage

/// What the kernel holds now: the other input of `WanReconciler`.
public struct KernelView: Sendable, Equatable {
    public var links: [Link] = []
    public var addresses: [InterfaceAddress] = []
    public var routes: [Route] = []
    public var rules: [Rule] = []
    public var endpoints: [Endpoint] = []
    public var limits: PathLimits?

    public init(links: [Link] = [], addresses: [InterfaceAddress] = [], routes: [Route] = [], rules: [Rule] = [],
                endpoints: [Endpoint] = [], limits: PathLimits? = nil) {
        self.links = links
        self.addresses = addresses
        self.routes = routes
        self.rules = rules
        self.endpoints = endpoints
        self.limits = limits
    }

    /// Reads everything over netlink.
    public static func read(routing: RoutingClient, pm: PathManagerClient) throws(Errno) -> KernelView {
        KernelView(links: try routing.links(), addresses: try routing.addresses(), routes: try routing.routes(),
                   rules: try routing.rules(), endpoints: try pm.endpoints(), limits: try pm.limits())
    }

    public func link(named name: String) -> Link? { links.first { $0.name == name } }

    /// The gateway of `family` a WAN uses: the configured one, else the lowest-metric default
    /// route through the interface in the main table that is not ours.
    public func gateway(for wan: WanSpec, ifindex: Int32, family: IPAddress.Family) -> IPAddress? {
        if let configured = wan.gateways.first(where: { $0.family == family }) { return configured }
        return routes
            .filter { $0.table == 254 && $0.isDefault && $0.oif == ifindex && $0.family == family
                && $0.protocolID != WanPlan.routeProtocol && $0.gateway != nil }
            .min { $0.metric < $1.metric }?.gateway
    }
}
