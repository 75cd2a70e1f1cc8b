import MPTCPSocket
import RelayConfig
import RelayCore
import Testing

/// `[admin]` (issue 11): the operator listener's table.
@Suite struct AdminConfig {
    let listener = """
        [[listener]]
        listen = "127.0.0.1:7000"
        mode = "forward"
        upstream = "192.0.2.1:80"

        """

    @Test func loopbackListenerWithoutToken() throws {
        let file = try RelayConfigFile.parse(text: listener + "[admin]\nlisten = \"127.0.0.1:9180\"\n", origin: origin)
        #expect(file.admin == AdminSettings(listen: try SocketAddress(parsing: "127.0.0.1:9180")))
    }

    @Test func noAdminTableNoListener() throws {
        #expect(try RelayConfigFile.parse(text: listener, origin: origin).admin == nil)
    }

    @Test func relativeTokenFileIsTakenFromTheConfigDirectory() throws {
        let file = try RelayConfigFile.parse(text: listener + "[admin]\nlisten = \"[::]:9180\"\ntoken_file = \"admin.token\"\n",
                                             origin: origin, baseDirectory: "/etc/mptcp-relay")
        #expect(file.admin?.tokenFile == "/etc/mptcp-relay/admin.token")
    }

    @Test func exposedListenerWithoutTokenIsRefusedAtItsLine() throws {
        let error = try #require(parseError(listener + "[admin]\nlisten = \"0.0.0.0:9180\"\n"))
        #expect(error.line == 6, "\(error)")
        #expect(error.description.contains("token_file"), "\(error)")
    }

    @Test func badAdminTables() throws {
        let unknown = try #require(parseError(listener + "[admin]\nlisten = \"127.0.0.1:9180\"\ntoken = \"x\"\n"))
        #expect(unknown.description.contains("unknown key 'token'"), "\(unknown)")
        let missing = try #require(parseError(listener + "[admin]\ntoken_file = \"t\"\n"))
        #expect(missing.description.contains("needs listen"), "\(missing)")
        let badAddress = try #require(parseError(listener + "[admin]\nlisten = \"localhost\"\n"))
        #expect(badAddress.line == 6 && badAddress.description.contains("HOST:PORT"), "\(badAddress)")
    }

    /// Issue 24, finding 2: names the listener answers to in Host, besides its address.
    @Test func hostNames() throws {
        let file = try RelayConfigFile.parse(text: listener + "[admin]\nlisten = \"127.0.0.1:9180\"\nhost_names = [\"relay.lan\", \"gw.example\"]\n", origin: origin)
        #expect(file.admin?.hostNames == ["relay.lan", "gw.example"])
        #expect(file.admin?.accepts(host: "relay.lan:9180") == true && file.admin?.accepts(host: "rebind.example") == false)
        let bad = try #require(parseError(listener + "[admin]\nlisten = \"127.0.0.1:9180\"\nhost_names = [\"relay.lan:9180\"]\n"))
        #expect(bad.line == 7 && bad.description.contains("host_names must be a list of host names"), "\(bad)")
    }
}
