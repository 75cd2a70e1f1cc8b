#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import RelayConfig

/// The generated rules and routes steer real LAN connections into a transparent listener:
/// a LAN namespace connects to outside addresses through a gateway namespace whose only
/// "internet" is the listener, which answers with the destination it was reached at.
@Suite(.serialized) struct InterceptionTests {
    static let port = 7000

    /// A transparent dual-stack listener (what the relay does), reporting each connection's
    /// local address, i.e. the original destination.
    static let listener = """
        import socket
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        s.setsockopt(socket.IPPROTO_IPV6, 75, 1)  # IPV6_TRANSPARENT
        s.bind(("::", \(port)))
        s.listen(16)
        s.settimeout(30)  # exits on its own if the test dies before stopping it
        print("ready", flush=True)
        while True:
            c, _ = s.accept()
            c.sendall((c.getsockname()[0] + "\\n").encode())
            c.close()
        """

    static let client = """
        import socket, sys
        try:
            c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
            print(c.recv(100).decode().strip())
        except OSError as e:
            print("failed:", e.strerror or e)
        """

    @Test(.enabled(if: isRoot))
    func lanConnectionsAreInterceptedAndExclusionsAreNot() throws {
        let lan = namespaceName("l"), gw = namespaceName("g")
        let veth = "rv\(getpid() % 10_000)\(UInt8.random(in: 0...255))"
        defer {
            _ = try? run(["ip", "netns", "del", lan])
            _ = try? run(["ip", "netns", "del", gw])
        }
        func sh(_ ns: String, _ command: String) throws {
            let r = try run(["ip", "netns", "exec", ns, "sh", "-ec", command])
            try #require(r.status == 0, "\(command): \(r.error)")
        }
        try #require(try run(["ip", "netns", "add", lan]).status == 0)
        try #require(try run(["ip", "netns", "add", gw]).status == 0)
        try #require(try run(["ip", "link", "add", veth + "a", "netns", lan, "type", "veth", "peer", veth + "b", "netns", gw]).status == 0)
        try sh(lan, """
            ip link set lo up; ip link set \(veth)a name eth0 up
            ip addr add 192.168.77.2/24 dev eth0; ip -6 addr add fd77::2/64 dev eth0 nodad
            ip route add default via 192.168.77.1; ip -6 route add default via fd77::1
            """)
        try sh(gw, """
            ip link set lo up; ip link set \(veth)b name lan0 up
            ip addr add 192.168.77.1/24 dev lan0; ip -6 addr add fd77::1/64 dev lan0 nodad
            ip addr add 198.51.100.1/32 dev lo
            sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
            """)

        let config = try RelayConfigFile.parse(text: """
            [[listener]]
            listen = "[::]:\(Self.port)"
            mode = "transparent"
            [interception]
            lan_interfaces = ["lan0"]
            """, origin: origin)
        let load = try run(["ip", "netns", "exec", gw, "nft", "-f", "-"], input: NftRuleset.render(config))
        try #require(load.status == 0, "\(load.error)")
        for command in NftRuleset.routingCommands(config) { try sh(gw, command) }

        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        server.arguments = ["ip", "netns", "exec", gw, "python3", "-c", Self.listener]
        let ready = Pipe()
        server.standardOutput = ready
        try server.run()
        // SIGKILL: a child of the test runner may inherit a mask that blocks SIGTERM.
        defer { kill(server.processIdentifier, SIGKILL); server.waitUntilExit() }
        // read(2), not FileHandle.availableData: corelibs Foundation may wait for EOF there.
        var banner = [UInt8](repeating: 0, count: 16)
        let got = read(ready.fileHandleForReading.fileDescriptor, &banner, banner.count)
        try #require(String(decoding: banner.prefix(max(0, got)), as: UTF8.self).hasPrefix("ready"))

        func connect(_ host: String, _ port: Int = 80) throws -> String {
            try run(["ip", "netns", "exec", lan, "python3", "-c", Self.client, host, String(port)]).output
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }
        // Outside destinations reach the listener, which sees the original destination.
        #expect(try connect("203.0.113.9") == "::ffff:203.0.113.9")
        #expect(try connect("2001:db8::9", 443) == "2001:db8::9")
        // Excluded (RFC 1918) destinations are forwarded, not intercepted: no route here.
        #expect(try connect("10.9.9.9").hasPrefix("failed"))
        // The gateway's own addresses are left to it: nothing listens on port 80.
        #expect(try connect("198.51.100.1").hasPrefix("failed"))
    }
}
