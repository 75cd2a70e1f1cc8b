import MPTCPSocket

/// The operator listener (`--admin`, `[admin]`): where it listens, and the bearer token
/// file that a listener reachable from other hosts must have.
public struct AdminSettings: Sendable, Equatable {
    public var listen: SocketAddress
    /// A file of mode 0600 holding the token; requests then need `Authorization: Bearer TOKEN`.
    public var tokenFile: String?

    public init(listen: SocketAddress, tokenFile: String? = nil) {
        self.listen = listen
        self.tokenFile = tokenFile
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
