import Netlink

/// One `[server] advertise` entry: an address of this aggregation server (and optionally a
/// port) that the load balancer routes straight to it. The WAN manager keeps a `signal`
/// endpoint for it, so every MPTCP connection is told (ADD_ADDR) where its extra subflows
/// must go instead of the balanced address, which may hash them onto another server.
public struct AdvertisedAddress: Hashable, Sendable, CustomStringConvertible {
    public var address: IPAddress
    /// 0: joins come to the listener's own port on `address` (the listener must accept on
    /// that address). Otherwise the kernel opens a listener of its own on `address:port`.
    public var port: UInt16

    public init(address: IPAddress, port: UInt16 = 0) {
        self.address = address
        self.port = port
    }

    public var description: String {
        guard port != 0 else { return "\(address)" }
        return address.family == .v6 ? "[\(address)]:\(port)" : "\(address):\(port)"
    }

    /// The signal endpoint the reconciler keeps for it (its id is given when it is added).
    var endpoint: Endpoint { Endpoint(id: 0, address: address, port: port, flags: .signal, ifindex: 0) }
}

extension WanPlan {
    /// True when this process is an aggregation server announcing per-server addresses:
    /// the manager then holds `net.mptcp.allow_join_initial_addr_port` at 0 (the C flag).
    public var advertises: Bool { !advertise.isEmpty }
}
