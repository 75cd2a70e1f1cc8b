import MPTCPSocket
import RelayCore
import TunnelProtocol

extension RelayConfigFile {
    /// What `check` says about tunnels: for a gateway, each server and how it is chosen and
    /// checked, and the key it names; for a server, each gateway key with its limits and rules.
    public func tunnelSummary() -> [String] {
        var lines: [String] = []
        for l in settings.listeners {
            guard let tunnel = l.tunnel else { continue }
            if l.tunnelsOut, let key = tunnel.key {
                let naming = tunnel.keyName.map { "names key id \"\($0)\" (the server's key_dir must hold \($0).key with the same key)" }
                    ?? "sends the single-key form (the server finds the key by its hash; add key_id for a server with key_dir)"
                lines.append("tunnel gateway \(l.address): key \(hex(key.id)) \(naming)")
                if tunnel.servers.count == 1 {
                    lines.append("  server \(tunnel.servers[0]): every tunnelled connection (one server: not pinged)")
                } else {
                    lines.append("  \(tunnel.servers.count) servers share the connections by a hash of the destination address (a host keeps its server while it is in service); each is pinged over the tunnel every 1 s, out of service after 2 failed pings, back at the first answer; a refusal before the client got anything is retried on another")
                    for s in tunnel.servers { lines.append("  server \(s): its share of destinations, and the others' while they are out") }
                }
            } else if l.mode == .tunnelServer {
                let limit = tunnel.maxConnectionsPerKey.map { "\($0) open connections per key" } ?? "no per-key connection limit"
                lines.append("tunnel server \(l.address): \(tunnel.keyring.entries.count) gateway key(s); \(limit); a removed key \(tunnel.revokeNow ? "also loses its open connections at the reload (revoke = \"now\")" : "keeps its open connections until they end (revoke = \"drain\")")")
                for e in tunnel.keyring.entries {
                    var what = "key \"\(e.name)\" (id \(hex(e.key.id))): the gateway that names it, or sends this key unnamed"
                    if let n = e.maxConnections { what += "; up to \(n) open connections" }
                    if !e.allow.isEmpty { what += "; also reaches \(e.allow.map(\.description).joined(separator: ", "))" }
                    if !e.deny.isEmpty { what += "; never reaches \(e.deny.map(\.description).joined(separator: ", "))" }
                    lines.append("  " + what)
                }
                if tunnel.keyring.entries.isEmpty { lines.append("  warning: no key: every gateway is refused") }
            }
        }
        let held = Set(settings.listeners.flatMap { $0.mode == .tunnelServer ? $0.tunnel?.keyring.entries.map(\.name) ?? [] : [] })
        for p in keyPolicies where !held.contains(p.id) {
            lines.append("warning: \(path):\(p.line.map(String.init) ?? "?"): [[key]] id = \"\(p.id)\" has no key file: that gateway is refused (fine while it is revoked)")
        }
        return lines
    }

    private func hex(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 8 - s.count) + s
    }
}
