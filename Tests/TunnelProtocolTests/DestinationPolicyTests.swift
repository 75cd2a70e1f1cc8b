import MPTCPSocket
import Testing
@testable import TunnelProtocol

@Suite struct DestinationPolicyTests {
    func prefix(_ text: String) -> IPPrefix {
        let parts = text.split(separator: "/")
        return IPPrefix(address: SocketAddress(host: String(parts[0]), port: 0)!, length: Int(parts[1])!)
    }

    @Test(arguments: [
        "0.0.0.0:80", "0.1.2.3:80", "127.0.0.1:80", "127.255.0.1:80", "10.0.0.1:80", "172.16.0.1:80",
        "172.31.255.255:80", "192.168.1.1:80", "100.64.0.1:80", "100.127.255.254:80", "169.254.169.254:80",
        "224.0.0.1:80", "239.255.255.250:1900", "255.255.255.255:80", "240.0.0.1:80",
        "[::]:80", "[::1]:80", "[fe80::1]:80", "[febf::1]:80", "[fc00::1]:80", "[fd12:3456::1]:80",
        "[ff02::1]:80", "[fec0::1]:80",
        "[::ffff:127.0.0.1]:80", "[::ffff:10.0.0.1]:80",  // IPv4-mapped
        "[64:ff9b::7f00:1]:80", "[64:ff9b::c0a8:101]:80",  // NAT64 of loopback, 192.168.1.1
        "[::127.0.0.1]:80",  // IPv4-compatible (deprecated)
        "203.0.113.9:0",  // port 0
        "198.18.0.1:80", "198.19.255.254:80",  // benchmarking
        "[2002:c0a8:101::1]:80", "[2001:0:4136:e378::1]:80", "[64:ff9b:1::a00:1]:80",  // 6to4, Teredo, local NAT64
    ])
    func deniedByDefault(destination: String) {
        let decision = DestinationPolicy().decide(address(destination))
        #expect(!decision.permitted, "\(destination): \(decision.reason)")
    }

    @Test(arguments: ["1.1.1.1:443", "8.8.8.8:53", "100.63.255.255:80", "100.128.0.0:80", "172.32.0.1:80",
                      "192.0.2.10:443", "[2606:4700::1111]:443", "[2001:db8::1]:80", "[64:ff9b::808:808]:53"])
    func publicDestinationsArePermitted(destination: String) {
        #expect(DestinationPolicy().permits(address(destination)))
    }

    @Test func serverOwnAddressesAreDeniedOnAnyPort() {
        let policy = DestinationPolicy(serverAddresses: [address("198.51.100.1:443"), address("[2001:db8::5]:443")])
        #expect(!policy.permits(address("198.51.100.1:22")))
        #expect(!policy.permits(address("[2001:db8::5]:8080")))
        #expect(!policy.permits(address("[::ffff:198.51.100.1]:22")))
        #expect(policy.permits(address("198.51.100.2:22")))
        #expect(policy.decide(address("198.51.100.1:22")).reason.contains("own address"))
    }

    @Test func explicitAllowLiftsAnEquallyOrMoreSpecificDefault() {
        let policy = DestinationPolicy(allow: [prefix("10.1.0.0/16"), prefix("fd00:1::/32")])
        #expect(policy.permits(address("10.1.2.3:80")))
        #expect(policy.decide(address("10.1.2.3:80")).reason == "allow 10.1.0.0/16")
        #expect(!policy.permits(address("10.2.0.1:80")))
        #expect(policy.permits(address("[fd00:1::9]:80")))
        #expect(policy.permits(address("[::ffff:10.1.0.1]:80")))
    }

    @Test func broadAllowDoesNotOpenLoopback() {
        let policy = DestinationPolicy(allow: [prefix("0.0.0.0/0"), prefix("::/0")])
        #expect(!policy.permits(address("127.0.0.1:22")))
        #expect(!policy.permits(address("[::1]:22")))
        #expect(policy.permits(address("1.1.1.1:443")))
    }

    @Test func explicitDenyAlwaysWins() {
        let policy = DestinationPolicy(allow: [prefix("10.1.0.0/16"), prefix("203.0.113.0/24")],
                                       deny: [prefix("10.1.2.0/24"), prefix("203.0.113.128/25"), prefix("2001:db8::/32")])
        #expect(!policy.permits(address("10.1.2.3:80")))
        #expect(policy.permits(address("10.1.3.3:80")))
        #expect(!policy.permits(address("203.0.113.200:80")))
        #expect(policy.permits(address("203.0.113.20:80")))
        #expect(!policy.permits(address("[2001:db8::1]:80")))
        #expect(policy.decide(address("10.1.2.3:80")).reason == "deny 10.1.2.0/24")
    }

    @Test func localAddressesIncludeLoopback() {
        let local = Socket.interfaceAddresses()
        #expect(local.contains { $0.host == "127.0.0.1" })
    }
}
