#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import RelayConfig

let gatewayConfig = """
    [[listener]]
    listen = "[::]:7000"
    mode = "transparent"
    [[listener]]
    listen = "0.0.0.0:7001"
    mode = "forward"
    upstream = "192.0.2.1:80"
    [interception]
    lan_interfaces = ["lan0", "wlan*"]
    """

let isRoot = getuid() == 0

/// Unique per run: tests of several runs or suites may share the machine. The whole pid,
/// then a letter: scripts/test.sh deletes "rcfg<pid>..." namespaces whose pid is gone.
func namespaceName(_ role: String) -> String {
    "rcfg\(getpid())\(role)\(UInt16.random(in: 0...UInt16.max))"
}

@Suite(.serialized) struct NftRulesetTests {
    @Test func rulesetShape() throws {
        let config = try RelayConfigFile.parse(text: gatewayConfig, origin: origin)
        let text = NftRuleset.render(config)
        let lines = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        // Atomic replacement: declare, delete, define in one transaction.
        let start = try #require(lines.firstIndex(of: "table inet mptcp_relay"))
        #expect(lines[start + 1] == "delete table inet mptcp_relay")
        #expect(lines[start + 2] == "table inet mptcp_relay {")
        #expect(lines.contains("iifname != { \"lan0\", \"wlan*\" } return"))
        #expect(lines.contains("fib daddr type local return"))
        #expect(lines.contains("socket transparent 1 meta mark set 0x4d50 accept"))
        #expect(lines.contains("meta nfproto ipv4 meta l4proto tcp tproxy ip to :7000 meta mark set 0x4d50 accept"))
        #expect(lines.contains("meta nfproto ipv6 meta l4proto tcp tproxy ip6 to :7000 meta mark set 0x4d50 accept"))
        #expect(!text.contains("chain intercept_redirect"))
        #expect(NftRuleset.routingCommands(config) == [
            "ip -4 rule add fwmark 0x4d50 lookup 100 priority 30900", "ip -4 route replace local 0.0.0.0/0 dev lo table 100",
            "ip -6 rule add fwmark 0x4d50 lookup 100 priority 30900", "ip -6 route replace local ::/0 dev lo table 100",
        ])
        #expect(lines.contains("# route-up: ip -4 rule add fwmark 0x4d50 lookup 100 priority 30900"))
        #expect(lines.contains("# route-down: ip -6 route del local ::/0 dev lo table 100"))
    }

    @Test func redirectListenerGetsANatChainAndNoRoutes() throws {
        let config = try RelayConfigFile.parse(text: """
            [[listener]]
            listen = "0.0.0.0:7001"
            mode = "redirect"
            [interception]
            lan_interfaces = ["lan0"]
            ipv6 = false
            """, origin: origin)
        let text = NftRuleset.render(config)
        #expect(text.contains("type nat hook prerouting priority dstnat; policy accept;"))
        #expect(text.contains("meta nfproto ipv4 meta l4proto tcp redirect to :7001"))
        #expect(!text.contains("ipv6"))
        #expect(!text.contains("tproxy"))
        #expect(NftRuleset.routingCommands(config).isEmpty)
    }

    /// nft's own parser and the kernel accept every shape we generate.
    @Test(.enabled(if: isRoot), arguments: [
        gatewayConfig,
        """
        [[listener]]
        listen = "192.168.1.1:7000"
        mode = "transparent"
        [[listener]]
        listen = "[fd00::1]:7001"
        mode = "redirect"
        [interception]
        lan_interfaces = ["br-lan"]
        exclude = []
        """,
        """
        [[listener]]
        listen = "[::]:7001"
        mode = "redirect"
        [interception]
        lan_interfaces = ["lan0"]
        exclude = ["10.0.0.0/8", "10.1.0.0/16", "::/0"]
        """,
        forwardHead,
    ])
    func nftCheckModeAccepts(_ text: String) throws {
        let ruleset = NftRuleset.render(try RelayConfigFile.parse(text: text, origin: origin))
        let result = try run(["nft", "-c", "-f", "-"], input: ruleset)
        #expect(result.status == 0, "nft -c refused:\n\(result.error)\n\(ruleset)")
    }

    /// Loaded for real in a throwaway namespace, twice (the replace idiom), with its routes.
    @Test(.enabled(if: isRoot))
    func loadsReplacesAndUnloadsInANamespace() throws {
        let config = try RelayConfigFile.parse(text: gatewayConfig, origin: origin)
        let ns = namespaceName("n")
        try #require(try run(["ip", "netns", "add", ns]).status == 0)
        defer { _ = try? run(["ip", "netns", "del", ns]) }
        func inNS(_ command: String, input: String? = nil) throws -> CommandResult {
            try run(["ip", "netns", "exec", ns] + command.split(separator: " ").map(String.init), input: input)
        }
        #expect(try inNS("ip link set lo up").status == 0)  // IPv6 local routes need it, as on any host
        let ruleset = NftRuleset.render(config)
        for _ in 0..<2 {
            let load = try inNS("nft -f -", input: ruleset)
            #expect(load.status == 0, "\(load.error)")
        }
        let listed = try inNS("nft list table inet mptcp_relay")
        #expect(listed.output.contains("tproxy ip to :7000"))
        #expect(listed.output.contains("tproxy ip6 to :7000"))
        #expect(listed.output.components(separatedBy: "chain intercept_tproxy").count == 2, "one chain after two loads")
        for command in NftRuleset.routingCommands(config) {
            #expect(try inNS(command).status == 0, "\(command)")
        }
        #expect(try inNS("ip -4 rule show").output.contains("fwmark 0x4d50 lookup 100"))
        #expect(try inNS("ip -6 route show table 100").output.contains("local default dev lo"))
        for command in NftRuleset.routingRemovalCommands(config) {
            #expect(try inNS(command).status == 0, "\(command)")
        }
        #expect(!(try inNS("ip -4 rule show").output.contains("fwmark")))
        #expect(try inNS("nft delete table inet mptcp_relay").status == 0)
    }

    /// scripts/mptcp-relay-nft.sh (what the nft unit runs) installs table and routes, can
    /// rerun without stacking rules, and removes both. A stub stands in for `mptcp-relay nft`.
    @Test(.enabled(if: isRoot))
    func helperScriptUpIsIdempotentAndDownCleansUp() throws {
        let config = try RelayConfigFile.parse(text: gatewayConfig, origin: origin)
        let dir = try TempDirectory()
        defer { dir.cleanup() }
        let rules = try dir.write("rules.nft", NftRuleset.render(config))
        let stub = try dir.write("mptcp-relay", "#!/bin/sh\ncat '\(rules)'\n", mode: 0o755)
        let ns = namespaceName("s")
        try #require(try run(["ip", "netns", "add", ns]).status == 0)
        defer { _ = try? run(["ip", "netns", "del", ns]) }
        func inNS(_ command: [String]) throws -> CommandResult {
            try run(["MPTCP_RELAY=\(stub)", "ip", "netns", "exec", ns] + command)
        }
        let script = "\(repositoryRoot)/scripts/mptcp-relay-nft.sh"
        #expect(try inNS(["ip", "link", "set", "lo", "up"]).status == 0)
        for _ in 0..<2 {
            let up = try inNS(["sh", script, "up", "unused.toml"])
            #expect(up.status == 0, "\(up.error)")
        }
        let rulesV4 = try inNS(["ip", "-4", "rule", "show"]).output
        #expect(rulesV4.components(separatedBy: "fwmark 0x4d50 lookup 100").count == 2, "one rule after two runs:\n\(rulesV4)")
        #expect(try inNS(["ip", "-6", "rule", "show"]).output.contains("fwmark 0x4d50 lookup 100"))
        #expect(try inNS(["nft", "list", "table", "inet", "mptcp_relay"]).status == 0)
        let down = try inNS(["sh", script, "down", "unused.toml"])
        #expect(down.status == 0, "\(down.error)")
        #expect(try inNS(["nft", "list", "table", "inet", "mptcp_relay"]).status != 0)
        #expect(!(try inNS(["ip", "-4", "rule", "show"]).output.contains("fwmark")))
        #expect(!(try inNS(["ip", "-6", "rule", "show"]).output.contains("fwmark")))
        #expect(try inNS(["ip", "-6", "route", "show", "table", "100"]).output.isEmpty)
    }
}
