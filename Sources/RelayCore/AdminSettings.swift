import MPTCPSocket

/// The operator listener (`--admin`, `[admin]`): where it listens, and the bearer token
/// file that a listener reachable from other hosts must have.
public struct AdminSettings: Sendable, Equatable {
    public var listen: SocketAddress
    /// A file of mode 0600 holding the token; requests then need `Authorization: Bearer TOKEN`.
    public var tokenFile: String?
    /// Names besides its own address that the listener answers to in `Host:` (`host_names`
    /// in [admin]), e.g. the name a reverse proxy or an SSH tunnel uses.
    public var hostNames: [String]

    public init(listen: SocketAddress, tokenFile: String? = nil, hostNames: [String] = []) {
        self.listen = listen
        self.tokenFile = tokenFile
        self.hostNames = hostNames
    }

    /// Whether a request's `Host:` value names this listener: an IP address (a literal is
    /// never the product of DNS rebinding; a specific listener wants its own), `localhost`
    /// on a loopback or wildcard listener, or one of `hostNames`; with or without a port. A page that
    /// rebinds its own name to 127.0.0.1 sends that name, and is refused. An absent Host
    /// (HTTP/1.0 tools) is accepted: browsers always send one.
    public func accepts(host value: String?) -> Bool {
        guard let value else { return true }
        let text = value.trimmingWhitespace.lowercased()
        var name = text
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return false }
            name = String(text[text.index(after: text.startIndex)..<close])
            let rest = text[text.index(after: close)...]
            guard rest.isEmpty || (rest.first == ":" && UInt16(rest.dropFirst()) != nil) else { return false }
        } else if let colon = text.lastIndex(of: ":") {
            guard UInt16(text[text.index(after: colon)...]) != nil else { return false }
            name = String(text[..<colon])
            if name.contains(":") { return false }  // an IPv6 literal without brackets
        }
        if name.hasSuffix(".") { name.removeLast() }  // "localhost." is the same name
        guard !name.isEmpty, name != "*" else { return false }
        // An IP literal cannot come from DNS rebinding (the page's own name is what the browser
        // sends), and a tunnel or port forward (ssh -L, docker -p) reaches the listener under
        // another address than its own: any literal is accepted.
        if SocketAddress(host: name, port: 0) != nil { return true }
        // Never an attacker's name: it resolves on this host, to a loopback address.
        if name == "localhost" { return isLoopback || listen.isWildcard }
        return hostNames.contains { $0.lowercased() == name }
    }

    /// 127.0.0.0/8 and ::1: only this host can connect.
    public var isLoopback: Bool {
        let host = listen.host
        return host == "::1" || host.hasPrefix("127.") || host == "::ffff:127.0.0.1"
    }

    /// Why these settings cannot run, or nil.
    public var problem: String? {
        if !isLoopback && tokenFile == nil {
            return "the admin listener \(listen) is reachable from other hosts: give it a token file (token_file = \"PATH\" in [admin], or --admin-token-file; mode 0600, e.g. openssl rand -hex 32 > admin.token), or listen on 127.0.0.1"
        }
        return nil
    }
}

extension String {
    fileprivate var trimmingWhitespace: Substring {
        let start = firstIndex { $0 != " " && $0 != "\t" } ?? endIndex
        let end = lastIndex { $0 != " " && $0 != "\t" }.map { index(after: $0) } ?? endIndex
        return start < end ? self[start..<end] : ""
    }
}
