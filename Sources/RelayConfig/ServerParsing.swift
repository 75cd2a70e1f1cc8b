#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket
import Netlink
import RelayCore
import WanManager

/// `[server]`: what an aggregation server behind a load balancer announces
/// (schema: docs/configuration.md, "Server fleet"; why: docs/deployment.md).
enum ServerParsing {
    static let keys = ["advertise"]

    static func parse(_ top: TableReader, listeners: [ListenerSettings]) throws(ConfigError) -> [AdvertisedAddress] {
        guard let value = top.table["server"] else { return [] }
        guard let table = value.table else {
            throw top.error("server", "'server' must be a table: write [server] on its own line, then advertise = [\"ADDR\"]")
        }
        let r = TableReader(table: table, scope: .table("server"), context: top.context)
        try r.rejectUnknownKeys(allowed: keys)
        guard let entries = try r.strings("advertise") else { return [] }
        var result: [AdvertisedAddress] = []
        var lines: [Int?] = []
        for (text, line) in entries {
            let advertised: AdvertisedAddress
            switch parseAdvertised(text) {
            case .success(let a): advertised = a
            case .failure(let problem): throw r.error(at: line, "advertise: \(problem.message)")
            }
            if result.contains(where: { $0.address == advertised.address }) {
                throw r.error(at: line, "advertise: \(advertised.address) is listed twice: one signal endpoint per address (give it one port at most)")
            }
            result.append(advertised)
            lines.append(line)
        }
        // The kernel announces at most 8 addresses per connection (MPTCP_PM_ADDR_MAX).
        if result.count > 8 {
            throw r.error("advertise", "advertise lists \(result.count) addresses: the kernel announces at most 8")
        }
        guard !result.isEmpty else { return [] }
        let serving = listeners.filter { $0.mode.acceptsMPTCP }
        guard !serving.isEmpty else {
            throw r.error("advertise", "advertise is for an aggregation server: add a [[listener]] with mode = \"server\" or \"tunnel-server\" (a gateway only needs [paths] to accept what its server advertises)")
        }
        for (a, line) in zip(result, lines) where a.port == 0 {
            // Without a port, a client joins ADDR at the port it first connected to: some
            // server listener must accept on ADDR, or every join is reset.
            // [::] takes IPv4 too.
            let accepts = serving.contains { l in
                (l.address.isWildcard && (l.address.family == familyOf(a.address) || l.address.family == AF_INET6)) || l.address.host == "\(a.address)"
            }
            if !accepts {
                throw r.error(at: line,
                              "advertise: \"\(a)\" has no port, so joins come to \(a) at the listener's port, but no server listener accepts on \(a): listen on \(a.address.family == .v4 ? "0.0.0.0" : "[::]") or give a port, like \"\(a.address.family == .v4 ? "\(a.address)" : "[\(a.address)]"):4001\" (the kernel then listens there itself)")
            }
        }
        return result
    }

    static func familyOf(_ address: IPAddress) -> Int32 { address.family == .v4 ? AF_INET : AF_INET6 }
}

/// `ADDR`, `ADDR:PORT`, `[IPv6]:PORT` or a bare IPv6 address; the complaint says why not.
/// Shared by `[server] advertise` and `run --advertise`.
public func parseAdvertised(_ text: String) -> Result<AdvertisedAddress, PrefixError> {
    var host = text, port: UInt16 = 0
    if text.hasPrefix("[") {
        guard let close = text.firstIndex(of: "]") else {
            return .failure(PrefixError("\"\(text)\" has no closing ']': write [2001:db8::1]:4001"))
        }
        host = String(text[text.index(after: text.startIndex)..<close])
        let rest = text[text.index(after: close)...]
        if !rest.isEmpty {
            guard rest.hasPrefix(":"), let p = UInt16(rest.dropFirst()), p > 0 else {
                return .failure(PrefixError("\"\(text)\" has a bad port: use a number from 1 to 65535"))
            }
            port = p
        }
    } else if text.filter({ $0 == ":" }).count == 1 {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        host = String(parts[0])
        guard let p = UInt16(parts[1]), p > 0 else {
            return .failure(PrefixError("\"\(text)\" has a bad port: use a number from 1 to 65535"))
        }
        port = p
    }
    guard let address = IPAddress(host) else {
        return .failure(PrefixError("\"\(text)\" is not an IP address (write this server's own address, like \"203.0.113.11\" or \"203.0.113.11:4001\"; names are not resolved)"))
    }
    let b = address.bytes
    let unusable: Bool
    if address.family == .v4 {
        unusable = b == [0, 0, 0, 0] || b[0] == 127 || b[0] >= 224
    } else {
        unusable = b.allSatisfy { $0 == 0 } || b == [UInt8](repeating: 0, count: 15) + [1] || b[0] == 0xff
    }
    if unusable {
        return .failure(PrefixError("\"\(text)\" is a wildcard, loopback or multicast address: clients must reach it, so give the address the load balancer routes straight to this server"))
    }
    return .success(AdvertisedAddress(address: address, port: port))
}

extension RelayConfigFile {
    /// What `check` says about `[server] advertise`: what the load balancer must route
    /// where. Empty when nothing is advertised.
    public func fleetInstructions() -> [String] {
        guard wan.advertises else { return [] }
        let serving = settings.listeners.filter { $0.mode.acceptsMPTCP }
        var lines = ["load balancer: route the balanced address to any server of the fleet, by a hash of the 4-tuple or with connection state (every packet of one flow to the same server):"]
        for l in serving { lines.append("  \(l.address) (\(l.mode)) -> any server") }
        lines.append("load balancer: route each advertised address to this server only (never balanced):")
        for a in wan.advertise {
            let ports = a.port != 0 ? "port \(a.port)" : "port(s) \(Set(serving.map { String($0.address.port) }).sorted().joined(separator: ", "))"
            lines.append("  \(a.address) \(ports) -> this server")
        }
        lines.append("this server sets net.mptcp.allow_join_initial_addr_port = 0 while it runs (the C flag: clients join only the advertised addresses) and keeps a signal endpoint per advertised address; limits \(wan.limits)")
        lines.append("gateways: [paths] endpoint = \"laminar\" (Linux 6.18+) or \"fullmesh\" (older), so that every WAN joins the advertised address; plain \"subflow\" endpoints join it from one WAN only")
        for a in wan.advertise where !Self.isLocal(a.address) {
            lines.append("warning: \(a.address) is not an address of this host (yet): the balancer's route to it must end here")
        }
        return lines
    }

    /// True when `address` is configured on an interface of this network namespace.
    static func isLocal(_ address: IPAddress) -> Bool {
        Socket.interfaceAddresses().contains { IPAddress($0.host) == address }
    }
}
