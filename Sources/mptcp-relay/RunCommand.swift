#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import RelayAdmin
import RelayConfig
import Logging
import MPTCPSocket
import RelayCore
import RelayLog
import TunnelProtocol
import WanManager

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the relay in the foreground.",
        discussion: """
            Forward:      mptcp-relay run --listen 0.0.0.0:8080 --upstream 203.0.113.7:80
            Transparent:  mptcp-relay run --listen [::]:7000 --transparent        (nftables TPROXY)
            Redirect:     mptcp-relay run --listen [::]:7001 --redirect           (NAT REDIRECT)
            Server:       mptcp-relay run --listen [::]:8080 --server --upstream 127.0.0.1:80
            Tunnel:       gateway  mptcp-relay run --listen [::]:7000 --transparent --via 198.51.100.4:4000 --key-file /etc/mptcp-relay/tunnel.key
                          server   mptcp-relay run --listen [::]:4000 --server --key-file /etc/mptcp-relay/tunnel.key
            """)

    @OptionGroup(title: "Config file (SIGHUP reloads it; excludes the listener options below)")
    var file: ConfigFileOption
    var config: String? { file.config }

    @Option(help: ArgumentHelp("Address to accept connections on: HOST:PORT or [IPv6]:PORT.", valueName: "host:port"))
    var listen: SocketAddress?

    @Option(help: ArgumentHelp("Fixed upstream (forward mode) or backend (--server): an address or a host name (re-resolved every 30 s; each address tried in turn).", valueName: "host:port"))
    var upstream: Upstream?

    @Flag var mode: ListenerModeFlag?
    var transparent: Bool { mode == .transparent }
    var redirect: Bool { mode == .redirect }
    var server: Bool { mode == .server }

    @Option(help: ArgumentHelp("Transparent/redirect: carry each connection through this aggregation server's tunnel (repeatable: several servers, chosen per destination host, health-pinged).", valueName: "host:port"))
    var via: [SocketAddress] = []

    @Option(help: ArgumentHelp("Tunnel pre-shared key file (mode 0600; 64 hex digits or 32+ raw bytes).", valueName: "file"))
    var keyFile: String?

    @Option(help: ArgumentHelp("Tunnel gateway: the key id to name in headers (the key's file name on a server with --key-dir, without .key).", valueName: "name"))
    var keyID: String?

    @Option(help: ArgumentHelp("Tunnel server: a directory of NAME.key files, one per gateway (SIGHUP with --config rereads it).", valueName: "dir"))
    var keyDir: String?

    @Option(help: ArgumentHelp("Tunnel server: open connections each key may hold.", valueName: "n"))
    var maxConnectionsPerKey: Int?

    @Option(help: ArgumentHelp("Tunnel server: allow this destination prefix despite the default denials (repeatable).", valueName: "prefix"))
    var allow: [String] = []

    @Option(help: ArgumentHelp("Tunnel server: deny this destination prefix (repeatable).", valueName: "prefix"))
    var deny: [String] = []

    @Flag(help: "Server mode: send a PROXY protocol v2 header to the backend.")
    var proxyProtocol = false

    @Flag(inversion: .prefixedNo, help: "Tunnel gateway: send the header in the SYN (TCP Fast Open).")
    var fastOpen = true

    @Option(help: "Worker threads, each with its own io_uring (default: one per CPU).")
    var workers: Int?

    @Option(help: ArgumentHelp("Seconds to wait for the upstream connect.", valueName: "seconds"))
    var connectTimeout: Double = 10

    @Option(help: ArgumentHelp("Seconds without traffic before a connection is closed (0: never).", valueName: "seconds"))
    var idleTimeout: Double = 3600

    @Option(help: ArgumentHelp("Seconds open connections get to finish after SIGTERM/SIGINT.", valueName: "seconds"))
    var grace: Double = 30

    @Option(help: ArgumentHelp("Tunnel server: seconds a client has to send its complete header.", valueName: "seconds"))
    var headerTimeout: Double = 5

    @Option(help: ArgumentHelp("Tunnel server: connections still sending their header, in all (default: max(64, max-connections / 8)).", valueName: "n"))
    var maxPendingHeaders: Int?

    @Option(help: ArgumentHelp("Tunnel server: connections still sending their header per client address (IPv6: per /64).", valueName: "n"))
    var maxPendingPerSource: Int = 16

    @Option(help: "Most simultaneous connections (accepting pauses at the limit).")
    var maxConnections: Int = 8192

    @Option(help: ArgumentHelp("Bytes per splice pipe.", valueName: "bytes"))
    var pipeSize: Int = 256 * 1024

    @Option(help: ArgumentHelp("Cap on the memory of all splice pipes; past it, connections copy through small buffers (default: what the kernel grants this user).", valueName: "bytes"))
    var pipeMemory: Int?

    @Option(help: "How splice runs: inline (splice(2) from the event loop on ring readiness) or ring (IORING_OP_SPLICE).")
    var splice: SpliceEngine = .inline

    @Flag(help: "Open plain TCP upstream instead of MPTCP (for comparisons).")
    var noMptcp = false

    @Option(help: ArgumentHelp("Operator listener: /metrics, /api/connections, the dashboard at / (loopback unless --admin-token-file).", valueName: "host:port"))
    var admin: SocketAddress?

    @Option(help: ArgumentHelp("Admin bearer token file (mode 0600); required for a non-loopback --admin.", valueName: "file"))
    var adminTokenFile: String?

    @Option(help: ArgumentHelp("Server behind a load balancer: announce this address of its own (routed straight to it) for the extra subflows; sets the C flag (repeatable).", valueName: "addr[:port]"))
    var advertise: [String] = []

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        if config != nil {
            if listen != nil || upstream != nil || mode != nil || !via.isEmpty || keyFile != nil || keyID != nil || keyDir != nil || maxConnectionsPerKey != nil {
                throw ValidationError("--config describes the listeners: drop --listen/--upstream/--transparent/--redirect/--server/--via/--key-file/--key-id/--key-dir/--max-connections-per-key")
            }
            if !advertise.isEmpty { throw ValidationError("--config: write the addresses as [server] advertise = [...] in the file instead of --advertise") }
            return
        }
        guard listen != nil else { throw ValidationError("give --listen HOST:PORT (or --config FILE)") }
        if mode == nil && upstream == nil { throw ValidationError("give --upstream HOST:PORT (forward), --transparent, --redirect or --server") }
        if (transparent || redirect) && upstream != nil { throw ValidationError("--upstream does not go with --transparent/--redirect: the upstream is each connection's original destination") }
        if !via.isEmpty && !(transparent || redirect) { throw ValidationError("--via needs --transparent or --redirect") }
        if !via.isEmpty && keyFile == nil { throw ValidationError("--via needs --key-file (the tunnel's pre-shared key)") }
        if via.count > 32 { throw ValidationError("--via given \(via.count) times: at most 32 servers") }
        if Set(via).count != via.count { throw ValidationError("--via names a server twice") }
        if keyID != nil && via.isEmpty { throw ValidationError("--key-id goes with --via (the gateway names its key to the server)") }
        if let keyID, let problem = KeyName.problem(keyID) { throw ValidationError("--key-id \(keyID): \(problem)") }
        let tunnelServer = server && upstream == nil
        if tunnelServer && keyFile == nil && keyDir == nil { throw ValidationError("--server without --upstream serves the tunnel and needs --key-file or --key-dir") }
        if keyFile != nil && keyDir != nil { throw ValidationError("--key-dir and --key-file do not go together: a key per gateway, or one for all") }
        if (keyDir != nil || maxConnectionsPerKey != nil) && !tunnelServer { throw ValidationError("--key-dir and --max-connections-per-key are for the tunnel server (--server without --upstream)") }
        if let n = maxConnectionsPerKey, n < 1 { throw ValidationError("--max-connections-per-key must be 1 or more") }
        if server && upstream != nil && keyFile != nil { throw ValidationError("--key-file is for the tunnel; a --server with --upstream forwards to a fixed backend") }
        if proxyProtocol && !(server && upstream != nil) { throw ValidationError("--proxy-protocol needs --server --upstream BACKEND") }
        if (!allow.isEmpty || !deny.isEmpty) && !(server && upstream == nil) { throw ValidationError("--allow/--deny apply to the tunnel server (--server with --key-file)") }
        if let workers, workers < 1 || workers > 256 { throw ValidationError("--workers must be between 1 and 256") }
        for (flag, value) in [("--connect-timeout", connectTimeout), ("--idle-timeout", idleTimeout), ("--grace", grace), ("--header-timeout", headerTimeout)] {
            if let problem = RelaySettings.checkSeconds(value) { throw ValidationError("\(flag) \(problem)") }
        }
        if headerTimeout == 0 { throw ValidationError("--header-timeout must be more than 0: a tunnel server always bounds how long a client may take to send its header") }
        let counts = 1...Int(Int32.max)
        if let maxPendingHeaders, !counts.contains(maxPendingHeaders) { throw ValidationError("--max-pending-headers must be between 1 and \(Int32.max)") }
        if !counts.contains(maxPendingPerSource) { throw ValidationError("--max-pending-per-source must be between 1 and \(Int32.max)") }
        if let problem = RelaySettings.checkMaxConnections(maxConnections) { throw ValidationError("--max-connections \(problem)") }
        if let pipeMemory, pipeMemory < 65536 { throw ValidationError("--pipe-memory must be at least 65536 bytes") }
        if pipeSize < 4096 || pipeSize > 64 << 20 { throw ValidationError("--pipe-size must be between 4096 and 67108864 bytes") }
        _ = try advertised()
        if adminTokenFile != nil && admin == nil { throw ValidationError("--admin-token-file goes with --admin HOST:PORT") }
        if let admin, let problem = AdminSettings(listen: admin, tokenFile: adminTokenFile).problem { throw ValidationError(problem) }
    }

    func settings() throws -> RelaySettings {
        let mode: ListenerMode
        if server {
            mode = upstream.map { .server(backend: $0) } ?? .tunnelServer
        } else if transparent {
            mode = .transparent
        } else if redirect {
            mode = .redirect
        } else {
            mode = .forward(upstream: upstream!)
        }
        var listener = ListenerSettings(address: listen!, mode: mode, proxyProtocol: proxyProtocol)
        if keyFile != nil || keyDir != nil {
            var tunnel: TunnelSettings
            if let keyDir {
                do {
                    tunnel = TunnelSettings(keyring: try TunnelKeyring(try TunnelKeyring.loadDirectory(keyDir).map { TunnelKeyring.Entry(name: $0.name, key: $0.key) }))
                } catch { throw ValidationError("--key-dir: \(error)") }
            } else {
                let key: TunnelKey
                do { key = try TunnelKey.load(path: keyFile!) } catch { throw ValidationError("\(error)") }
                // A server names its one key by the file's name, so a gateway with --key-id may name it.
                var stem = keyFile!.split(separator: "/").last.map(String.init) ?? ""
                if stem.hasSuffix(".key") { stem.removeLast(4) }
                tunnel = TunnelSettings(key: key, keyName: via.isEmpty ? KeyName(stem) : keyID.flatMap(KeyName.init))
                tunnel.servers = via
            }
            tunnel.maxConnectionsPerKey = maxConnectionsPerKey
            tunnel.fastOpen = fastOpen
            tunnel.allow = try allow.map(Self.prefix)
            tunnel.deny = try deny.map(Self.prefix)
            listener.tunnel = tunnel
        }
        var s = RelaySettings(listeners: [listener])
        if let workers { s.workers = workers }
        s.connectTimeout = connectTimeout
        s.idleTimeout = idleTimeout
        s.gracePeriod = grace
        s.headerTimeout = headerTimeout
        s.maxPendingHeaders = maxPendingHeaders
        s.maxPendingPerSource = maxPendingPerSource
        s.maxConnections = maxConnections
        s.pipeSize = pipeSize
        s.pipeMemory = pipeMemory
        s.spliceEngine = splice
        s.upstreamMPTCP = !noMptcp
        return s
    }

    /// --advertise, checked like `[server] advertise` (ServerParsing.swift).
    func advertised() throws -> [AdvertisedAddress] {
        guard !advertise.isEmpty else { return [] }
        guard server, let listen else { throw ValidationError("--advertise is for an aggregation server: it goes with --server") }
        var result: [AdvertisedAddress] = []
        for text in advertise {
            switch parseAdvertised(text) {
            case .success(let a):
                if result.contains(where: { $0.address == a.address }) { throw ValidationError("--advertise \(a.address) is given twice") }
                if a.port == 0 && !listen.isWildcard && listen.host != "\(a.address)" {
                    throw ValidationError("--advertise \(text) has no port, so joins come to \(a.address):\(listen.port), where nothing listens: --listen on a wildcard address or give the port, like \(text):4001")
                }
                result.append(a)
            case .failure(let problem): throw ValidationError("--advertise: \(problem.message)")
            }
        }
        if result.count > 8 { throw ValidationError("--advertise given \(result.count) times: the kernel announces at most 8 addresses") }
        return result
    }

    /// The config file's prefix syntax and checks, for --allow/--deny.
    private static func prefix(_ text: String) throws -> AddressPrefix {
        switch parsePrefix(text) {
        case .success(let prefix): return prefix
        case .failure(let problem): throw ValidationError(problem.message)
        }
    }

    func run() throws {
        let loaded = try config.map(loadConfigOrExit)
        let level = loaded.flatMap { Logger.Level(rawValue: $0.logLevel) } ?? logLevel
        let sink = LogSink()
        defer { sink.close() }
        LoggingSystem.bootstrap { label in
            var handler = BufferedLogHandler(label: label, sink: sink)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "mptcp-relay")
        let settings: RelaySettings
        do { settings = try loaded?.settings ?? self.settings() } catch {
            logger.critical("\(error)")
            throw ExitCode(1)
        }
        let relay = Relay(settings: settings, logger: logger)
        // Uplinks first: once the listeners accept, endpoints, rules and routes are in place.
        let wan = try Self.startWanManager(loaded, advertise: try advertised(), relay: relay, logger: logger)
        defer { wan?.stop() }
        do {
            try relay.start()
        } catch {
            logger.critical("\(error)")
            throw ExitCode(1)
        }
        // The operator listener (issue 11): --admin wins over the config's [admin].
        let adminSettings = admin.map { AdminSettings(listen: $0, tokenFile: adminTokenFile) } ?? loaded?.admin
        let adminServer = try adminSettings.map { try Self.startAdmin($0, relay: relay, wan: wan, logger: logger) }
        if !MPTCP.isAvailable() && settings.upstreamMPTCP {
            logger.warning("this kernel or namespace refuses MPTCP sockets (net.mptcp.enabled=0?): connections will be plain TCP")
        }
        let systemd = SystemdNotifier(environment: ProcessInfo.processInfo.environment)
        systemd.notify("READY=1\nSTATUS=relaying on \(settings.listeners.count) listener(s)")
        let status = relay.runUntilStopped(
            onReload: config.map { path in
                {
                    systemd.reloading()
                    Self.reload(relay, from: path, logLevel: level, logger: logger, wan: wan)
                    if self.admin == nil, (try? RelayConfigFile.load(path: path))?.admin != loaded?.admin {
                        logger.notice("reload: [admin] changes on restart")
                    }
                    systemd.notify("READY=1")
                }
            },
            onStopping: { systemd.notify("STOPPING=1") })
        adminServer?.stop()
        if status != 0 { throw ExitCode(status) }
    }

    private static func startAdmin(_ settings: AdminSettings, relay: Relay, wan: WanManager?, logger: Logger) throws -> AdminServer {
        do {
            let server = try AdminServer(settings: settings, relay: relay, uplinks: wan.map(Self.uplinkSource), routing: wan.map(Self.routingSource))
            try server.start()
            logger.notice("admin listener on http://\(settings.listen)/ (/metrics, /api/connections)\(settings.tokenFile != nil ? "; bearer token required" : "")")
            return server
        } catch {
            logger.critical("\(error)")
            relay.requestStop(immediately: true)
            _ = relay.runUntilStopped()
            throw ExitCode(1)
        }
    }

    /// SIGHUP: a config that does not load leaves the running one untouched.
    private static func reload(_ relay: Relay, from path: String, logLevel: Logger.Level, logger: Logger, wan: WanManager? = nil) {
        let next: RelayConfigFile
        do { next = try RelayConfigFile.load(path: path) } catch {
            logger.error("reload refused, keeping the running config: \(error)")
            return
        }
        if Logger.Level(rawValue: next.logLevel) != logLevel {
            logger.notice("reload: log_level changes on restart")
        }
        do { try relay.reload(next.settings) } catch {
            logger.error("reload refused, keeping the running config: \(error)")
            return
        }
        wan?.update(next.wan)
        if wan == nil && !next.wan.wans.isEmpty { logger.notice("reload: [[wan]] uplinks added to a running relay are managed after a restart") }
        if wan == nil && next.wan.advertises { logger.notice("reload: [server] advertise added to a running relay takes effect after a restart") }
    }
}

/// Loads a config for a command; a bad one prints its one-line error and exits 1.
func loadConfigOrExit(_ path: String) throws -> RelayConfigFile {
    do {
        return try RelayConfigFile.load(path: path)
    } catch {
        printError("\(error)")
        throw ExitCode(1)
    }
}

func printError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}
