#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket
import Testing
@testable import RelayCore

/// What a dial does under the WAN manager's steering.
@Suite("Uplink steering")
struct UplinkSteeringTests {
    func address(_ text: String) -> SocketAddress { try! SocketAddress(parsing: text) }

    let steering = UplinkSteering(
        v4: .bind(SocketAddress(host: "10.2.0.1", port: 0)!), v6: .mainTable, via: "wan2",
        exempt: [UplinkSteering.Prefix(family: AF_INET, bytes: [192, 168, 50, 0], length: 24),
                 UplinkSteering.Prefix(family: AF_INET, bytes: [10, 1, 0, 0], length: 23),
                 UplinkSteering.Prefix(family: AF_INET6, bytes: [0xfd, 0, 0, 0x50] + Array(repeating: 0, count: 12), length: 64)])

    @Test func bindsBeyondTheConnectedPrefixes() {
        #expect(steering.decision(for: address("10.200.0.1:80")) == .bind(SocketAddress(host: "10.2.0.1", port: 0)!))
        #expect(steering.decision(for: address("192.168.50.7:80")) == .mainTable, "the LAN is reached directly")
        #expect(steering.decision(for: address("10.1.1.9:80")) == .mainTable, "a /23 covers 10.1.1.x")
        #expect(steering.decision(for: address("10.1.2.9:80")) == .bind(SocketAddress(host: "10.2.0.1", port: 0)!), "but not 10.1.2.x")
        #expect(steering.decision(for: address("127.0.0.1:80")) == .mainTable)
        #expect(steering.decision(for: address("[::1]:80")) == .mainTable)
        #expect(steering.decision(for: address("[2001:db8::1]:80")) == .mainTable, "no IPv6 source: the main table decides")
        #expect(steering.decision(for: address("[fd00:50::9]:80")) == .mainTable)
    }

    @Test func noneInServiceRefusesAllButConnected() {
        var s = steering
        s.v6 = .refuse("no WAN in service")
        #expect(s.decision(for: address("[2001:db8::1]:80")) == .refuse("no WAN in service"))
        #expect(s.decision(for: address("[fd00:50::9]:80")) == .mainTable, "exempt prefixes are never refused")
        #expect(s.decision(for: address("10.200.0.1:80")) == .bind(SocketAddress(host: "10.2.0.1", port: 0)!), "per family")
        #expect(UplinkSteering.none.decision(for: address("10.200.0.1:80")) == .mainTable)
    }
}
