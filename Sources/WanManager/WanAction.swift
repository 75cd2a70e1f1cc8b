import Netlink

/// One netlink change the reconciler asks for. Applied in the order given.
public enum WanAction: Hashable, Sendable, CustomStringConvertible {
    case setLimits(PathLimits)
    case deleteEndpoint(Endpoint)
    case deleteRule(Rule)
    case deleteRoute(Route)
    case addRoute(Route)
    case addRule(Rule)
    case addEndpoint(Endpoint, wan: String)
    /// Only the backup bit changed: MPTCP_PM_CMD_SET_FLAGS switches it on the endpoint and
    /// its subflows (MP_PRIO) without closing them.
    case setEndpointFlags(Endpoint)

    public var description: String {
        switch self {
        case .setLimits(let l): return "limits \(l)"
        case .deleteEndpoint(let e): return "delete endpoint id \(e.id) \(e.address)"
        case .addEndpoint(let e, let wan):
            // An advertised address (signal) is bound to no device; `wan` names its entry.
            guard e.ifindex == 0 && e.flags.contains(.signal) else { return "add endpoint id \(e.id) \(e.address) dev \(wan) \(e.flags)" }
            return "add endpoint id \(e.id) \(e.address)\(e.port != 0 ? " port \(e.port)" : "") \(e.flags) (\(wan))"
        case .setEndpointFlags(let e): return "set endpoint id \(e.id) \(e.address) \(e.flags)"
        case .deleteRule(let r): return "delete rule \(Self.rule(r))"
        case .addRule(let r): return "add rule \(Self.rule(r))"
        case .deleteRoute(let r): return "delete route \(Self.route(r))"
        case .addRoute(let r): return "add route \(Self.route(r))"
        }
    }

    /// As `ip rule` prints it: "from 10.2.0.1 lookup 1002", "fwmark 0x2000000/0xff000000 lookup 1002",
    /// "from all lookup main suppress_prefixlength 0".
    static func rule(_ r: Rule) -> String {
        var parts = [r.sourceLength == 0 ? "from all" : r.sourceLength == r.family.bitCount ? "from \(r.source)" : "from \(r.source)/\(r.sourceLength)"]
        if r.fwmask != 0 { parts.append("fwmark 0x\(String(r.fwmark, radix: 16))/0x\(String(r.fwmask, radix: 16))") }
        parts.append("lookup \(r.table == 254 ? "main" : String(r.table))")
        if let n = r.suppressPrefixLength { parts.append("suppress_prefixlength \(n)") }
        if r.sourceLength == 0 { parts.insert(r.family == .v4 ? "(IPv4)" : "(IPv6)", at: 0) }
        return parts.joined(separator: " ")
    }

    static func route(_ r: Route) -> String {
        let dst = r.isDefault ? "default" : "\(r.destination)/\(r.prefixLength)"
        return "\(dst)\(r.gateway.map { " via \($0)" } ?? "") table \(r.table)"
    }
}
