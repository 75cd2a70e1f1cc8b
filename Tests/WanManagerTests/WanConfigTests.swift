import Netlink
import RelayConfig
import Testing
import WanManager

@Suite("[[wan]] and [paths] config")
struct WanConfigTests {
    let listener = "[[listener]]\nlisten = \"127.0.0.1:8081\"\nmode = \"forward\"\nupstream = \"127.0.0.1:80\"\n"

    func parse(_ text: String) throws -> RelayConfigFile {
        try RelayConfigFile.parse(text: listener + text, origin: "gw.toml")
    }

    func error(_ text: String) -> String? {
        do { _ = try parse(text); return nil } catch { return "\(error)" }
    }

    @Test func fullConfig() throws {
        let c = try parse("""
            [[wan]]
            interface = "eth1"
            gateway = "198.51.100.1"
            gateway6 = "2001:db8::1"
            [[wan]]
            interface = "wwan0"
            backup = true
            table = 2000
            [[wan]]
            interface = "eth3"
            enabled = false
            [paths]
            endpoint = "fullmesh"
            subflows = 6
            """)
        #expect(c.wan.wans.map(\.interface) == ["eth1", "wwan0", "eth3"])
        #expect(c.wan.wans[0].gateways == [IPAddress("198.51.100.1")!, IPAddress("2001:db8::1")!])
        #expect(c.wan.wans.map(\.table) == [1001, 2000, 1003])
        #expect(c.wan.wans[1].backup && !c.wan.wans[0].backup)
        #expect(!c.wan.wans[2].enabled)
        #expect(c.wan.paths.endpointKind == .fullmesh)
        #expect(c.wan.limits == PathLimits(subflows: 6, addAddrAccepted: 2))
        #expect(c.wan.endpointFlags(c.wan.wans[1]) == [.subflow, .fullmesh, .backup])
    }

    @Test func noWanMeansNoManager() throws {
        #expect(try parse("").wan.wans.isEmpty)
    }

    @Test(arguments: [
        ("[[wan]]\ngateway = \"10.0.0.1\"\n", "gw.toml:5: a [[wan]] needs interface"),
        ("[[wan]]\ninterface = \"eth*\"\n", "gw.toml:6: 'eth*' is not an interface name"),
        ("[[wan]]\ninterface = \"eth1\"\n[[wan]]\ninterface = \"eth1\"\n", "gw.toml:8: WAN interface 'eth1' is listed twice (first at line 6)"),
        ("[[wan]]\ninterface = \"eth1\"\ngateway = \"10.0.0.300\"\n", "gw.toml:7: gateway = \"10.0.0.300\" is not an IP address"),
        ("[[wan]]\ninterface = \"eth1\"\ngateway = \"2001:db8::1\"\n", "gw.toml:7: gateway = \"2001:db8::1\" is IPv6: write it as gateway6"),
        ("[[wan]]\ninterface = \"eth1\"\ntable = 100\n", "gw.toml:7: table = 100 is [interception]'s table"),
        ("[[wan]]\ninterface = \"eth1\"\ntable = 254\n", "gw.toml:7: table = 254 is a system routing table"),
        ("[[wan]]\ninterface = \"eth1\"\ntable = 7\n[[wan]]\ninterface = \"eth2\"\ntable = 7\n", "gw.toml:10: WANs 'eth1' and 'eth2' share routing table 7"),
        ("[[wan]]\ninterface = \"eth1\"\nbakup = true\n", "gw.toml:7: unknown key 'bakup' in [[wan]] (did you mean 'backup'?)"),
        ("[wan]\ninterface = \"eth1\"\n", "[[wan]] (double brackets)"),
        ("[paths]\nendpoint = \"mesh\"\n", "gw.toml:6: "),
        ("[paths]\nsubflows = 9\n", "gw.toml:6: "),
        ("[interception]\nblock_quic = true\n", "gw.toml:6: block_quic needs lan_interfaces"),
    ])
    func badConfig(_ text: String, _ expected: String) {
        let message = error(text)
        #expect(message?.contains(expected) == true, "got: \(message ?? "no error")")
    }

    @Test func blockQuicRule() throws {
        let c = try parse("[interception]\nlan_interfaces = [\"lan0\", \"lan1\"]\nblock_quic = true\n")
        let rules = NftRuleset.render(c)
        #expect(rules.contains("chain block_quic {"))
        #expect(rules.contains("type filter hook forward priority filter; policy accept;"))
        #expect(rules.contains("iifname { \"lan0\", \"lan1\" } udp dport 443 reject"))
        let plain = try parse("[interception]\nlan_interfaces = [\"lan0\"]\n")
        #expect(!NftRuleset.render(plain).contains("block_quic"))
    }

    @Test func absentInterfaceIsAWarning() throws {
        let c = try parse("[[wan]]\ninterface = \"lo\"\n[[wan]]\ninterface = \"nosuchif9\"\n")
        #expect(c.wanWarnings() == ["gw.toml: warning: WAN interface 'nosuchif9' does not exist (yet): it is managed once it appears"])
    }
}
