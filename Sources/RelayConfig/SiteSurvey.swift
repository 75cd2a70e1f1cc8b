import Netlink
import WanManager

/// What `mptcp-relay init gateway` finds on a host (pure, from a `KernelView`): the uplinks
/// (interfaces with a default route in the main table, as DHCP or a PPP session leaves
/// them) and the LAN (interfaces with a private or unique-local prefix and no default route).
public struct SiteSurvey: Sendable, Equatable {
    public struct Uplink: Sendable, Equatable {
        public var interface: String
        /// "via 10.1.0.2 metric 0" per family, for the config's comments.
        public var routes: [String]
        public var prefixes: [String]
    }

    public struct Lan: Sendable, Equatable {
        public var interface: String
        public var prefixes: [String]
        public var hasIPv6: Bool
    }

    public var uplinks: [Uplink] = []
    public var lans: [Lan] = []

    public init(uplinks: [Uplink] = [], lans: [Lan] = []) {
        self.uplinks = uplinks
        self.lans = lans
    }

    /// Uplinks in the order their default routes are preferred (lowest metric first), so the
    /// main table's choice stays the first `[[wan]]`.
    public static func detect(_ view: KernelView) -> SiteSurvey {
        var out = SiteSurvey()
        let names = Dictionary(view.links.map { ($0.ifindex, $0) }, uniquingKeysWith: { a, _ in a })
        let defaults = view.routes.filter { $0.table == 254 && $0.isDefault && $0.oif != 0 }
        var order: [(metric: UInt32, ifindex: Int32)] = []
        for r in defaults where !order.contains(where: { $0.ifindex == r.oif }) {
            order.append((defaults.filter { $0.oif == r.oif }.map(\.metric).min() ?? r.metric, r.oif))
        }
        for (_, ifindex) in order.sorted(by: { $0.metric < $1.metric || ($0.metric == $1.metric && $0.ifindex < $1.ifindex) }) {
            guard let link = names[ifindex], link.name != "lo" else { continue }
            let routes = defaults.filter { $0.oif == ifindex }.sorted { $0.family < $1.family }.map { r in
                "\(r.family == .v4 ? "IPv4" : "IPv6") default\(r.gateway.map { " via \($0)" } ?? "") metric \(r.metric)"
            }
            out.uplinks.append(Uplink(interface: link.name, routes: routes, prefixes: prefixes(view, ifindex)))
        }
        let uplinkIndexes = Set(order.map(\.ifindex))
        for link in view.links.sorted(by: { $0.ifindex < $1.ifindex }) where link.name != "lo" && !uplinkIndexes.contains(link.ifindex)
            && link.flags & 0x1 != 0 && link.flags & 0x10 == 0 && !isVirtualNetwork(link.name) {
            let addresses = view.addresses.filter { $0.ifindex == link.ifindex && $0.scope == 0 }
            let privateOnes = addresses.filter { isPrivate($0.address) }
            guard !privateOnes.isEmpty else { continue }
            out.lans.append(Lan(interface: link.name, prefixes: prefixes(view, link.ifindex),
                                hasIPv6: addresses.contains { $0.address.family == .v6 }))
        }
        return out
    }

    static func prefixes(_ view: KernelView, _ ifindex: Int32) -> [String] {
        var out: [String] = []
        for a in view.addresses.filter({ $0.ifindex == ifindex && $0.scope == 0 }).sorted(by: { $0.address < $1.address }) {
            let text = "\(a.address.masked(a.prefixLength))/\(a.prefixLength)"
            if !out.contains(text) { out.append(text) }
        }
        return out
    }

    /// Bridges and tunnels of container, VM and VPN software carry private prefixes but are
    /// no LAN to intercept (`--lan` names one anyway). Point-to-point links (wg, tun) and
    /// interfaces that are down are left out by their flags.
    public static func isVirtualNetwork(_ name: String) -> Bool {
        ["docker", "br-", "virbr", "vnet", "veth", "cni", "flannel", "cali", "kube", "lxc", "lxd", "podman", "tailscale", "zt", "wg", "tun", "tap"]
            .contains { name.hasPrefix($0) }
    }

    /// RFC 1918, RFC 6598 (carrier-grade NAT) and IPv6 unique-local addresses.
    public static func isPrivate(_ a: IPAddress) -> Bool {
        let b = a.bytes
        if a.family == .v6 { return b[0] & 0xfe == 0xfc }
        return b[0] == 10 || (b[0] == 172 && b[1] & 0xf0 == 16) || (b[0] == 192 && b[1] == 168) || (b[0] == 100 && b[1] & 0xc0 == 64)
    }
}

/// The config files `mptcp-relay init` writes: commented, complete, passing `check` as written.
public enum InitialConfig {
    public struct GatewayChoices: Sendable {
        public var wans: [String]
        public var lans: [String]
        /// "ADDR:PORT" of the aggregation server, or nil: the relay carries connections over
        /// MPTCP to their destinations (aggregating where those speak MPTCP).
        public var server: String?
        public var keyFile: String
        public var listenPort = 7000
        public var adminPort = 9180
        public init(wans: [String], lans: [String], server: String?, keyFile: String) {
            self.wans = wans
            self.lans = lans
            self.server = server
            self.keyFile = keyFile
        }
    }

    public static func gateway(_ c: GatewayChoices, survey: SiteSurvey, header: String) -> String {
        let lanPrefixes = survey.lans.filter { c.lans.contains($0.interface) }.flatMap(\.prefixes)
        let wanPrefixes = survey.uplinks.filter { c.wans.contains($0.interface) }.flatMap(\.prefixes)
        let ipv6 = survey.lans.contains { c.lans.contains($0.interface) && $0.hasIPv6 }
        let special = ["127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "255.255.255.255/32", "::1/128", "fe80::/10", "ff00::/8"]
        var lines = [header,
                     "log_level = \"info\"",
                     "",
                     "# LAN TCP is intercepted (TPROXY) and re-originated over MPTCP across every uplink below.",
                     "[[listener]]",
                     "listen = \"[::]:\(c.listenPort)\"",
                     "mode = \"transparent\""]
        if let server = c.server {
            lines += ["# Through your aggregation server (`mptcp-relay init server`): every connection aggregates,",
                      "# not only those to hosts that speak MPTCP.",
                      "via = \"\(server)\"",
                      "key_file = \"\(c.keyFile)\"      # 0600; the server holds the same key",
                      "fast_open = true"]
        } else {
            lines += ["# With an aggregation server, every connection aggregates (not only those to MPTCP hosts):",
                      "# via = \"SERVER:4443\"          # see `mptcp-relay init server`",
                      "# key_file = \"\(c.keyFile)\""]
        }
        lines += ["",
                  "[interception]",
                  "lan_interfaces = [\(c.lans.map { "\"\($0)\"" }.joined(separator: ", "))]",
                  "# Not intercepted: the LAN itself, the uplinks' own networks (modems), special ranges.",
                  "exclude = [\(Array(Set(lanPrefixes + wanPrefixes + special)).sorted().map { "\"\($0)\"" }.joined(separator: ", "))]",
                  "ipv6 = \(ipv6)",
                  ""]
        for wan in c.wans {
            let found = survey.uplinks.first { $0.interface == wan }
            lines += ["[[wan]]", "interface = \"\(wan)\"" + (found.map { $0.routes.isEmpty ? "" : "      # " + $0.routes.joined(separator: "; ") } ?? "")]
            lines += ["# backup = true              # standby: used only when no regular WAN works (a metered LTE link)",
                      "# probe = [\"1.1.1.1:443\"]    # health probe targets; the default probes two public resolvers", ""]
        }
        lines += ["# Routed traffic (DNS, UDP, ICMP) follows the WANs in service too; see docs/configuration.md.",
                  "# [routing]",
                  "# follow_service = true",
                  "",
                  "# Metrics, status API and dashboard: http://127.0.0.1:\(c.adminPort)/",
                  "[admin]",
                  "listen = \"127.0.0.1:\(c.adminPort)\""]
        return lines.joined(separator: "\n") + "\n"
    }

    public static func server(keyFile: String, port: Int, allow: [String] = [], header: String) -> String {
        let allowLine = allow.isEmpty ? "# allow = []                 # private destinations to allow anyway"
            : "allow = [\(allow.map { "\"\($0)\"" }.joined(separator: ", "))]   # private destinations allowed anyway"
        return """
        \(header)
        log_level = "info"
        idle_timeout = 3600

        # Gateways' tunnels arrive here over MPTCP (several paths); each connection is opened to
        # its real destination as plain TCP.
        [[listener]]
        listen = "[::]:\(port)"
        mode = "tunnel-server"
        key_file = "\(keyFile)"      # 0600; the gateways hold the same key
        # deny = ["192.0.2.0/24"]    # destinations refused besides loopback, private and own addresses
        \(allowLine)

        # Metrics, status API and dashboard: http://127.0.0.1:9180/
        [admin]
        listen = "127.0.0.1:9180"

        """
    }
}
