import Testing
import TunnelProtocol
import MPTCPSocket
import RelayCore
import RelayConfig
import TunnelProtocol

@Suite struct GoodConfigTests {
    @Test func everyTopLevelKeyReachesRelaySettings() throws {
        let config = try RelayConfigFile.parse(text: """
            log_level = "debug"
            workers = 3
            max_connections = 100
            connect_timeout = 2.5
            idle_timeout = 0
            grace = 7
            pipe_size = 65536
            splice = "ring"
            upstream_mptcp = false

            [[listener]]
            listen = "127.0.0.1:7000"
            mode = "forward"
            upstream = "[2001:db8::7]:443"
            """, origin: origin)
        let s = config.settings
        #expect(config.logLevel == "debug")
        #expect(s.workers == 3)
        #expect(s.maxConnections == 100)
        #expect(s.connectTimeout == 2.5)
        #expect(s.idleTimeout == 0)
        #expect(s.gracePeriod == 7)
        #expect(s.pipeSize == 65536)
        #expect(s.spliceEngine == .ring)
        #expect(s.upstreamMPTCP == false)
        #expect(s.listeners == [ListenerSettings(address: try SocketAddress(parsing: "127.0.0.1:7000"),
                                                 mode: .forward(upstream: Upstream(try SocketAddress(parsing: "[2001:db8::7]:443"))))])
        #expect(config.listenLines == [12])
    }

    @Test func omittedKeysKeepTheCLIDefaults() throws {
        let config = try RelayConfigFile.parse(text: forwardHead, origin: origin)
        let defaults = RelaySettings(listeners: [])
        #expect(config.logLevel == "info")
        #expect(config.settings.workers == defaults.workers)
        #expect(config.settings.connectTimeout == defaults.connectTimeout)
        #expect(config.settings.idleTimeout == defaults.idleTimeout)
        #expect(config.settings.gracePeriod == defaults.gracePeriod)
        #expect(config.settings.pipeSize == defaults.pipeSize)
        #expect(config.settings.maxConnections == defaults.maxConnections)
        #expect(config.settings.spliceEngine == defaults.spliceEngine)
        #expect(config.settings.upstreamMPTCP == defaults.upstreamMPTCP)
        #expect(config.interception == InterceptionSettings())
    }

    @Test func everyModeMapsToItsListenerMode() throws {
        let dir = try TempDirectory()
        defer { dir.cleanup() }
        _ = try dir.write("tunnel.key", sampleKeyHex + "\n")
        let config = try RelayConfigFile.parse(text: """
            [[listener]]
            listen = "0.0.0.0:7000"
            mode = "transparent"
            [[listener]]
            listen = "[::1]:7001"
            mode = "redirect"
            via = "198.51.100.1:4443"
            key_file = "tunnel.key"
            fast_open = false
            [[listener]]
            listen = "0.0.0.0:8443"
            mode = "server"
            backend = "127.0.0.1:443"
            proxy_protocol = true
            [[listener]]
            listen = "[::1]:4443"
            mode = "tunnel-server"
            key_file = "tunnel.key"
            allow = ["10.1.0.0/16"]
            deny = ["192.0.2.0/24", "2001:db8::/32"]
            [interception]
            lan_interfaces = ["lan0", "wlan*"]
            exclude = ["192.168.50.0/24"]
            mark = 0x10
            table = 42
            ipv6 = false
            """, origin: origin, baseDirectory: dir.path)
        let l = config.settings.listeners
        #expect(l.map(\.mode) == [.transparent, .redirect, .server(backend: Upstream(try SocketAddress(parsing: "127.0.0.1:443"))), .tunnelServer])
        let key = try TunnelKey(bytes: Array(repeating: [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef] as [UInt8], count: 4).flatMap { $0 }).id
        #expect(l[0].tunnel == nil)
        #expect(l[1].tunnel?.key?.id == key)
        #expect(l[1].tunnel?.via == (try SocketAddress(parsing: "198.51.100.1:4443")))
        #expect(l[1].tunnel?.fastOpen == false)
        #expect(l[2].proxyProtocol)
        #expect(l[3].tunnel?.key?.id == key)
        #expect(l[3].tunnel?.allow.map(\.description) == ["10.1.0.0/16"])
        #expect(l[3].tunnel?.deny.map(\.description) == ["192.0.2.0/24", "2001:db8::/32"])
        #expect(config.interception.lanInterfaces == ["lan0", "wlan*"])
        #expect(config.interception.exclude.map(\.description) == ["192.168.50.0/24"])
        #expect(config.interception.mark == 0x10)
        #expect(config.interception.routeTable == 42)
        #expect(config.interception.ipv6 == false)
        #expect(config.listenLines == [2, 5, 11, 16])
    }

    @Test func loadReadsAFileAndNamesIt() throws {
        let dir = try TempDirectory()
        defer { dir.cleanup() }
        let file = try dir.write("gw.toml", forwardHead, mode: 0o644)
        let config = try RelayConfigFile.load(path: file)
        #expect(config.path == file)
        #expect(config.settings.listeners.count == 1)
    }

    /// A host name is kept as a name: the relay resolves it at run time, off the event loop.
    @Test func upstreamByNameAndPreAuthLimits() throws {
        let config = try RelayConfigFile.parse(text: """
            header_timeout = 3
            max_pending_headers = 100
            max_pending_per_source = 4

            [[listener]]
            listen = "0.0.0.0:7000"
            mode = "forward"
            upstream = "backend.example:443"
            """, origin: "gw.toml")
        let upstream = try #require(config.settings.listeners.first?.mode.upstream)
        #expect(upstream.name == "backend.example" && upstream.port == 443 && upstream.literal == nil)
        #expect(config.settings.headerTimeout == 3)
        #expect(config.settings.effectiveMaxPendingHeaders == 100)
        #expect(config.settings.maxPendingPerSource == 4)
    }
}
