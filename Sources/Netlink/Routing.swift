import CNetlink
import SystemPackage

/// A network interface as rtnetlink reports it.
public struct Link: Hashable, Sendable {
    public var ifindex: Int32
    public var name: String
    /// IFF_* bits.
    public var flags: UInt32
    /// IF_OPER_* (6 = up).
    public var operState: UInt8

    public init(ifindex: Int32, name: String, flags: UInt32, operState: UInt8) {
        self.ifindex = ifindex
        self.name = name
        self.flags = flags
        self.operState = operState
    }

    /// Administratively up and carrier present (IFF_UP and IFF_LOWER_UP): it can carry packets.
    public var isUp: Bool { flags & 0x1 != 0 && flags & 0x10000 != 0 }
}

/// An address assigned to an interface.
public struct InterfaceAddress: Hashable, Sendable {
    public var ifindex: Int32
    public var address: IPAddress
    public var prefixLength: Int
    /// RT_SCOPE_*: 0 is global.
    public var scope: UInt8
    /// IFA_F_*.
    public var flags: UInt32

    public init(ifindex: Int32, address: IPAddress, prefixLength: Int, scope: UInt8 = 0, flags: UInt32 = 0) {
        self.ifindex = ifindex
        self.address = address
        self.prefixLength = prefixLength
        self.scope = scope
        self.flags = flags
    }

    /// Global scope and usable as a source now: not tentative (DAD), deprecated or dadfailed.
    public var isUsable: Bool { scope == 0 && flags & (0x40 | 0x20 | 0x08) == 0 }
}

/// A unicast route.
public struct Route: Hashable, Sendable {
    public var table: UInt32
    public var destination: IPAddress
    public var prefixLength: Int
    public var gateway: IPAddress?
    public var oif: Int32
    /// RTPROT_*: who installed it; the WAN manager marks its own.
    public var protocolID: UInt8
    public var metric: UInt32 = 0
    /// RT_SCOPE_*: 253 (link) for a directly connected prefix.
    public var scope: UInt8 = 0
    /// RTNH_F_*: 4 is onlink.
    public var flags: UInt32 = 0

    public init(table: UInt32, destination: IPAddress, prefixLength: Int, gateway: IPAddress?, oif: Int32,
                protocolID: UInt8, metric: UInt32 = 0, scope: UInt8 = 0, flags: UInt32 = 0) {
        self.table = table
        self.destination = destination
        self.prefixLength = prefixLength
        self.gateway = gateway
        self.oif = oif
        self.protocolID = protocolID
        self.metric = metric
        self.scope = scope
        self.flags = flags
    }

    public var family: IPAddress.Family { destination.family }
    public var isDefault: Bool { prefixLength == 0 }
}

/// A policy routing rule `[from SOURCE/LEN] [fwmark MARK/MASK] lookup TABLE
/// [suppress_prefixlength N]`. A source length of 0 matches every source (the address
/// only names the family).
public struct Rule: Hashable, Sendable {
    public var source: IPAddress
    public var sourceLength: Int
    public var table: UInt32
    public var priority: UInt32
    /// FRA_PROTOCOL: who installed it.
    public var protocolID: UInt8
    /// Packet mark match; a mask of 0: none.
    public var fwmark: UInt32 = 0
    public var fwmask: UInt32 = 0
    /// Routes of this prefix length or shorter found in the table are ignored (0: its
    /// default route), so the lookup goes on to the next rule.
    public var suppressPrefixLength: Int? = nil

    public init(source: IPAddress, sourceLength: Int, table: UInt32, priority: UInt32, protocolID: UInt8,
                fwmark: UInt32 = 0, fwmask: UInt32 = 0, suppressPrefixLength: Int? = nil) {
        self.source = source
        self.sourceLength = sourceLength
        self.table = table
        self.priority = priority
        self.protocolID = protocolID
        self.fwmark = fwmark
        self.fwmask = fwmask
        self.suppressPrefixLength = suppressPrefixLength
    }

    public var family: IPAddress.Family { source.family }
}

/// rtnetlink requests: dumps of links, addresses, routes and rules, and route/rule changes.
public final class RoutingClient {
    let socket: NetlinkSocket

    public init() throws(Errno) {
        socket = try NetlinkSocket(bus: .route)
    }

    public func links() throws(Errno) -> [Link] {
        try dump(empty: cnl_link()) { cnl_rt_dump_links(socket.handle, $0, $1, $2) }.map { l in
            let name = withUnsafeBytes(of: l.name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            return Link(ifindex: l.ifindex, name: name, flags: l.flags, operState: l.operstate)
        }
    }

    public func addresses() throws(Errno) -> [InterfaceAddress] {
        try dump(empty: cnl_address()) { cnl_rt_dump_addresses(socket.handle, $0, $1, $2) }.compactMap { a in
            IPAddress(rawFamily: a.family, a.addr).map {
                InterfaceAddress(ifindex: a.ifindex, address: $0, prefixLength: Int(a.prefixlen), scope: a.scope, flags: a.flags)
            }
        }
    }

    /// Unicast routes of every table, both families.
    public func routes() throws(Errno) -> [Route] {
        try dump(empty: cnl_route()) { cnl_rt_dump_routes(socket.handle, $0, $1, $2) }.compactMap { r in
            guard let dst = IPAddress(rawFamily: r.family, r.dst) else { return nil }
            let gw = r.has_gateway != 0 ? IPAddress(rawFamily: r.family, r.gateway) : nil
            return Route(table: r.table, destination: dst, prefixLength: Int(r.dst_len), gateway: gw, oif: r.oif,
                         protocolID: r.protocol, metric: r.priority, scope: r.scope, flags: r.flags)
        }
    }

    /// Rules of both families that look up a table from a source prefix.
    public func rules() throws(Errno) -> [Rule] {
        try dump(empty: cnl_rule()) { cnl_rt_dump_rules(socket.handle, $0, $1, $2) }.compactMap { r in
            guard r.action == 1, let src = IPAddress(rawFamily: r.family, r.src) else { return nil }
            return Rule(source: src, sourceLength: Int(r.src_len), table: r.table, priority: r.priority, protocolID: r.protocol,
                        fwmark: r.fwmark, fwmask: r.fwmask, suppressPrefixLength: r.suppress_prefixlen >= 0 ? Int(r.suppress_prefixlen) : nil)
        }
    }

    /// RTM_NEWROUTE with create|replace.
    public func add(_ r: Route) throws(Errno) { try check(route(r, add: true)) }
    /// RTM_DELROUTE.
    public func delete(_ r: Route) throws(Errno) { try check(route(r, add: false)) }
    /// RTM_NEWRULE (EEXIST when an identical rule is there).
    public func add(_ r: Rule) throws(Errno) { try check(rule(r, add: true)) }
    /// RTM_DELRULE.
    public func delete(_ r: Rule) throws(Errno) { try check(rule(r, add: false)) }

    private func route(_ r: Route, add: Bool) -> Int32 {
        var c = cnl_route()
        c.family = r.family.rawValue
        c.dst_len = UInt8(r.prefixLength)
        c.protocol = r.protocolID
        c.scope = r.scope
        c.table = r.table
        c.oif = r.oif
        c.priority = r.metric
        c.flags = r.flags
        c.dst = r.destination.raw16
        if let gw = r.gateway {
            c.has_gateway = 1
            c.gateway = gw.raw16
        }
        return cnl_rt_route(socket.handle, add ? 1 : 0, &c)
    }

    private func rule(_ r: Rule, add: Bool) -> Int32 {
        var c = cnl_rule()
        c.family = r.source.family.rawValue
        c.src_len = UInt8(r.sourceLength)
        c.protocol = r.protocolID
        c.table = r.table
        c.priority = r.priority
        c.fwmark = r.fwmark
        c.fwmask = r.fwmask
        c.suppress_prefixlen = r.suppressPrefixLength.map(Int32.init) ?? -1
        c.src = r.source.raw16
        return cnl_rt_rule(socket.handle, add ? 1 : 0, &c)
    }
}

/// What changed, as far as the WAN manager cares.
public enum RoutingEvent: Hashable, Sendable {
    case link(ifindex: Int32, up: Bool, removed: Bool)
    case address(ifindex: Int32)
    case route
    /// The kernel dropped events (socket buffer full): re-read everything.
    case overrun
    case other
}

/// A multicast rtnetlink socket on the link, address and route groups.
public final class RoutingEventSocket {
    let socket: NetlinkSocket

    public init() throws(Errno) {
        socket = try NetlinkSocket(bus: .route, groups: UInt32(CNL_RTMGRP_LINK | CNL_RTMGRP_IPV4_IFADDR | CNL_RTMGRP_IPV6_IFADDR
                                                                  | CNL_RTMGRP_IPV4_ROUTE | CNL_RTMGRP_IPV6_ROUTE))
    }

    public var fileDescriptor: Int32 { socket.fileDescriptor }

    /// Everything queued, without blocking (empty when nothing is).
    public func drain() throws(Errno) -> [RoutingEvent] {
        var buf = [cnl_event](repeating: cnl_event(), count: 256)
        var count: Int32 = 0
        let ret = buf.withUnsafeMutableBufferPointer { cnl_ev_drain(socket.handle, $0.baseAddress!, 256, &count) }
        try check(ret)
        return buf.prefix(Int(count)).map { e in
            switch Int(e.kind) {
            case CNL_EV_LINK:
                return .link(ifindex: e.ifindex, up: e.flags & 0x1 != 0 && e.flags & 0x10000 != 0, removed: e.removed != 0)
            case CNL_EV_ADDRESS: return .address(ifindex: e.ifindex)
            case CNL_EV_ROUTE: return .route
            case CNL_EV_OVERRUN: return .overrun
            default: return .other
            }
        }
    }
}
