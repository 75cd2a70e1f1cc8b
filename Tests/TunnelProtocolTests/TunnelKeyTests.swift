#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import TunnelProtocol

@Suite struct TunnelKeyTests {
    /// Writes `content` to a fresh file with `mode` and returns its path.
    func keyFile(_ content: [UInt8], mode: mode_t = 0o600) -> String {
        var template = Array("/tmp/tunnel-key-test-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        precondition(fd >= 0)
        _ = content.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fchmod(fd, mode)
        close(fd)
        return String(cString: template)
    }

    @Test func loadsHexWithSurroundingWhitespace() throws {
        let path = keyFile(Array(("  " + String(repeating: "0f", count: 32) + "\n").utf8))
        defer { unlink(path) }
        let key = try TunnelKey.load(path: path)
        #expect(key.id == (try TunnelKey(bytes: Array(repeating: 0x0f, count: 32))).id)
    }

    @Test func loadsRawBytes() throws {
        let raw: [UInt8] = Array(0..<32)
        let path = keyFile(raw)
        defer { unlink(path) }
        #expect(try TunnelKey.load(path: path).id == exampleKey.id)
    }

    @Test(arguments: [0o644, 0o640, 0o604, 0o660, 0o602] as [mode_t])
    func refusesGroupOrWorldAccess(mode: mode_t) {
        let path = keyFile(Array(0..<32), mode: mode)
        defer { unlink(path) }
        #expect {
            try TunnelKey.load(path: path)
        } throws: { error in
            let text = "\(error)"
            return text.contains(path) && text.contains("chmod 600 \(path)")
        }
    }

    @Test func refusesShortKeys() {
        let hexPath = keyFile(Array(String(repeating: "ab", count: 31).utf8))  // 62 hex digits
        let rawPath = keyFile(Array(repeating: 0x01, count: 31))
        defer { unlink(hexPath); unlink(rawPath) }
        #expect(throws: TunnelKeyError.tooShort(path: hexPath, bytes: 31)) { try TunnelKey.load(path: hexPath) }
        #expect(throws: TunnelKeyError.tooShort(path: rawPath, bytes: 31)) { try TunnelKey.load(path: rawPath) }
        #expect(throws: TunnelKeyError.tooShort(path: nil, bytes: 3)) { try TunnelKey(bytes: [1, 2, 3]) }
    }

    @Test func refusesPassphrasesAndOddHex() {
        let phrase = keyFile(Array("correct horse battery staple and more words".utf8))
        let odd = keyFile(Array(String(repeating: "a", count: 65).utf8))
        defer { unlink(phrase); unlink(odd) }
        #expect(throws: TunnelKeyError.looksLikePassphrase(path: phrase)) { try TunnelKey.load(path: phrase) }
        #expect(throws: TunnelKeyError.oddHex(path: odd)) { try TunnelKey.load(path: odd) }
    }

    @Test func missingFileAndDirectoryNameThePath() {
        #expect {
            try TunnelKey.load(path: "/nonexistent/tunnel.key")
        } throws: { "\($0)".contains("/nonexistent/tunnel.key") && "\($0)".contains("No such file") }
        #expect(throws: TunnelKeyError.notRegularFile(path: "/tmp")) { try TunnelKey.load(path: "/tmp") }
    }
}
