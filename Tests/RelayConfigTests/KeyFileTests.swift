import Testing
import TunnelProtocol
import RelayConfig
import TunnelProtocol

/// Key files: readable only by their owner, 64 hex digits.
@Suite struct KeyFileTests {
    func tunnelServer(keyFile: String) -> String {
        """
        log_level = "info"
        [[listener]]
        listen = "[::]:4443"
        mode = "tunnel-server"
        key_file = "\(keyFile)"
        """
    }

    @Test func groupOrWorldReadableKeyIsRefused() throws {
        let dir = try TempDirectory()
        defer { dir.cleanup() }
        let key = try dir.write("tunnel.key", sampleKeyHex, mode: 0o644)
        let error = try #require(parseError(tunnelServer(keyFile: key)))
        #expect(error.description == "gw.toml:5: key_file: key file \(key) is accessible by group or others (mode 644): run `chmod 600 \(key)`")
    }

    @Test func missingKeyFileIsNamed() throws {
        let error = try #require(parseError(tunnelServer(keyFile: "/nonexistent/tunnel.key")))
        #expect(error.description == "gw.toml:5: key_file: cannot read key file /nonexistent/tunnel.key: No such file or directory")
    }

    @Test func directoryIsNotAKeyFile() throws {
        let dir = try TempDirectory()
        defer { dir.cleanup() }
        let error = try #require(parseError(tunnelServer(keyFile: dir.path)))
        #expect(error.line == 5)
        #expect(error.message.contains("is not a regular file"))
    }

    @Test(arguments: [
        ("abcd", "holds 2 bytes of key material, at least 32 are needed"),
        (String(repeating: "a", count: 63), "odd number of hex digits"),
        ("correct horse battery staple and more words", "not hex"),
    ])
    func malformedKeyIsRefused(_ content: String, _ complaint: String) throws {
        let dir = try TempDirectory()
        defer { dir.cleanup() }
        let key = try dir.write("tunnel.key", content)
        let error = try #require(parseError(tunnelServer(keyFile: key)))
        #expect(error.line == 5)
        #expect(error.message.contains(complaint), "\(error)")
    }

    @Test func rawBytesAndLongHexKeysAreAccepted() throws {
        let dir = try TempDirectory()
        defer { dir.cleanup() }
        let raw = try dir.write("raw.key", String(decoding: (0..<40).map { UInt8($0) }, as: UTF8.self))
        let long = try dir.write("long.key", sampleKeyHex + sampleKeyHex)
        let rawConfig = try RelayConfigFile.parse(text: tunnelServer(keyFile: raw), origin: origin)
        #expect(rawConfig.settings.listeners[0].tunnel?.key?.id == (try TunnelKey(bytes: (0..<40).map { UInt8($0) })).id)
        let longConfig = try RelayConfigFile.parse(text: tunnelServer(keyFile: long), origin: origin)
        #expect(longConfig.settings.listeners[0].tunnel?.key?.id == (try TunnelKey.load(path: long)).id)
    }

    @Test func relativeKeyPathIsTakenFromTheConfigDirectory() throws {
        let dir = try TempDirectory()
        defer { dir.cleanup() }
        _ = try dir.write("tunnel.key", "  " + sampleKeyHex.uppercased() + "\n")
        let file = try dir.write("server.toml", tunnelServer(keyFile: "tunnel.key"))
        let config = try RelayConfigFile.load(path: file)
        #expect(config.settings.listeners[0].tunnel?.key?.id == (try TunnelKey.load(path: dir.path + "/tunnel.key")).id)
    }
}
