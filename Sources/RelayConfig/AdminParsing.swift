import MPTCPSocket
import RelayCore
import TOMLKit

/// `[admin]`: the operator listener (listen = "HOST:PORT", token_file = "PATH",
/// host_names = ["NAME", ...]: names besides its address that requests may use in Host).
enum AdminParsing {
    static let keys = ["listen", "token_file", "host_names"]

    static func parse(_ root: TOMLTable, _ top: TableReader) throws(ConfigError) -> AdminSettings? {
        guard let value = root["admin"] else { return nil }
        guard let table = value.table else {
            throw top.error("admin", "'admin' must be a table: write [admin] on its own line, then listen = \"127.0.0.1:9090\"")
        }
        let r = TableReader(table: table, scope: .table("admin"), context: top.context)
        try r.rejectUnknownKeys(allowed: keys)
        guard let text = try r.string("listen") else {
            throw r.error(nil, "[admin] needs listen = \"HOST:PORT\" (e.g. \"127.0.0.1:9090\")")
        }
        let address: SocketAddress
        do { address = try SocketAddress(parsing: text) } catch {
            throw r.error("listen", "[admin] listen = \"\(text)\": \(error)")
        }
        var tokenFile = try r.string("token_file")
        if let path = tokenFile, !path.hasPrefix("/") {
            tokenFile = r.context.baseDirectory + "/" + path
        }
        var hostNames: [String] = []
        if let value = table["host_names"] {
            guard let array = value.array, let names = Optional(array.compactMap { $0.string }), names.count == array.count,
                  names.allSatisfy({ !$0.isEmpty && !$0.contains(":") && !$0.contains("/") && !$0.contains(" ") }) else {
                throw r.error("host_names", "[admin] host_names must be a list of host names, e.g. host_names = [\"relay.lan\"]: the names (without port) a browser or proxy uses to reach the listener; requests naming anything else get 421")
            }
            hostNames = names
        }
        let settings = AdminSettings(listen: address, tokenFile: tokenFile, hostNames: hostNames)
        if let problem = settings.problem { throw r.error("listen", problem) }
        return settings
    }
}
