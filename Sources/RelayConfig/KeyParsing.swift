import RelayCore
import TunnelProtocol

/// One `[[key]]` table: what a tunnel server lets one gateway's key do, beyond the listener's
/// rules (schema: docs/configuration.md, "Keys per gateway").
struct KeyPolicy {
    var id: KeyName
    var line: Int?
    var maxConnections: Int?
    var allow: [AddressPrefix] = []
    var deny: [AddressPrefix] = []
}

enum KeyParsing {
    static let keys = ["id", "max_connections", "allow", "deny"]

    static func parse(_ top: TableReader) throws(ConfigError) -> [KeyPolicy] {
        guard let value = top.table["key"] else { return [] }
        guard let array = value.array else {
            throw top.error("key", "per-key settings are written [[key]] (double brackets), one table per key, with id = \"NAME\"")
        }
        var result: [KeyPolicy] = []
        for index in 0..<array.count {
            guard let table = array[index].table else {
                throw top.error("key", "every [[key]] must be a table: write [[key]] followed by id = \"NAME\" and its settings")
            }
            let r = TableReader(table: table, scope: .item("key", index), context: top.context)
            try r.rejectUnknownKeys(allowed: keys)
            guard let text = try r.string("id") else {
                throw r.error(nil, "[[key]] has no id: add id = \"NAME\" (the gateway's key file is NAME.key in key_dir)")
            }
            if let problem = KeyName.problem(text) { throw r.error("id", "id = \"\(text)\": \(problem)") }
            let id = KeyName(text)!
            if let earlier = result.first(where: { $0.id == id }) {
                throw r.error("id", "[[key]] id = \"\(text)\" is given twice (first at line \(earlier.line.map(String.init) ?? "?"))")
            }
            var policy = KeyPolicy(id: id, line: r.line(of: "id"))
            policy.maxConnections = try r.integer("max_connections", in: 1...RelaySettings.maxConnectionsLimit)
            policy.allow = try ListenerParsing.prefixes(r, "allow")
            policy.deny = try ListenerParsing.prefixes(r, "deny")
            result.append(policy)
        }
        return result
    }
}
