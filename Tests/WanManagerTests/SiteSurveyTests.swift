import Foundation
import Netlink
import RelayConfig
import Testing
import WanManager

/// `mptcp-relay init gateway`: what it detects, and that what it writes passes `check`.
@Suite("init: site survey and the configs written")
struct SiteSurveyTests {
    /// Two uplinks with default routes (metrics 0 and 200: the lower first), a LAN with a
    /// private prefix and no default route, an interface with a public address only, a container bridge and an
    /// interface that is down (none of them LAN).
    static func site() -> KernelView {
        var k = FakeKernel.twoWans()
        k.view.links += [Link(ifindex: 5, name: "lan0", flags: 0x10001, operState: 6), Link(ifindex: 6, name: "dmz0", flags: 0x10001, operState: 6),
                         Link(ifindex: 1, name: "lo", flags: 0x10009, operState: 0),
                         Link(ifindex: 7, name: "docker0", flags: 0x10001, operState: 6), Link(ifindex: 8, name: "lan1", flags: 0, operState: 2)]
        k.view.addresses += [InterfaceAddress(ifindex: 5, address: ip("192.168.50.1"), prefixLength: 24),
                             InterfaceAddress(ifindex: 5, address: ip("fd00:50::1"), prefixLength: 64),
                             InterfaceAddress(ifindex: 6, address: ip("198.51.100.1"), prefixLength: 28),
                             InterfaceAddress(ifindex: 1, address: ip("127.0.0.1"), prefixLength: 8, scope: 254),
                             InterfaceAddress(ifindex: 7, address: ip("172.17.0.1"), prefixLength: 16),
                             InterfaceAddress(ifindex: 8, address: ip("192.168.60.1"), prefixLength: 24)]
        // Listed out of preference order: detection sorts by metric.
        k.view.routes.reverse()
        return k.view
    }

    @Test func detectsUplinksByDefaultRouteAndLanByPrivatePrefix() {
        let s = SiteSurvey.detect(Self.site())
        #expect(s.uplinks.map(\.interface) == ["wan1", "wan2"])
        #expect(s.uplinks[1].routes == ["IPv4 default via 10.2.0.2 metric 100", "IPv6 default via fd00:2::2 metric 1024"])
        #expect(s.lans.map(\.interface) == ["lan0"] && s.lans.first?.prefixes == ["192.168.50.0/24", "fd00:50::/64"] && s.lans.first?.hasIPv6 == true)
        #expect(SiteSurvey.isPrivate(ip("100.64.1.1")) && SiteSurvey.isPrivate(ip("172.31.0.1")) && !SiteSurvey.isPrivate(ip("172.32.0.1")))
    }

    @Test func writtenConfigsPassCheck() throws {
        let s = SiteSurvey.detect(Self.site())
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("survey-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let key = dir.appendingPathComponent("tunnel.key")
        try (String(repeating: "ab", count: 32) + "\n").write(to: key, atomically: true, encoding: .utf8)
        chmod(key.path, 0o600)
        for server in [nil, "203.0.113.9:4443"] {
            let text = InitialConfig.gateway(.init(wans: ["wan1", "wan2"], lans: ["lan0"], server: server, keyFile: "tunnel.key"), survey: s, header: "# test")
            let file = dir.appendingPathComponent("gw.toml")
            try text.write(to: file, atomically: true, encoding: .utf8)
            let loaded = try RelayConfigFile.load(path: file.path)
            #expect(loaded.wan.wans.map(\.interface) == ["wan1", "wan2"])
            #expect(loaded.interception.lanInterfaces == ["lan0"])
            #expect(text.contains("\"192.168.50.0/24\"") && text.contains("\"10.1.0.0/24\""), "the LAN and the modems' networks are excluded")
            #expect(text.contains("via = \"203.0.113.9:4443\"") == (server != nil))
        }
        let server = InitialConfig.server(keyFile: "tunnel.key", port: 4443, allow: ["10.200.0.1/32"], header: "# test")
        let file = dir.appendingPathComponent("srv.toml")
        try server.write(to: file, atomically: true, encoding: .utf8)
        _ = try RelayConfigFile.load(path: file.path)
        #expect(server.contains("allow = [\"10.200.0.1/32\"]"))
    }
}
