import Foundation
import Testing
import RelayConfig
import RelayCore

/// `udp = true` and `[udp]` (issue 23): what parses, what is refused with its line, and the
/// nft rules and `check` lines they produce.
@Suite(.serialized) struct UdpConfigTests {
    static func gateway(_ extra: String = "", listenerExtra: String = "udp = true") -> String {
        """
        [[listener]]
        listen = "[::]:7000"
        mode = "transparent"
        via = "198.51.100.1:4000"
        key_file = "tunnel.key"
        \(listenerExtra)
        [interception]
        lan_interfaces = ["lan0"]
        \(extra)
        """
    }

    func withKey<T>(_ body: (String) throws -> T) throws -> T {
        let dir = try TempDirectory()
        defer { dir.cleanup() }
        _ = try dir.write("tunnel.key", String(repeating: "ab", count: 32) + "\n")
        return try body(dir.path)
    }

    @Test func parsesUdpAndItsBounds() throws {
        try withKey { dir in
            let config = try RelayConfigFile.parse(text: Self.gateway("""
                [udp]
                idle_timeout = 60
                short_idle_timeout = 5
                max_flows = 100
                max_flows_per_client = 10
                queue_bytes = 131072
                queue_ms = 40
                """), origin: origin, baseDirectory: dir)
            #expect(config.settings.listeners[0].udp)
            let u = config.settings.udp
            #expect(u.idleTimeout == 60 && u.shortIdleTimeout == 5 && u.maxFlows == 100 && u.maxFlowsPerClient == 10)
            #expect(u.queueBytes == 131072 && u.queueMilliseconds == 40)
            #expect(config.udpSummary().first?.contains("port 7000") == true)
        }
    }

    @Test(arguments: [
        // (text, line, words the message must contain)
        ("""
         [[listener]]
         listen = "[::]:7000"
         mode = "transparent"
         udp = true
         [interception]
         lan_interfaces = ["lan0"]
         """, 4, "needs via"),
        ("""
         [[listener]]
         listen = "[::]:7000"
         mode = "redirect"
         via = "198.51.100.1:4000"
         key_file = "tunnel.key"
         udp = true
         [interception]
         lan_interfaces = ["lan0"]
         """, 6, "TPROXY"),
        ("""
         [[listener]]
         listen = "[::]:7000"
         mode = "forward"
         upstream = "192.0.2.1:80"
         udp = true
         """, 5, "does not apply"),
        (UdpConfigTests.gateway("[udp]\nqueue_ms = 0"), 10, "queue_ms"),
        (UdpConfigTests.gateway("[udp]\nmax_flows = 0"), 10, "max_flows"),
        (UdpConfigTests.gateway("[udp]\nidle_timeout = 5\nshort_idle_timeout = 10"), 11, "short_idle_timeout"),
        (UdpConfigTests.gateway("[udp]\nflows = 3"), 10, "flows"),
        (UdpConfigTests.gateway("", listenerExtra: "udp = \"yes\""), 6, "true or false"),
    ])
    func refusedWithItsLine(_ text: String, _ line: Int, _ words: String) throws {
        try withKey { dir in
            let error = parseError(text, baseDirectory: dir)
            #expect(error?.line == line, "\(String(describing: error))")
            #expect(error?.description.contains(words) == true, "\(String(describing: error))")
        }
    }

    @Test func nftInterceptsUdpOnTheListenersPort() throws {
        try withKey { dir in
            let text = NftRuleset.render(try RelayConfigFile.parse(text: Self.gateway(), origin: origin, baseDirectory: dir))
            #expect(text.contains("meta l4proto != { tcp, udp } return"))
            #expect(text.contains("fib daddr type { broadcast, multicast } return"), "DHCP and mDNS stay on the LAN whatever exclude says")
            #expect(text.contains("meta nfproto ipv4 meta l4proto udp tproxy ip to :7000 meta mark set 0x4d50 accept"))
            #expect(text.contains("meta nfproto ipv6 meta l4proto udp tproxy ip6 to :7000 meta mark set 0x4d50 accept"))
            // Same exclusions as TCP: they come before every tproxy rule.
            let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
            let exclusion = try #require(lines.firstIndex(of: "ip daddr @excluded4 return"))
            let udp = try #require(lines.firstIndex { $0.contains("l4proto udp tproxy") })
            #expect(exclusion < udp)
            // Without udp: TCP only, as before.
            let tcpOnly = NftRuleset.render(try RelayConfigFile.parse(text: Self.gateway(listenerExtra: ""), origin: origin, baseDirectory: dir))
            #expect(!tcpOnly.contains("udp tproxy") && tcpOnly.contains("meta l4proto != tcp return"))
        }
    }

    @Test(.enabled(if: isRoot)) func nftCheckModeAcceptsTheUdpRules() throws {
        try withKey { dir in
            let ruleset = NftRuleset.render(try RelayConfigFile.parse(text: Self.gateway(), origin: origin, baseDirectory: dir))
            let result = try run(["nft", "-c", "-f", "-"], input: ruleset)
            #expect(result.status == 0, "nft -c refused:\n\(result.error)\n\(ruleset)")
        }
    }

    /// block_quic turns the browsers' QUIC away; once UDP is carried it is dead weight:
    /// no rejection rule, and `check` says to remove it.
    @Test func blockQuicIsMootWithUdp() throws {
        try withKey { dir in
            let config = try RelayConfigFile.parse(text: Self.gateway().replacingOccurrences(of: "lan_interfaces = [\"lan0\"]",
                                                                                          with: "lan_interfaces = [\"lan0\"]\nblock_quic = true"),
                                                   origin: origin, baseDirectory: dir)
            #expect(!NftRuleset.render(config).contains("block_quic"))
            #expect(config.udpSummary().contains { $0.contains("block_quic is not needed") })
        }
    }
}
