/// The JSON of /api/connections, also read back by `mptcp-relay status`.
public struct StatusDocument: Codable, Sendable {
    public struct Subflow: Codable, Sendable {
        public var local: String?
        public var remote: String?
        /// The interface that holds the local address (the WAN), when one does.
        public var interface: String?
        public var rttMs: Double?
        public var bytesSent: UInt64?
        public var bytesReceived: UInt64?
    }

    public struct Connection: Codable, Sendable {
        public var id: String
        public var listener: String
        public var mode: String
        public var client: String?
        public var destination: String?
        public var phase: String
        /// "mptcp", a fallback reason ("fallback_peer", "fallback_kernel", "mptcp_lost",
        /// "disabled"), or nil while connecting.
        public var mptcp: String?
        public var subflows: [Subflow]?
        public var bytesUp: UInt64
        public var bytesDown: UInt64
        public var ageSeconds: Double
        /// Tunnel server: the gateway's key id. Gateway: the aggregation server used.
        public var key: String? = nil
        public var server: String? = nil
    }

    /// A gateway's aggregation server as its health pings see it: the API's own copy of
    /// `TunnelServerReport` (as `Uplink` is of `UplinkReport`: the document is a schema
    /// clients rely on, kept apart from the relay's internal types).
    public struct TunnelServer: Codable, Sendable, Equatable {
        public var address: String
        public var inService: Bool
        public var detail: String
        public var rttMs: Double?
        public var since: Double
        public var rounds: UInt64
        public var failedRounds: UInt64
        public var transitions: UInt64
        /// Open connections through it now (of the workers that answered).
        public var connections: Int
    }

    /// A tunnel server's key (or "other", past the label cap): open connections and totals.
    public struct TunnelKey: Codable, Sendable, Equatable {
        public var key: String
        public var open: Int
        public var accepted: UInt64
        public var refused: UInt64
        public var bytesUp: UInt64
        public var bytesDown: UInt64
    }

    /// Traffic per WAN interface, summed from the subflows of open connections since the
    /// admin listener started (bytes of a subflow that ended between two reads are lost).
    public struct Wan: Codable, Sendable {
        public var interface: String
        public var subflows: Int
        public var bytesSent: UInt64
        public var bytesReceived: UInt64
    }

    /// One `[[wan]]` uplink as the WAN manager's health probes see it. The API's own copy of
    /// `WanManager.UplinkReport`: the document is a schema clients rely on, and RelayAdmin
    /// does not depend on the netlink side.
    public struct Uplink: Codable, Sendable, Equatable {
        public var interface: String
        /// "up", "down" or "absent".
        public var link: String
        /// "up", "down", "unknown" or "off".
        public var probes: String
        public var inService: Bool
        public var detail: String
        /// Seconds since the epoch of the last change in or out of service.
        public var since: Double
        public var rounds: UInt64
        public var failedRounds: UInt64
        public var transitions: UInt64
        /// NATed flows moved off it (conntrack entries deleted) when it went out of service.
        public var flowsMoved: UInt64 = 0
        /// Its probes fail, as every WAN's do: used anyway (fail open).
        public var failOpen = false
        /// The last probe round's quickest answer (ms).
        public var rttMs: Double?

        public init(interface: String, link: String, probes: String, inService: Bool, detail: String, since: Double,
                    rounds: UInt64, failedRounds: UInt64, transitions: UInt64) {
            self.interface = interface
            self.link = link
            self.probes = probes
            self.inService = inService
            self.detail = detail
            self.since = since
            self.rounds = rounds
            self.failedRounds = failedRounds
            self.transitions = transitions
        }
    }

    /// Where one family's routed traffic (and the gateway's own) goes, with `[routing]
    /// follow_service`: the API's copy of `WanManager.RoutingReport`.
    public struct Routing: Codable, Sendable, Equatable {
        /// "IPv4" or "IPv6".
        public var family: String
        /// The WAN it is sent to while the main table's default WAN is out; nil: the main table.
        public var via: String?
        public var reason: String
        public var since: Double
        public var changes: UInt64

        public init(family: String, via: String?, reason: String, since: Double, changes: UInt64) {
            self.family = family
            self.via = via
            self.reason = reason
            self.since = since
            self.changes = changes
        }
    }

    public struct Totals: Codable, Sendable {
        public var openConnections: Int
        public var accepted: UInt64
        public var closed: UInt64
        public var mptcp: UInt64
        public var fallback: UInt64
        /// Bytes relayed so far, by connections closed and open (of the workers that answered).
        public var bytesUp: UInt64
        public var bytesDown: UInt64
        public var pipesInUse: Int
        public var acceptPauses: UInt64
    }

    /// One UDP flow through the tunnel (gateway: a LAN client's flow; server: a flow a
    /// gateway opened).
    public struct UdpFlow: Codable, Sendable {
        public var id: String
        public var client: String?
        public var destination: String?
        /// connecting, open, refused (held down after the tunnel failed or was refused).
        public var phase: String
        public var mptcp: String?
        public var datagramsUp: UInt64
        public var datagramsDown: UInt64
        public var bytesUp: UInt64
        public var bytesDown: UInt64
        public var drops: UInt64
        /// Bytes waiting for the tunnel socket now.
        public var queuedBytes: Int
        public var ageSeconds: Double
        public var idleSeconds: Double
    }

    /// The datagram engine: totals since start, drops by reason, open flows.
    public struct Udp: Codable, Sendable {
        public var role: String
        public var openFlows: Int
        public var flowsOpened: UInt64
        public var datagramsUp: UInt64
        public var datagramsDown: UInt64
        public var bytesUp: UInt64
        public var bytesDown: UInt64
        /// By reason: age, queue_full, flow_limit, client_limit, tunnel_down, send_failed, not_intercepted.
        public var drops: [String: UInt64]
        public var flows: [UdpFlow]
    }

    public var time: Double
    public var workersAnswered: Int
    public var workers: Int
    public var totals: Totals
    public var wans: [Wan]
    public var connections: [Connection]
    /// MPTCP connections whose subflows were not read (over the per-request budget).
    public var subflowDetailsOmitted: Int
    /// The `[[wan]]` uplinks' service state; nil without a WAN manager.
    public var uplinks: [Uplink]? = nil
    /// Routed traffic per family; nil without a WAN manager that steers it.
    public var routing: [Routing]? = nil
    /// UDP flows through the tunnel; nil when this relay carries none.
    public var udp: Udp? = nil
    /// Gateway with several tunnel servers: each one's state; nil without.
    public var servers: [TunnelServer]? = nil
    /// Tunnel server: per key; nil when no tunnel header was ever accepted or refused.
    public var keys: [TunnelKey]? = nil
}
