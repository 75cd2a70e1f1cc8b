import Foundation
import Testing
import RelayConfig

/// Every file in examples/ parses, and the ones that intercept give rules nft accepts.
@Suite struct ExampleTests {
    static let names = ["gateway", "forward", "server", "tunnel-gateway", "tunnel-server"]

    @Test(arguments: names)
    func exampleParses(_ name: String) throws {
        let dir = try TempDirectory()
        defer { dir.cleanup() }
        let key = try dir.write("tunnel.key", sampleKeyHex + "\n")
        // Examples name the installed key path; point them at a test key instead.
        let text = try String(contentsOfFile: "\(repositoryRoot)/examples/\(name).toml", encoding: .utf8)
            .replacingOccurrences(of: "/etc/mptcp-relay/tunnel.key", with: key)
        let config = try RelayConfigFile.parse(text: text, origin: "\(name).toml")
        #expect(!config.settings.listeners.isEmpty)
        if isRoot && config.settings.listeners.contains(where: \.mode.intercepts) {
            let check = try run(["nft", "-c", "-f", "-"], input: NftRuleset.render(config))
            #expect(check.status == 0, "\(check.error)")
        }
    }
}
