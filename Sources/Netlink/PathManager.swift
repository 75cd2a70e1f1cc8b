import CNetlink
import SystemPackage

/// Flags of an in-kernel path manager endpoint (`ip mptcp endpoint ... subflow backup`).
public struct EndpointFlags: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let signal = EndpointFlags(rawValue: CNL_PM_FLAG_SIGNAL)
    public static let subflow = EndpointFlags(rawValue: CNL_PM_FLAG_SUBFLOW)
    public static let backup = EndpointFlags(rawValue: CNL_PM_FLAG_BACKUP)
    public static let fullmesh = EndpointFlags(rawValue: CNL_PM_FLAG_FULLMESH)
    public static let implicit = EndpointFlags(rawValue: CNL_PM_FLAG_IMPLICIT)
    /// Linux 6.18+.
    public static let laminar = EndpointFlags(rawValue: CNL_PM_FLAG_LAMINAR)

    public var description: String {
        let names: [(EndpointFlags, String)] = [(.signal, "signal"), (.subflow, "subflow"), (.backup, "backup"),
                                                (.fullmesh, "fullmesh"), (.implicit, "implicit"), (.laminar, "laminar")]
        let parts = names.filter { contains($0.0) }.map(\.1)
        return parts.isEmpty ? "-" : parts.joined(separator: ",")
    }
}

/// One endpoint of the in-kernel path manager.
public struct Endpoint: Hashable, Sendable {
    public var id: UInt8
    public var address: IPAddress
    public var port: UInt16 = 0
    public var flags: EndpointFlags
    /// 0: not bound to a device.
    public var ifindex: Int32

    public init(id: UInt8, address: IPAddress, port: UInt16 = 0, flags: EndpointFlags, ifindex: Int32) {
        self.id = id
        self.address = address
        self.port = port
        self.flags = flags
        self.ifindex = ifindex
    }
}

/// The generic netlink family `mptcp_pm` (include/uapi/linux/mptcp_pm.h).
public final class PathManagerClient {
    let socket: NetlinkSocket

    /// Opens a generic netlink socket and resolves the family; ENOENT when this kernel has
    /// no MPTCP path manager.
    public init() throws(Errno) {
        socket = try NetlinkSocket(bus: .generic)
        try check(cnl_pm_resolve(socket.handle))
    }

    /// MPTCP_PM_CMD_GET_ADDR (dump).
    public func endpoints() throws(Errno) -> [Endpoint] {
        let raw = try dump(empty: cnl_endpoint()) { cnl_pm_dump_addrs(socket.handle, $0, $1, $2) }
        return raw.compactMap { e in
            IPAddress(rawFamily: e.family, e.addr).map {
                Endpoint(id: e.id, address: $0, port: e.port, flags: EndpointFlags(rawValue: e.flags), ifindex: e.ifindex)
            }
        }
    }

    /// MPTCP_PM_CMD_ADD_ADDR. EEXIST when the address (or id) is already an endpoint.
    public func add(_ e: Endpoint) throws(Errno) {
        var c = cnl_endpoint()
        c.id = e.id
        c.family = e.address.family.rawValue
        c.port = e.port
        c.flags = e.flags.rawValue
        c.ifindex = e.ifindex
        c.addr = e.address.raw16
        try check(cnl_pm_add_addr(socket.handle, &c))
    }

    /// MPTCP_PM_CMD_DEL_ADDR by id: the kernel also closes the subflows using it.
    public func delete(id: UInt8) throws(Errno) {
        try check(cnl_pm_del_addr(socket.handle, id))
    }

    /// MPTCP_PM_CMD_SET_FLAGS (backup, fullmesh).
    public func setFlags(id: UInt8, _ flags: EndpointFlags) throws(Errno) {
        try check(cnl_pm_set_flags(socket.handle, id, flags.rawValue))
    }

    /// MPTCP_PM_CMD_GET_LIMITS.
    public func limits() throws(Errno) -> PathLimits {
        var subflows: UInt32 = 0, accepted: UInt32 = 0
        try check(cnl_pm_get_limits(socket.handle, &subflows, &accepted))
        return PathLimits(subflows: Int(subflows), addAddrAccepted: Int(accepted))
    }

    /// MPTCP_PM_CMD_SET_LIMITS.
    public func setLimits(_ l: PathLimits) throws(Errno) {
        try check(cnl_pm_set_limits(socket.handle, UInt32(l.subflows), UInt32(l.addAddrAccepted)))
    }
}

/// `ip mptcp limits`: extra subflows per connection, ADD_ADDRs accepted per connection.
public struct PathLimits: Hashable, Sendable, CustomStringConvertible {
    public var subflows: Int
    public var addAddrAccepted: Int
    public init(subflows: Int, addAddrAccepted: Int) {
        self.subflows = subflows
        self.addAddrAccepted = addAddrAccepted
    }
    public var description: String { "subflows \(subflows) add_addr_accepted \(addAddrAccepted)" }
}

/// One message of the `mptcp_pm_events` multicast group.
public struct PathManagerEvent: Hashable, Sendable {
    public enum Kind: UInt8, Sendable {
        case overrun = 0
        case created = 1, established = 2, closed = 3, announced = 6, removed = 7
        case subflowEstablished = 10, subflowClosed = 11, subflowPriority = 13
        case listenerCreated = 15, listenerClosed = 16
    }
    public var kind: Kind
    public var token: UInt32
    public var source: IPAddress?
    public var destination: IPAddress?
    public var sourcePort: UInt16
    public var destinationPort: UInt16
    public var localID: UInt8
    public var ifindex: Int32
    public var backup: Bool
    /// errno of a closed subflow (0: closed cleanly or not given).
    public var error: UInt8

    public init(kind: Kind, token: UInt32, source: IPAddress?, destination: IPAddress?, sourcePort: UInt16,
                destinationPort: UInt16, localID: UInt8, ifindex: Int32, backup: Bool, error: UInt8) {
        self.kind = kind
        self.token = token
        self.source = source
        self.destination = destination
        self.sourcePort = sourcePort
        self.destinationPort = destinationPort
        self.localID = localID
        self.ifindex = ifindex
        self.backup = backup
        self.error = error
    }
}

/// A generic netlink socket joined to `mptcp_pm_events`: connection and subflow events.
public final class PathManagerEventSocket {
    let socket: NetlinkSocket

    public init() throws(Errno) {
        socket = try NetlinkSocket(bus: .generic)
        try check(cnl_pm_join_events(socket.handle))
    }

    public var fileDescriptor: Int32 { socket.fileDescriptor }

    /// Everything queued, without blocking; unknown event types are skipped.
    public func drain() throws(Errno) -> [PathManagerEvent] {
        var buf = [cnl_pm_event](repeating: cnl_pm_event(), count: 256)
        var count: Int32 = 0
        let ret = buf.withUnsafeMutableBufferPointer { cnl_pm_ev_drain(socket.handle, $0.baseAddress!, 256, &count) }
        try check(ret)
        return buf.prefix(Int(count)).compactMap { e in
            guard let kind = PathManagerEvent.Kind(rawValue: e.type) else { return nil }
            return PathManagerEvent(kind: kind, token: e.token, source: IPAddress(rawFamily: e.family, e.saddr),
                                    destination: IPAddress(rawFamily: e.family, e.daddr), sourcePort: e.sport,
                                    destinationPort: e.dport, localID: e.loc_id, ifindex: e.ifindex,
                                    backup: e.backup != 0, error: e.error)
        }
    }
}
