import CNetlink
import SystemPackage

/// One netlink socket (libmnl underneath): a request socket for `mptcp_pm` or rtnetlink,
/// or a multicast socket for rtnetlink events. Not thread-safe: one owner thread.
public final class NetlinkSocket {
    public enum Bus: Int32, Sendable {
        case route = 0     // NETLINK_ROUTE
        case generic = 16  // NETLINK_GENERIC
        case netfilter = 12  // NETLINK_NETFILTER (conntrack)
    }

    let handle: OpaquePointer

    /// `cnl_open`: a socket on `bus` joined to the rtnetlink multicast `groups` bits.
    public init(bus: Bus, groups: UInt32 = 0) throws(Errno) {
        var err: Int32 = 0
        guard let h = cnl_open(bus.rawValue, groups, &err) else { throw Errno(rawValue: -err) }
        handle = h
    }

    deinit { cnl_close(handle) }

    /// The descriptor, for poll(2).
    public var fileDescriptor: Int32 { cnl_fd(handle) }
}

/// Turns the C layer's `0 / -errno` into a typed error.
@inline(__always)
func check(_ ret: Int32) throws(Errno) {
    if ret < 0 { throw Errno(rawValue: -ret) }
}

/// Runs a `(out, cap, &total)` dump, growing the buffer until everything fits.
func dump<T>(empty: T, _ call: (UnsafeMutablePointer<T>, Int32, UnsafeMutablePointer<Int32>) -> Int32) throws(Errno) -> [T] {
    var cap = 64
    while true {
        var items = [T](repeating: empty, count: cap)
        var total: Int32 = 0
        let ret = items.withUnsafeMutableBufferPointer { call($0.baseAddress!, Int32(cap), &total) }
        try check(ret)
        if Int(total) <= cap { return Array(items.prefix(Int(total))) }
        cap = Int(total) + 16
    }
}
