import Netlink

/// Which endpoint flag the gateway's WAN addresses get (`[paths] endpoint`).
public enum EndpointKind: String, Sendable, CaseIterable {
    /// One subflow per endpoint towards the server's address (the usual gateway setup).
    case subflow
    /// Subflows from this endpoint to every address the server announces (needed behind a
    /// server that sets the C flag; see NOTES.md).
    case fullmesh
    /// Linux 6.18+: like fullmesh for announced addresses, without the full mesh.
    case laminar

    var flags: EndpointFlags {
        switch self {
        case .subflow: return .subflow
        case .fullmesh: return [.subflow, .fullmesh]
        case .laminar: return [.subflow, .laminar]
        }
    }
}

/// One `[[wan]]` table: an uplink whose endpoints, rule and routes the manager keeps.
public struct WanSpec: Sendable, Equatable {
    public var interface: String
    /// Configured gateways (at most one per family); a family without one is learned from
    /// the interface's default route in the main table.
    public var gateways: [IPAddress] = []
    /// Standby: the scheduler uses it only when no regular subflow works.
    public var backup = false
    /// Routing table of this WAN's `from ADDR lookup TABLE` rule.
    public var table: UInt32
    public var enabled = true
    /// Health probe targets; nil: `ProbeTarget.defaults` with the gateway as fallback; empty: not probed.
    public var probes: [ProbeTarget]?

    public init(interface: String, gateways: [IPAddress] = [], backup: Bool = false, table: UInt32, enabled: Bool = true,
                probes: [ProbeTarget]? = nil) {
        self.interface = interface
        self.probes = probes
        self.gateways = gateways
        self.backup = backup
        self.table = table
        self.enabled = enabled
    }
}

/// The `[paths]` table.
public struct PathSettings: Sendable, Equatable {
    /// nil: derived from the number of WANs (`WanPlan.limits`).
    public var subflows: Int?
    public var addAddrAccepted: Int?
    public var endpointKind: EndpointKind = .subflow
    public init() {}
}

/// The `[routing]` table: whether everything the gateway routes, and its own traffic,
/// follows the WANs in service (not only the relay's connections).
public struct RoutingSettings: Sendable, Equatable {
    /// Rules in front of the main table send traffic whose main-table route is the default
    /// route to the relay's own table, which names a WAN in service while the main table's
    /// default WAN is out; flows are pinned to the WAN they started on (connmark).
    public var followService = true
    /// The relay's own routing table (its default route, while one is needed).
    public var table: UInt32 = 1000
    public init() {}
}

/// What the config asks of the kernel: the input of `WanReconciler`.
public struct WanPlan: Sendable, Equatable {
    public var wans: [WanSpec]
    public var paths: PathSettings
    /// `[health]`: probe timing and thresholds.
    public var health = HealthSettings()
    /// `[server] advertise`: addresses announced with `signal` endpoints (AdvertisedAddress.swift).
    public var advertise: [AdvertisedAddress] = []
    /// `[routing]`: routed traffic follows the WANs in service.
    public var routing = RoutingSettings()

    /// RTPROT value marking the routes and rules the manager installs (`ip route show proto
    /// 245`); anything else is someone else's and never touched.
    public static let routeProtocol: UInt8 = 245
    /// Priority of the `from ADDR lookup TABLE` rules: after administrators' usual rules,
    /// before the main table (32766), whose default route goes through one WAN only.
    public static let rulePriority: UInt32 = 31000
    /// The rules that make routed traffic follow the WANs in service, after the WANs'
    /// `from ADDR` rules (traffic bound to a WAN keeps it) and before the main table:
    /// `lookup main suppress_prefixlength 0` (the LAN, static routes and VPNs stay as the
    /// main table has them), then `fwmark WAN lookup WAN's table` per WAN in service (a flow
    /// stays on the WAN it started on), then `lookup` the relay's table (`[routing] table`),
    /// whose default route exists only while the main table's default WAN is out of service.
    public static let suppressPriority: UInt32 = 31100
    public static let markPriority: UInt32 = 31101
    public static let servicePriority: UInt32 = 31200
    /// The bits of the packet and connection mark the pinning uses: WAN at position K
    /// (1-based, in the config) is K << 24. TPROXY's mark (0x4d50 by default) must stay clear of it
    /// (`check` refuses one that does not).
    public static let markMask: UInt32 = 0xff00_0000

    /// Tables given to WANs without `table`: 1000 + position (1-based). Table 100 is the
    /// TPROXY default.
    public static let firstTable: UInt32 = 1001
    /// Where new endpoint ids start (the kernel numbers `ip mptcp endpoint add` from 1).
    public static let firstEndpointID: UInt8 = 100

    public init(wans: [WanSpec], paths: PathSettings = PathSettings(), advertise: [AdvertisedAddress] = []) {
        self.wans = wans
        self.paths = paths
        self.advertise = advertise
    }

    public var enabledWans: [WanSpec] { wans.filter(\.enabled) }

    /// True when routed traffic follows the WANs in service (there are WANs to follow).
    public var followsService: Bool { routing.followService && !enabledWans.isEmpty }

    /// The connection mark of flows that left by `wan` (its position in the config).
    public func mark(of wan: String) -> UInt32? {
        guard let i = wans.firstIndex(where: { $0.interface == wan }), i < 255 else { return nil }
        return UInt32(i + 1) << 24
    }

    /// `[paths]` limits, or per WAN one extra subflow for each family, and one accepted
    /// ADD_ADDR per WAN; at most 8 each (the kernel's cap). A server that advertises
    /// addresses accepts the kernel's most joins: its clients may have many WANs.
    public var limits: PathLimits {
        let n = max(1, enabledWans.count)
        return PathLimits(subflows: paths.subflows ?? (advertises ? 8 : min(8, max(2, 2 * n))),
                          addAddrAccepted: paths.addAddrAccepted ?? min(8, n))
    }

    public func endpointFlags(_ wan: WanSpec) -> EndpointFlags {
        wan.backup ? paths.endpointKind.flags.union(.backup) : paths.endpointKind.flags
    }
}
