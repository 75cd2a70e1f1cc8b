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

    public var description: String {
        switch self {
        case .setLimits(let l): return "limits \(l)"
        case .deleteEndpoint(let e): return "delete endpoint id \(e.id) \(e.address)"
        case .addEndpoint(let e, let wan): return "add endpoint id \(e.id) \(e.address) dev \(wan) \(e.flags)"
        case .deleteRule(let r): return "delete rule from \(r.source) lookup \(r.table)"
        case .addRule(let r): return "add rule from \(r.source) lookup \(r.table)"
        case .deleteRoute(let r): return "delete route \(Self.route(r))"
        case .addRoute(let r): return "add route \(Self.route(r))"
        }
    }

    static func route(_ r: Route) -> String {
        let dst = r.isDefault ? "default" : "\(r.destination)/\(r.prefixLength)"
        return "\(dst)\(r.gateway.map { " via \($0)" } ?? "") table \(r.table)"
    }
}
