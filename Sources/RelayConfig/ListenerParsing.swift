#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket
import RelayCore
import TunnelProtocol

/// A listener as read, with the lines later checks point at.
struct ParsedListener {
    var settings: ListenerSettings
    var listenLine: Int?
    var modeLine: Int?
}

/// Reads one `[[listener]]` table. Which keys a listener may have depends on its mode; a
/// key of another mode is an error, not ignored, because it shows a misunderstanding.
enum ListenerParsing {
    static let modes = ["forward", "transparent", "redirect", "server", "tunnel-server"]
    static let keys = ["listen", "mode", "upstream", "backend", "proxy_protocol", "via", "key_file", "key_id", "fast_open", "udp", "allow", "deny",
                       "key_dir", "max_connections_per_key", "revoke"]

    /// Keys each mode takes besides listen and mode.
    static let modeKeys: [String: [String]] = [
        "forward": ["upstream"],
        "transparent": ["via", "key_file", "key_id", "fast_open", "udp"],
        "redirect": ["via", "key_file", "key_id", "fast_open"],
        "server": ["backend", "proxy_protocol"],
        "tunnel-server": ["key_file", "key_dir", "allow", "deny", "max_connections_per_key", "revoke"],
    ]

    /// Why a key does not fit another mode.
    static let keyPurpose: [String: String] = [
        "upstream": "only mode = \"forward\" has a fixed upstream; transparent and redirect listeners use each connection's original destination",
        "backend": "only mode = \"server\" has a backend",
        "proxy_protocol": "only mode = \"server\" sends PROXY protocol headers",
        "via": "only transparent and redirect listeners send through an aggregation server",
        "fast_open": "only transparent and redirect listeners with 'via' open tunnels",
        "udp": "only a transparent listener with 'via' carries the LAN's UDP (TPROXY gives each datagram's original destination; NAT REDIRECT does not)",
        "key_file": "only tunnels use a key: mode = \"tunnel-server\", or transparent/redirect with 'via'",
        "allow": "only mode = \"tunnel-server\" filters destinations",
        "deny": "only mode = \"tunnel-server\" filters destinations",
        "key_id": "only a gateway (transparent/redirect with 'via') names its key to the server",
        "key_dir": "only mode = \"tunnel-server\" holds a key per gateway",
        "max_connections_per_key": "only mode = \"tunnel-server\" limits each gateway's key",
        "revoke": "only mode = \"tunnel-server\" revokes gateways' keys",
    ]

    /// A gateway names at most this many servers (a bit each in a connection's tried set).
    static let maximumServers = 32

    static func parse(_ r: TableReader, keyPolicies: [KeyPolicy] = []) throws(ConfigError) -> ParsedListener {
        try r.rejectUnknownKeys(allowed: keys)
        guard let mode = try r.choice("mode", modes) else {
            throw r.error(nil, "[[listener]] has no mode: add mode = \"forward\", \"transparent\", \"redirect\", \"server\" or \"tunnel-server\"")
        }
        let allowed = modeKeys[mode, default: []]
        if let misplaced = r.table.keys.filter({ !["listen", "mode"].contains($0) && !allowed.contains($0) })
            .min(by: { (r.line(of: $0) ?? .max) < (r.line(of: $1) ?? .max) }) {
            throw r.error(misplaced, "'\(misplaced)' does not apply to mode = \"\(mode)\" (\(keyPurpose[misplaced] ?? "")): remove it")
        }
        guard let listen = try r.address("listen", wildcardAllowed: true) else {
            throw r.error(nil, "[[listener]] has no listen address: add listen = \"HOST:PORT\", like \"0.0.0.0:7000\" or \"[::]:7000\"")
        }

        var listener: ListenerSettings
        switch mode {
        case "forward":
            guard let upstream = try r.upstream("upstream") else {
                throw r.error("mode", "mode = \"forward\" needs upstream = \"HOST:PORT\" (where connections go)")
            }
            if upstream.literal == listen {
                throw r.error("upstream", "upstream \(upstream) is this listener's own address: connections would loop")
            }
            listener = ListenerSettings(address: listen, mode: .forward(upstream: upstream))
        case "transparent", "redirect":
            listener = ListenerSettings(address: listen, mode: mode == "transparent" ? .transparent : .redirect)
            if let via = try r.addresses("via", wildcardAllowed: false) {
                guard let key = try key(r) else {
                    throw r.error("via", "'via' needs key_file = \"PATH\" (the tunnel's pre-shared key, shared with the server)")
                }
                guard !via.isEmpty else { throw r.error("via", "via = [] names no server: give at least one \"HOST:PORT\"") }
                if via.count > maximumServers {
                    throw r.error("via", "via names \(via.count) servers: at most \(maximumServers)")
                }
                for (i, s) in via.enumerated() where via[..<i].contains(where: { $0.address == s.address }) {
                    throw r.error(at: s.line, "via: \(s.address) is listed twice")
                }
                var tunnel = TunnelSettings(key: key)
                tunnel.servers = via.map(\.address)
                tunnel.keyName = try keyID(r)
                if let fastOpen = try r.bool("fast_open") { tunnel.fastOpen = fastOpen }
                listener.tunnel = tunnel
                listener.udp = try r.bool("udp") ?? false
            } else if r.has("udp") {
                throw r.error("udp", "'udp' needs via = \"HOST:PORT\" (the aggregation server): the LAN's datagrams travel through the tunnel, so add via and key_file, or remove udp")
            } else if let stray = ["key_file", "key_id", "fast_open"].first(where: r.has) {
                throw r.error(stray, "'\(stray)' is only used with via = \"HOST:PORT\" (the aggregation server): add via or remove \(stray)")
            }
        case "server":
            guard let backend = try r.upstream("backend") else {
                throw r.error("mode", "mode = \"server\" needs backend = \"HOST:PORT\" (the plain TCP service behind it)")
            }
            if backend.literal == listen {
                throw r.error("backend", "backend \(backend) is this listener's own address: connections would loop")
            }
            listener = ListenerSettings(address: listen, mode: .server(backend: backend))
            listener.proxyProtocol = try r.bool("proxy_protocol") ?? false
        default:  // tunnel-server
            var tunnel = TunnelSettings(keyring: try keyring(r, keyPolicies))
            // The single-key form: the key is also the listener's own, as before key_dir.
            if !r.has("key_dir") { tunnel.key = tunnel.keyring.entries.first?.key }
            tunnel.allow = try prefixes(r, "allow")
            tunnel.deny = try prefixes(r, "deny")
            tunnel.maxConnectionsPerKey = try r.integer("max_connections_per_key", in: 1...RelaySettings.maxConnectionsLimit)
            tunnel.revokeNow = try r.choice("revoke", ["drain", "now"]) == "now"
            listener = ListenerSettings(address: listen, mode: .tunnelServer, tunnel: tunnel)
        }
        return ParsedListener(settings: listener, listenLine: r.line(of: "listen"), modeLine: r.line(of: "mode"))
    }

    private static func key(_ r: TableReader) throws(ConfigError) -> TunnelKey? {
        guard let path = try path(r, "key_file") else { return nil }
        do {
            return try TunnelKey.load(path: path)
        } catch {
            throw r.error("key_file", "key_file: \(error)")
        }
    }

    /// A path key; relative paths are taken from the config file's directory.
    private static func path(_ r: TableReader, _ key: String) throws(ConfigError) -> String? {
        guard let path = try r.string(key) else { return nil }
        return path.hasPrefix("/") ? path : r.context.baseDirectory + "/" + path
    }

    /// A gateway's `key_id`: the name of its key file on the server, sent in every header.
    private static func keyID(_ r: TableReader) throws(ConfigError) -> KeyName? {
        guard let text = try r.string("key_id") else { return nil }
        if let problem = KeyName.problem(text) { throw r.error("key_id", "key_id = \"\(text)\": \(problem)") }
        return KeyName(text)
    }

    /// A tunnel server's keys: every NAME.key of `key_dir`, or the one `key_file` (named by its
    /// file name, so a gateway may name it too), each with its `[[key]]` policy.
    private static func keyring(_ r: TableReader, _ policies: [KeyPolicy]) throws(ConfigError) -> TunnelKeyring {
        var keys: [(name: KeyName, key: TunnelKey)] = []
        if r.has("key_dir") && r.has("key_file") {
            throw r.error("key_dir", "key_dir and key_file do not go together: key_dir holds a key per gateway (NAME.key), key_file the one key all gateways share")
        }
        if let dir = try path(r, "key_dir") {
            do { keys = try TunnelKeyring.loadDirectory(dir) } catch { throw r.error("key_dir", "key_dir: \(error)") }
        } else if let file = try path(r, "key_file") {
            guard let key = try key(r) else { return try! TunnelKeyring([]) }
            let stem = String(file.split(separator: "/").last ?? "").replacingSuffix(".key")
            keys = [(KeyName(stem) ?? KeyName("default")!, key)]
        } else {
            throw r.error("mode", "mode = \"tunnel-server\" needs key_dir = \"DIR\" (a NAME.key per gateway) or key_file = \"PATH\" (one key for all)")
        }
        let entries = keys.map { name, key in
            var e = TunnelKeyring.Entry(name: name, key: key)
            if let p = policies.first(where: { $0.id == name }) {
                e.maxConnections = p.maxConnections
                e.allow = p.allow
                e.deny = p.deny
            }
            return e
        }
        do { return try TunnelKeyring(entries) } catch { throw r.error(r.has("key_dir") ? "key_dir" : "key_file", "\(error)") }
    }

    static func prefixes(_ r: TableReader, _ key: String) throws(ConfigError) -> [AddressPrefix] {
        var result: [AddressPrefix] = []
        for (text, line) in try r.strings(key) ?? [] {
            switch parsePrefix(text) {
            case .success(let prefix): result.append(prefix)
            case .failure(let problem): throw r.error(at: line, "\(key): \(problem.message)")
            }
        }
        return result
    }

    /// Whether two listen addresses cannot both be bound: same port and the same address,
    /// or a wildcard covering the other (a [::] listener is dual-stack, so it covers IPv4).
    static func clash(_ a: SocketAddress, _ b: SocketAddress) -> Bool {
        guard a.port == b.port else { return false }
        if a == b { return true }
        func covers(_ w: SocketAddress, _ o: SocketAddress) -> Bool {
            w.isWildcard && (w.family == o.family || w.family == AF_INET6)
        }
        return covers(a, b) || covers(b, a)
    }

    /// Address families whose intercepted traffic reaches this listener.
    static func interceptedFamilies(_ address: SocketAddress, ipv6: Bool) -> [Int32] {
        switch address {
        case .v4: return [AF_INET]
        case .v6:
            if address.isIPv4Mapped { return [AF_INET] }
            var families: [Int32] = []
            if address.isWildcard { families.append(AF_INET) }
            if ipv6 { families.append(AF_INET6) }
            return families
        }
    }
}

extension String {
    func replacingSuffix(_ suffix: String) -> String { hasSuffix(suffix) ? String(dropLast(suffix.count)) : self }
}
