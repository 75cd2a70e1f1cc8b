import Foundation
import Testing
import MPTCPSocket
import RelayConfig
import RelayCore
import TunnelProtocol

/// Issue 26: a tunnel server with a key per gateway (key_dir, [[key]]) and a gateway with
/// several servers (via = [...], key_id). Every bad input names its line.
@Suite struct KeyDirConfigTests {
    static let otherKeyHex = String(repeating: "fedcba9876543210", count: 4)
    static let thirdKeyHex = String(repeating: "00112233445566778899aabbccddeeff", count: 2)

    func keyDir() throws -> TempDirectory {
        let dir = try TempDirectory()
        try FileManager.default.createDirectory(atPath: dir.path + "/keys", withIntermediateDirectories: true)
        _ = try dir.write("keys/site-a.key", sampleKeyHex + "\n")
        _ = try dir.write("keys/site-b.key", Self.otherKeyHex + "\n")
        _ = try dir.write("keys/README", "not a key: ignored\n", mode: 0o644)
        return dir
    }

    func server(_ extra: String = "", keys: String = "") -> String {
        """
        [[listener]]
        listen = "[::]:4443"
        mode = "tunnel-server"
        key_dir = "keys"
        \(extra)
        \(keys)
        """
    }

    @Test func readsEveryKeyOfTheDirectoryByName() throws {
        let dir = try keyDir()
        defer { dir.cleanup() }
        let config = try RelayConfigFile.parse(text: server("max_connections_per_key = 50\nrevoke = \"now\"", keys: """
            [[key]]
            id = "site-b"
            max_connections = 5
            allow = ["10.9.0.0/16"]
            """), origin: origin, baseDirectory: dir.path)
        let tunnel = try #require(config.settings.listeners[0].tunnel)
        #expect(tunnel.keyring.entries.map(\.name.description) == ["site-a", "site-b"])
        #expect(tunnel.keyring.entries[0].key.id == (try TunnelKey(bytes: bytes(sampleKeyHex))).id)
        #expect(tunnel.keyring.entries[0].maxConnections == nil)
        #expect(tunnel.keyring.entries[1].maxConnections == 5)
        #expect(tunnel.keyring.entries[1].allow.map(\.description) == ["10.9.0.0/16"])
        #expect(tunnel.maxConnectionsPerKey == 50)
        #expect(tunnel.revokeNow)
        #expect(tunnel.key == nil)
    }

    @Test func aKeyFileServerNamesItsKeyByTheFileName() throws {
        let dir = try keyDir()
        defer { dir.cleanup() }
        let text = "[[listener]]\nlisten = \"[::]:4443\"\nmode = \"tunnel-server\"\nkey_file = \"keys/site-a.key\"\n"
        let tunnel = try #require(try RelayConfigFile.parse(text: text, origin: origin, baseDirectory: dir.path).settings.listeners[0].tunnel)
        #expect(tunnel.keyring.entries.map(\.name.description) == ["site-a"])
        #expect(tunnel.key?.id == tunnel.keyring.entries[0].key.id)
    }

    @Test func aGatewayNamesItsKeyAndSeveralServers() throws {
        let dir = try keyDir()
        defer { dir.cleanup() }
        let text = """
            [[listener]]
            listen = "[::]:7000"
            mode = "redirect"
            via = ["198.51.100.4:4000",
                   "203.0.113.9:4000"]
            key_file = "keys/site-a.key"
            key_id = "site-a"
            [interception]
            lan_interfaces = ["lan0"]
            """
        let tunnel = try #require(try RelayConfigFile.parse(text: text, origin: origin, baseDirectory: dir.path).settings.listeners[0].tunnel)
        #expect(tunnel.servers == [try SocketAddress(parsing: "198.51.100.4:4000"), try SocketAddress(parsing: "203.0.113.9:4000")])
        #expect(tunnel.via == (try SocketAddress(parsing: "198.51.100.4:4000")))
        #expect(tunnel.keyName == KeyName("site-a"))
    }

    @Test(arguments: [
        ("key_dir = \"missing\"", 4, "key_dir: cannot read key directory"),
        ("key_dir = \"keys\"\nkey_file = \"keys/site-a.key\"", 4, "key_dir and key_file do not go together"),
        ("key_dir = \"keys\"\nrevoke = \"later\"", 5, "revoke = \"later\" is not one of \"drain\", \"now\""),
        ("key_dir = \"keys\"\nmax_connections_per_key = 0", 5, "max_connections_per_key = 0 is out of range"),
        ("key_dir = \"keys\"\n[[key]]\nid = \"a/etc\"", 6, "a key id has only letters"),
        ("key_dir = \"keys\"\n[[key]]\nmax_connections = 3", 5, "[[key]] has no id"),
        ("key_dir = \"keys\"\n[[key]]\nid = \"site-a\"\n[[key]]\nid = \"site-a\"", 8, "is given twice (first at line 6)"),
        ("key_dir = \"keys\"\n[[key]]\nid = \"site-a\"\nmax_conections = 3", 7, "did you mean 'max_connections'"),
    ])
    func badServerKeysNameTheirLine(_ keys: String, _ line: Int, _ says: String) throws {
        let dir = try keyDir()
        defer { dir.cleanup() }
        let text = "[[listener]]\nlisten = \"[::]:4443\"\nmode = \"tunnel-server\"\n" + keys + "\n"
        let error = try #require(parseError(text, baseDirectory: dir.path))
        #expect(error.line == line, "\(error)")
        #expect(error.description.contains(says), "\(error)")
    }

    @Test func badKeyFilesInTheDirectoryAreNamed() throws {
        let dir = try keyDir()
        defer { dir.cleanup() }
        _ = try dir.write("keys/bad name.key", Self.thirdKeyHex)
        var error = try #require(parseError(server(), baseDirectory: dir.path))
        #expect(error.line == 4 && error.description.contains("bad name.key: its name is the key id"), "\(error)")
        _ = try? FileManager.default.removeItem(atPath: dir.path + "/keys/bad name.key")
        _ = try dir.write("keys/site-c.key", Self.thirdKeyHex, mode: 0o644)
        error = try #require(parseError(server(), baseDirectory: dir.path))
        #expect(error.description.contains("chmod 600"), "\(error)")
        _ = try dir.write("keys/site-c.key", sampleKeyHex)
        error = try #require(parseError(server(), baseDirectory: dir.path))
        #expect(error.description.contains("\"site-a\" and \"site-c\" are the same key"), "\(error)")
    }

    @Test(arguments: [
        ("via = [\"198.51.100.4:4000\",\n  \"203.0.113.9\"]\nkey_file = \"keys/site-a.key\"", 5, "has no port"),
        ("via = [\"198.51.100.4:4000\", \"198.51.100.4:4000\"]\nkey_file = \"keys/site-a.key\"", 4, "is listed twice"),
        ("via = []\nkey_file = \"keys/site-a.key\"", 4, "names no server"),
        ("via = \"198.51.100.4:4000\"\nkey_file = \"keys/site-a.key\"\nkey_id = \"a b\"", 6, "key_id = \"a b\": a key id has only letters"),
        ("key_id = \"site-a\"", 4, "'key_id' is only used with via"),
    ])
    func badGatewayTunnelsNameTheirLine(_ tunnel: String, _ line: Int, _ says: String) throws {
        let dir = try keyDir()
        defer { dir.cleanup() }
        let text = "[[listener]]\nlisten = \"[::]:7000\"\nmode = \"redirect\"\n" + tunnel + "\n[interception]\nlan_interfaces = [\"lan0\"]\n"
        let error = try #require(parseError(text, baseDirectory: dir.path))
        #expect(error.line == line, "\(error)")
        #expect(error.description.contains(says), "\(error)")
    }

    private func bytes(_ hex: String) -> [UInt8] {
        let d = Array(hex.utf8)
        return stride(from: 0, to: d.count, by: 2).map { UInt8(String(decoding: d[$0..<$0 + 2], as: UTF8.self), radix: 16)! }
    }
}
