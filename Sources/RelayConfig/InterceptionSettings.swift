import MPTCPSocket
import RelayCore

/// The `[interception]` table: what `NftRuleset` needs to steer LAN traffic into the
/// transparent and redirect listeners.
public struct InterceptionSettings: Sendable, Equatable {
    /// Interfaces facing the LAN: only TCP arriving on them is intercepted (nft iifname
    /// patterns, so "lan*" works).
    public var lanInterfaces: [String] = []
    /// Destinations never intercepted; replaces `defaultExclude` when given.
    public var exclude: [AddressPrefix] = InterceptionSettings.defaultExclude
    /// Firewall mark that routes TPROXY'd packets to the local stack.
    public var mark: UInt32 = 0x4d50
    /// Routing table holding the `local default dev lo` route for marked packets.
    public var routeTable: UInt32 = 100
    /// Also intercept IPv6.
    public var ipv6 = true
    /// Reject LAN UDP to port 443 (QUIC) so browsers fall back to TCP, which is relayed.
    public var blockQUIC = false

    public init() {}

    /// Loopback, "this network", link-local, RFC 1918, CGNAT shared space, multicast and
    /// broadcast; IPv6 loopback, link-local, unique-local and multicast.
    public static let defaultExclude: [AddressPrefix] = [
        "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
        "192.168.0.0/16", "224.0.0.0/4", "255.255.255.255/32",
        "::1/128", "fe80::/10", "fc00::/7", "ff00::/8",
    ].map { text in
        guard case .success(let prefix) = parsePrefix(text) else { fatalError("bad built-in prefix \(text)") }
        return prefix
    }
}

extension InterceptionSettings {
    static let keys = ["lan_interfaces", "exclude", "mark", "table", "ipv6", "block_quic"]

    /// Reads `[interception]`.
    init(reading r: TableReader) throws(ConfigError) {
        self.init()
        try r.rejectUnknownKeys(allowed: Self.keys)
        if let names = try r.strings("lan_interfaces") {
            lanInterfaces = []
            for (name, line) in names {
                guard Self.isInterfaceName(name) else {
                    throw r.error(at: line, "'\(name)' in lan_interfaces is not an interface name (up to 15 letters, digits, '-', '_', '.', optionally ending in '*')")
                }
                lanInterfaces.append(name)
            }
        }
        if let prefixes = try r.strings("exclude") {
            exclude = []
            for (text, line) in prefixes {
                switch parsePrefix(text) {
                case .success(let prefix): exclude.append(prefix)
                case .failure(let problem): throw r.error(at: line, "exclude: \(problem.message)")
                }
            }
        }
        if let mark = try r.integer("mark", in: 1...Int(UInt32.max)) { self.mark = UInt32(mark) }
        if let table = try r.integer("table", in: 1...Int(UInt32.max)) {
            // 253-255 are the kernel's default/main/local tables: a local default route
            // there would swallow all traffic.
            guard !(253...255).contains(table) else {
                throw r.error("table", "table = \(table) is a system routing table (default/main/local): pick another, like 100")
            }
            routeTable = UInt32(table)
        }
        if let ipv6 = try r.bool("ipv6") { self.ipv6 = ipv6 }
        if let block = try r.bool("block_quic") { blockQUIC = block }
        if blockQUIC && lanInterfaces.isEmpty {
            throw r.error("block_quic", "block_quic needs lan_interfaces = [\"...\"] (QUIC is rejected only when it comes from the LAN)")
        }
    }

    static func isInterfaceName(_ name: String) -> Bool {
        let body = name.hasSuffix("*") ? String(name.dropLast()) : name
        guard (1...15).contains(name.utf8.count), !body.isEmpty else { return false }
        return body.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.@:".contains($0)) }
    }
}
