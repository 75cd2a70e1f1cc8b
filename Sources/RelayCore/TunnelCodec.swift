#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import MPTCPSocket
import Synchronization
import TunnelProtocol

/// The relay's view of the tunnel wire format (module TunnelProtocol, docs/tunnel-protocol.md):
/// the few calls the event loop makes, with results shaped for it.
enum TunnelCodec {
    enum Reply {
        case needMore
        case success(consumed: Int)
        case failure(ErrorCode)
        case invalid(String)
    }

    static let malformed = ErrorCode.malformedMessage.rawValue
    static let networkFailure = ErrorCode.networkFailure.rawValue
    static let connectionRefused = ErrorCode.connectionReset.rawValue
    static let destinationUnreachable = ErrorCode.destinationUnreachable.rawValue

    static func encodeRequest(destination: SocketAddress, transport: TunnelTransport = .stream, key: TunnelKey, keyName: KeyName?, now: UInt64, into out: UnsafeMutableRawBufferPointer) -> Int {
        TunnelHeader.encodeRequest(destination: destination, transport: transport, key: key, keyName: keyName, now: now, nonce: .random(), into: out)
    }

    /// Refuses a tunnel client: the Error TLV reply (when `code` is given), then a FIN right
    /// behind it. Best effort and non-blocking: the caller closes the socket next (the close
    /// may still turn into RST if the client sent more than was read, a rejection all the same).
    static func sendRefusal(_ fd: Int32, code: UInt8?) {
        if let code {
            var reply: (UInt64, UInt64) = (0, 0)
            let n = withUnsafeMutableBytes(of: &reply) { encodeReply(error: code, into: $0) }
            _ = withUnsafeBytes(of: &reply) { send(fd, $0.baseAddress, n, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        }
        shutdown(fd, Int32(SHUT_WR))
    }

    static func encodeReply(error: UInt8?, into out: UnsafeMutableRawBufferPointer) -> Int {
        TunnelHeader.encodeReply(error: error.map { ErrorCode(rawValue: $0) }, into: out)
    }

    static func parseReply(_ bytes: UnsafeRawBufferPointer) -> Reply {
        switch TunnelHeader.parseReply(bytes) {
        case .needMore: return .needMore
        case .success(let consumed): return .success(consumed: consumed)
        case .failure(let code, _): return .failure(code)
        case .invalid: return .invalid("not a Convert reply")
        }
    }
}

/// Shared by all workers of a tunnel server: the replay cache must see every header,
/// whichever worker accepted it (ReplayCache locks inside, once per handshake, never on
/// the data path), and so must the per-key accounts (limits, revocation, metrics).
/// Destination policies are built once per listener and key configuration.
final class TunnelContext: Sendable {
    enum Request {
        case needMore
        /// Checked: connect to the destination; the connection holds `slot` of `accounts`.
        case accepted(SocketAddress, TunnelTransport, consumed: Int, key: KeyName, slot: Int32)
        /// An authenticated ping: answer success, connect nowhere.
        case ping(consumed: Int, key: KeyName)
        case rejected(UInt8?, String)
    }

    let replayCache = ReplayCache()
    let accounts: TunnelKeyAccounts
    /// The server's own addresses (denied as destinations) and the policies built on them;
    /// both replaced when the host's addresses change.
    private let state: Mutex<(serverAddresses: [SocketAddress], policies: [PolicyKey: DestinationPolicy])>

    private struct PolicyKey: Hashable {
        let allow: [String]
        let deny: [String]
    }

    /// Where UDP flows go once their header checks out (nil: this relay carries no UDP).
    let datagrams: DatagramEngine?

    init(serverAddresses: [SocketAddress], datagrams: DatagramEngine? = nil, accounts: TunnelKeyAccounts = TunnelKeyAccounts()) {
        state = Mutex((serverAddresses, [:]))
        self.datagrams = datagrams
        self.accounts = accounts
    }

    /// The host gained or lost an address: policies are rebuilt on their next use.
    func update(serverAddresses: [SocketAddress]) {
        state.withLock { $0 = (serverAddresses, [:]) }
    }

    /// The listener's rules and the key's own: a key's deny adds to the listener's, its allow
    /// opens what only it may reach.
    private func policy(for settings: TunnelSettings, _ entry: TunnelKeyring.Entry) -> DestinationPolicy {
        let allow = settings.allow + entry.allow, deny = settings.deny + entry.deny
        let key = PolicyKey(allow: allow.map(\.description), deny: deny.map(\.description))
        return state.withLock { state in
            if let p = state.policies[key] { return p }
            let p = DestinationPolicy(allow: allow, deny: deny, serverAddresses: state.serverAddresses)
            state.policies[key] = p
            return p
        }
    }

    /// Parses what arrived so far; once complete, finds the key the request names, checks
    /// proof, freshness and destination, and takes one of the key's connections.
    func parseRequest(_ bytes: UnsafeRawBufferPointer, settings: TunnelSettings?, now: UInt64) -> Request {
        guard let settings else { return .rejected(ErrorCode.notAuthorized.rawValue, "listener has no tunnel key") }
        switch TunnelHeader.parseRequest(bytes) {
        case .needMore:
            return .needMore
        case .invalid(let code):
            return .rejected(code.rawValue, "invalid header: \(code)")
        case .request(let request, let consumed):
            let entry: TunnelKeyring.Entry
            switch settings.keyring.lookup(request) {
            case .success(let i): entry = settings.keyring.entries[i]
            case .failure(let rejection): return .rejected(rejection.code.rawValue, "\(rejection) for \(request.destination)")
            }
            let policy = request.isPing ? nil : policy(for: settings, entry)
            switch TunnelHeader.verify(request, key: entry.key, now: now, replayCache: replayCache, policy: policy) {
            case .failure(let rejection):
                accounts.refused(entry)
                return .rejected(rejection.code.rawValue, "key \(entry.name): \(rejection) for \(request.isPing ? "a ping" : request.destination.description)")
            case .success(let destination):
                if request.isPing { return .ping(consumed: consumed, key: entry.name) }
                switch accounts.acquire(entry, limit: entry.maxConnections ?? settings.maxConnectionsPerKey) {
                case .success(let slot): return .accepted(destination, request.transport, consumed: consumed, key: entry.name, slot: slot)
                case .failure(let rejection): return .rejected(rejection.code.rawValue, "\(rejection) for \(destination)")
                }
            }
        }
    }
}
