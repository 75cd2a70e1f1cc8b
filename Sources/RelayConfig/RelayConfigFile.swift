#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket
import RelayCore
import TOMLKit
import WanManager

/// A parsed and checked config file (schema: docs/configuration.md). `run`, `check`, `nft`
/// and SIGHUP reload all start from `load(path:)`.
public struct RelayConfigFile: Sendable {
    /// What the relay runs: the same structure the CLI flags produce.
    public var settings: RelaySettings
    /// `log_level`: a swift-log level name (trace ... critical); `Logger.Level(rawValue:)` takes it.
    public var logLevel: String
    /// `[interception]`: input of `NftRuleset`.
    public var interception: InterceptionSettings
    /// The file as named by the caller; error messages start with it.
    public var path: String
    /// Line of each listener's `listen` key, parallel to `settings.listeners`.
    public var listenLines: [Int?]
    /// `[[wan]]` and `[paths]`: the uplinks the WAN manager keeps (empty: it does not run).
    public var wan = WanPlan(wans: [])
    /// `[admin]`: the operator listener (AdminParsing.swift).
    public var admin: AdminSettings? = nil
    /// `[[key]]`: per-key limits and destinations of a tunnel server (KeyParsing.swift).
    var keyPolicies: [KeyPolicy] = []

    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]
    static let topLevelKeys = [
        "log_level", "workers", "max_connections", "connect_timeout", "idle_timeout", "grace",
        "header_timeout", "max_pending_headers", "max_pending_per_source",
        "pipe_size", "pipe_memory", "splice", "upstream_mptcp", "listener", "interception",
        "wan", "paths", "health", "routing", "admin",
        "server", "key", "udp",
    ]

    /// Reads and checks `path`. Relative `key_file` paths are taken from the file's directory.
    public static func load(path: String) throws(ConfigError) -> RelayConfigFile {
        let text: String
        switch readWholeFile(path) {
        case .success(let t): text = t
        case .failure(let problem): throw ConfigError(file: path, line: nil, message: problem.message)
        }
        let directory = path.contains("/") ? String(path[..<path.lastIndex(of: "/")!]) : "."
        return try parse(text: text, origin: path, baseDirectory: directory.isEmpty ? "/" : directory)
    }

    /// Parses config text; `origin` names it in messages.
    public static func parse(text: String, origin: String, baseDirectory: String = ".") throws(ConfigError) -> RelayConfigFile {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: text)
        } catch let error as TOMLParseError {
            let position = error.source.begin
            throw ConfigError(file: origin, line: position.line, message: "not valid TOML (column \(position.column)): \(error.description)")
        } catch {
            throw ConfigError(file: origin, line: nil, message: "not valid TOML: \(error)")
        }
        let context = ParseContext(origin: origin, lines: SourceLines(text: text), baseDirectory: baseDirectory)
        let top = TableReader(table: root, scope: .root, context: context)
        try top.rejectUnknownKeys(allowed: topLevelKeys)

        let keyPolicies = try KeyParsing.parse(top)
        let parsed = try readListeners(top, keyPolicies: keyPolicies)
        var settings = RelaySettings(listeners: parsed.map(\.settings))
        let logLevel = try top.choice("log_level", logLevels) ?? "info"
        if let n = try top.integer("workers", in: 1...256) { settings.workers = n }
        if let n = try top.integer("max_connections", in: 1...RelaySettings.maxConnectionsLimit,
                                   unit: " (each connection holds two descriptors, up to six while it moves bytes; a process gets at most fs.nr_open, 1048576 by default)") { settings.maxConnections = n }
        if let s = try top.seconds("connect_timeout") { settings.connectTimeout = s }
        if let s = try top.seconds("idle_timeout", zeroMeans: "disables it") { settings.idleTimeout = s }
        if let s = try top.seconds("grace") { settings.gracePeriod = s }
        if let s = try top.seconds("header_timeout") {
            guard s > 0 else { throw top.error("header_timeout", "header_timeout must be more than 0 seconds: a tunnel server always bounds how long a client may take to send its header") }
            settings.headerTimeout = s
        }
        if let n = try top.integer("max_pending_headers", in: 1...Int(Int32.max)) { settings.maxPendingHeaders = n }
        if let n = try top.integer("max_pending_per_source", in: 1...Int(Int32.max)) { settings.maxPendingPerSource = n }
        if let n = try top.integer("pipe_size", in: 4096...(64 << 20), unit: " bytes") { settings.pipeSize = n }
        if let n = try top.integer("pipe_memory", in: 65536...Int(Int64.max), unit: " bytes") { settings.pipeMemory = n }
        if let s = try top.choice("splice", SpliceEngine.allCases.map(\.rawValue)) { settings.spliceEngine = SpliceEngine(rawValue: s)! }
        if let b = try top.bool("upstream_mptcp") { settings.upstreamMPTCP = b }

        if let value = root["udp"] {
            guard let table = value.table else {
                throw top.error("udp", "'udp' must be a table: write [udp] on its own line, then its keys")
            }
            settings.udp = try DatagramParsing.parse(TableReader(table: table, scope: .table("udp"), context: context))
        }

        var interception = InterceptionSettings()
        if let value = root["interception"] {
            guard let table = value.table else {
                throw top.error("interception", "'interception' must be a table: write [interception] on its own line, then its keys")
            }
            interception = try InterceptionSettings(reading: TableReader(table: table, scope: .table("interception"), context: context))
        }
        try checkInterception(parsed, interception, top)

        var config = RelayConfigFile(settings: settings, logLevel: logLevel, interception: interception,
                                     path: origin, listenLines: parsed.map(\.listenLine))
        config.keyPolicies = keyPolicies
        config.wan = try WanParsing.parse(top, interceptionTable: interception.routeTable)
        // Flow pinning owns the mark's top byte: a TPROXY mark there would route pinned flows
        // to the relay's local table.
        if config.wan.followsService && interception.mark & WanPlan.markMask != 0, let value = top.table["interception"]?.table {
            let r = TableReader(table: value, scope: .table("interception"), context: context)
            throw r.error(r.has("mark") ? "mark" : nil, "mark = 0x\(String(interception.mark, radix: 16)) uses the bits 0xff000000 that [routing] follow_service pins flows with: pick a mark below 0x1000000 (the default is 0x4d50)")
        }
        config.admin = try AdminParsing.parse(root, top)
        config.wan.advertise = try ServerParsing.parse(top, listeners: settings.listeners)
        return config
    }

    private static func readListeners(_ top: TableReader, keyPolicies: [KeyPolicy]) throws(ConfigError) -> [ParsedListener] {
        guard let value = top.table["listener"] else {
            throw ConfigError(file: top.context.origin, line: nil, message: "no listeners: add a [[listener]] table with listen = \"HOST:PORT\" and mode = \"...\"")
        }
        guard let array = value.array else {
            throw top.error("listener", "listeners are written [[listener]] (double brackets), one table per listener")
        }
        var parsed: [ParsedListener] = []
        for (index, element) in array.enumerated() {
            guard let table = element.table else {
                throw top.error("listener", "every listener must be a table: write [[listener]] followed by its keys")
            }
            let listener = try ListenerParsing.parse(TableReader(table: table, scope: .item("listener", index), context: top.context), keyPolicies: keyPolicies)
            if let earlier = parsed.first(where: { ListenerParsing.clash($0.settings.address, listener.settings.address) }) {
                let (a, b) = (listener.settings.address, earlier.settings.address)
                let message = a == b
                    ? "duplicate listener \(a) (first at line \(earlier.listenLine.map(String.init) ?? "?"))"
                    : "listener \(a) overlaps \(b) at line \(earlier.listenLine.map(String.init) ?? "?") (a wildcard takes its whole port, and [::] takes IPv4 too): use another port"
                throw ConfigError(file: top.context.origin, line: listener.listenLine, message: message)
            }
            parsed.append(listener)
        }
        if parsed.isEmpty {
            throw top.error("listener", "no listeners: add a [[listener]] table with listen = \"HOST:PORT\" and mode = \"...\"")
        }
        return parsed
    }

    /// Transparent and redirect listeners need to know the LAN side, and per address
    /// family only one of them can receive what the nft rules intercept.
    private static func checkInterception(_ listeners: [ParsedListener], _ interception: InterceptionSettings, _ top: TableReader) throws(ConfigError) {
        let intercepting = listeners.filter { $0.settings.mode.intercepts }
        guard let first = intercepting.first else { return }
        if interception.lanInterfaces.isEmpty {
            let mode = first.settings.mode == .transparent ? "transparent" : "redirect"
            throw ConfigError(file: top.context.origin, line: first.modeLine,
                              message: "a \(mode) listener needs [interception] with lan_interfaces = [\"...\"] (the interfaces whose TCP traffic is intercepted)")
        }
        var owner: [Int32: ParsedListener] = [:]
        for listener in intercepting {
            for family in ListenerParsing.interceptedFamilies(listener.settings.address, ipv6: interception.ipv6) {
                if let earlier = owner[family] {
                    let name = family == AF_INET ? "IPv4" : "IPv6"
                    throw ConfigError(file: top.context.origin, line: listener.listenLine,
                                      message: "listener \(listener.settings.address) would receive the same intercepted \(name) traffic as \(earlier.settings.address) at line \(earlier.listenLine.map(String.init) ?? "?"): keep one transparent/redirect listener per address family ([::] covers IPv4 too)")
                }
                owner[family] = listener
            }
        }
    }
}

/// The whole file as text; the complaint says why not.
func readWholeFile(_ path: String) -> Result<String, PrefixError> {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else {
        return .failure(PrefixError("cannot open the config file: \(String(cString: strerror(errno)))"))
    }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { return .failure(PrefixError("cannot read the config file: \(String(cString: strerror(errno)))")) }
        if n == 0 { break }
        bytes += chunk[0..<n]
        if bytes.count > 4 << 20 { return .failure(PrefixError("the config file is over 4 MiB: is this the right file?")) }
    }
    guard let text = String(validating: bytes, as: UTF8.self) else {
        return .failure(PrefixError("the config file is not UTF-8 text"))
    }
    return .success(text)
}
