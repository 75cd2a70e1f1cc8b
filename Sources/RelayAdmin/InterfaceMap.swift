#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket

/// Which interface holds which local address (getifaddrs), to name a subflow's WAN.
struct InterfaceMap {
    private var byHost: [String: String] = [:]

    static func current() -> InterfaceMap {
        var map = InterfaceMap()
        var list: UnsafeMutablePointer<ifaddrs>?
        guard getifaddrs(&list) == 0, let first = list else { return map }
        defer { freeifaddrs(list) }
        for entry in sequence(first: first, next: { $0.pointee.ifa_next }) {
            guard let sa = entry.pointee.ifa_addr, let address = SocketAddress(storage: UnsafeRawPointer(sa)) else { continue }
            map.byHost[Self.plainHost(address.host)] = String(cString: entry.pointee.ifa_name)
        }
        return map
    }

    func interface(of address: SocketAddress?) -> String? {
        address.flatMap { byHost[Self.plainHost($0.host)] }
    }

    /// IPv4-mapped IPv6 addresses (an MPTCP socket of family AF_INET6) name the IPv4 host.
    static func plainHost(_ host: String) -> String {
        host.hasPrefix("::ffff:") && host.contains(".") ? String(host.dropFirst(7)) : host
    }
}
