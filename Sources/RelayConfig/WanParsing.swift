#if canImport(Glibc)
import Glibc
#endif
import Netlink
import WanManager

/// `[[wan]]` tables and `[paths]` -> `WanPlan` (schema: docs/configuration.md, "Uplinks").
enum WanParsing {
    static let wanKeys = ["interface", "gateway", "gateway6", "backup", "table", "enabled", "probe"]
    static let pathKeys = ["subflows", "add_addr_accepted", "endpoint"]
    static let healthKeys = ["enabled", "interval", "timeout", "down_after", "up_after"]
    static let routingKeys = ["follow_service", "table"]

    static func parse(_ top: TableReader, interceptionTable: UInt32) throws(ConfigError) -> WanPlan {
        var wans: [WanSpec] = []
        var lines: [Int?] = []
        if let value = top.table["wan"] {
            guard let array = value.array else {
                throw top.error("wan", "uplinks are written [[wan]] (double brackets), one table per WAN interface")
            }
            for (index, element) in array.enumerated() {
                guard let table = element.table else {
                    throw top.error("wan", "every WAN must be a table: write [[wan]] followed by interface = \"...\"")
                }
                let r = TableReader(table: table, scope: .item("wan", index), context: top.context)
                let wan = try parseWan(r, position: index + 1)
                if let k = wans.firstIndex(where: { $0.interface == wan.interface }) {
                    throw r.error("interface", "WAN interface '\(wan.interface)' is listed twice (first at line \(lines[k].map(String.init) ?? "?")): keep one [[wan]] per interface")
                }
                if let k = wans.firstIndex(where: { $0.table == wan.table }) {
                    throw r.error("table", "WANs '\(wans[k].interface)' and '\(wan.interface)' share routing table \(wan.table): give each its own table")
                }
                if wan.table == interceptionTable {
                    throw r.error("table", "table = \(wan.table) is [interception]'s table (TPROXY's local route): give the WAN another one")
                }
                wans.append(wan)
                lines.append(r.line(of: "interface"))
            }
        }
        var paths = PathSettings()
        if let value = top.table["paths"] {
            guard let table = value.table else {
                throw top.error("paths", "'paths' must be a table: write [paths] on its own line, then its keys")
            }
            let r = TableReader(table: table, scope: .table("paths"), context: top.context)
            try r.rejectUnknownKeys(allowed: pathKeys)
            // The kernel caps both at 8 (MPTCP_PM_ADDR_MAX).
            paths.subflows = try r.integer("subflows", in: 0...8)
            paths.addAddrAccepted = try r.integer("add_addr_accepted", in: 0...8)
            if let kind = try r.choice("endpoint", EndpointKind.allCases.map(\.rawValue)) { paths.endpointKind = EndpointKind(rawValue: kind)! }
        }
        var plan = WanPlan(wans: wans, paths: paths)
        plan.health = try parseHealth(top)
        plan.routing = try parseRouting(top, wans: wans, interceptionTable: interceptionTable)
        return plan
    }

    /// `[routing]`: whether routed traffic follows the WANs in service, and the table it uses.
    static func parseRouting(_ top: TableReader, wans: [WanSpec], interceptionTable: UInt32) throws(ConfigError) -> RoutingSettings {
        var routing = RoutingSettings()
        guard let value = top.table["routing"] else { return routing }
        guard let table = value.table else {
            throw top.error("routing", "'routing' must be a table: write [routing] on its own line, then its keys")
        }
        let r = TableReader(table: table, scope: .table("routing"), context: top.context)
        try r.rejectUnknownKeys(allowed: routingKeys)
        if let b = try r.bool("follow_service") { routing.followService = b }
        if let n = try r.integer("table", in: 1...Int(UInt32.max)) {
            guard !(253...255).contains(n) else {
                throw r.error("table", "table = \(n) is a system routing table (default/main/local): pick another, like \(RoutingSettings().table)")
            }
            if let wan = wans.first(where: { $0.table == UInt32(n) }) {
                throw r.error("table", "table = \(n) is WAN '\(wan.interface)''s table: give [routing] a table of its own")
            }
            guard UInt32(n) != interceptionTable else {
                throw r.error("table", "table = \(n) is [interception]'s table (TPROXY's local route): give [routing] another one")
            }
            routing.table = UInt32(n)
        }
        if !r.has("table"), let wan = wans.first(where: { $0.table == routing.table }) {
            throw r.error("follow_service", "WAN '\(wan.interface)' uses table \(routing.table), which [routing] uses by default: set [routing] table = N to another")
        }
        return routing
    }

    /// `[health]`: probe timing. The bounds keep a round inside its interval and the
    /// detection time within reason.
    static func parseHealth(_ top: TableReader) throws(ConfigError) -> HealthSettings {
        var health = HealthSettings()
        guard let value = top.table["health"] else { return health }
        guard let table = value.table else {
            throw top.error("health", "'health' must be a table: write [health] on its own line, then its keys")
        }
        let r = TableReader(table: table, scope: .table("health"), context: top.context)
        try r.rejectUnknownKeys(allowed: healthKeys)
        if let e = try r.bool("enabled") { health.enabled = e }
        if let s = try r.seconds("interval") {
            guard (0.1...3600).contains(s) else { throw r.error("interval", "interval = \(s) is out of range: probe every 0.1 to 3600 seconds") }
            health.interval = s
        }
        if let s = try r.seconds("timeout") {
            guard (0.05...60).contains(s) else { throw r.error("timeout", "timeout = \(s) is out of range: wait 0.05 to 60 seconds for an answer") }
            health.timeout = s
        }
        guard health.timeout <= health.interval else {
            throw r.error(r.has("timeout") ? "timeout" : "interval",
                          "timeout = \(health.timeout) is longer than interval = \(health.interval): a round must end before the next one starts")
        }
        if let n = try r.integer("down_after", in: 1...100, unit: " failed rounds") { health.downAfter = n }
        if let n = try r.integer("up_after", in: 1...100, unit: " answered rounds") { health.upAfter = n }
        return health
    }

    static func parseWan(_ r: TableReader, position: Int) throws(ConfigError) -> WanSpec {
        try r.rejectUnknownKeys(allowed: wanKeys)
        guard let name = try r.string("interface") else {
            throw r.error(nil, "a [[wan]] needs interface = \"NAME\" (the uplink's network interface, like \"eth1\" or \"wwan0\")")
        }
        guard InterceptionSettings.isInterfaceName(name), !name.hasSuffix("*") else {
            throw r.error("interface", "'\(name)' is not an interface name (up to 15 letters, digits, '-', '_', '.'; no wildcard)")
        }
        var wan = WanSpec(interface: name, table: WanPlan.firstTable + UInt32(position - 1))
        for (key, family) in [("gateway", IPAddress.Family.v4), ("gateway6", .v6)] {
            guard let text = try r.string(key) else { continue }
            guard let address = IPAddress(text) else {
                throw r.error(key, "\(key) = \"\(text)\" is not an IP address (write the next hop's address, without a port or prefix)")
            }
            guard address.family == family else {
                throw r.error(key, family == .v4 ? "gateway = \"\(text)\" is IPv6: write it as gateway6" : "gateway6 = \"\(text)\" is IPv4: write it as gateway")
            }
            wan.gateways.append(address)
        }
        if let b = try r.bool("backup") { wan.backup = b }
        if let targets = try r.strings("probe") {
            wan.probes = []
            for (text, line) in targets {
                guard let target = ProbeTarget(text) else {
                    throw r.error(at: line, "probe target \"\(text)\" is not \"ADDR:PORT\" (TCP connect), \"[ADDR6]:PORT\", \"ADDR\" (ping) or \"gateway\": write IP addresses, a host name would be resolved over the WAN under test")
                }
                if let problem = target.problem {
                    throw r.error(at: line, "probe target \"\(text)\": \(problem); name a host beyond the WAN (a public resolver, your aggregation server) or \"gateway\"")
                }
                if !wan.probes!.contains(target) { wan.probes!.append(target) }
            }
        }
        if let e = try r.bool("enabled") { wan.enabled = e }
        if let table = try r.integer("table", in: 1...Int(UInt32.max)) {
            guard !(253...255).contains(table) else {
                throw r.error("table", "table = \(table) is a system routing table (default/main/local): pick another, like \(WanPlan.firstTable)")
            }
            wan.table = UInt32(table)
        }
        return wan
    }
}

extension RelayConfigFile {
    /// What `check` says about the WANs without failing: interfaces that do not exist yet
    /// (a modem may appear later) are managed once they do.
    public func wanWarnings() -> [String] {
        wan.enabledWans.compactMap { w in
            if_nametoindex(w.interface) == 0
                ? "\(path): warning: WAN interface '\(w.interface)' does not exist (yet): it is managed once it appears"
                : nil
        }
    }

    /// What `check` says about routed traffic ([routing]).
    public func wanRoutingSummary() -> [String] {
        guard !wan.enabledWans.isEmpty else { return [] }
        guard wan.routing.followService else {
            return ["routed traffic: follows the main routing table only ([routing] follow_service = false): LAN traffic the relay does not carry, and the gateway's own, still go to a WAN out of service"]
        }
        return ["routed traffic: follows the WANs in service: rules at priority \(WanPlan.suppressPriority)-\(WanPlan.servicePriority) in front of the main table, table \(wan.routing.table) for the detour, flows pinned to their WAN with connection marks \(String(format: "0x%x", WanPlan.markMask)) (nftables table inet \(FlowPinning.table)); a WAN out of service has its NATed flows' conntrack entries deleted"]
    }

    /// What `check` says about the health probes: what each WAN is probed with and how soon
    /// a dead one is taken out of service.
    public func wanHealthSummary() -> [String] {
        guard !wan.enabledWans.isEmpty else { return [] }
        let h = wan.health
        guard h.enabled else { return ["health probes: off ([health] enabled = false): a WAN leaves service only when its link goes down"] }
        var lines = ["health probes: every \(String(format: "%g", h.interval)) s, \(String(format: "%g", h.timeout)) s to answer; a WAN is out of service after \(h.downAfter) failed rounds (within \(String(format: "%g", h.detectionSeconds)) s) and back after \(h.upAfter) answered ones"]
        for w in wan.enabledWans {
            let targets: String
            if let probes = w.probes {
                targets = probes.isEmpty ? "not probed (probe = [])" : probes.map(\.description).joined(separator: ", ")
            } else {
                targets = ProbeTarget.defaults.map(\.description).joined(separator: ", ") + " (defaults; its gateway judges until one of them answers)"
            }
            lines.append("  \(w.interface): \(targets)")
        }
        return lines
    }
}
