import Foundation
import Testing
import TestSupport

/// A tunnel gateway with two 50 Mbit/s WANs in front of two aggregation servers behind a
/// stateless L4 balancer (scripts/testbed-fleet.sh): the balanced address hashes each TCP
/// flow, an MPTCP join included, onto either server.
struct Fleet {
    let tb: FleetTestbed
    let tmp: TempDir
    let started = ProcessBag()
    let key: String
    let bin: String
    let www: URL
    var servers: [BackgroundProcess] = []
    var gateway: BackgroundProcess? = nil

    /// The web server every aggregation server reaches on its own loopback (allowed with --allow).
    static let webIP = "198.18.0.80"

    /// Tunnel server k (0-based) on 0.0.0.0:4000, with `--advertise` of its own address when asked.
    mutating func startServer(_ k: Int, advertise: Bool) async throws {
        let ns = tb.serverNS[k]
        let p = try BackgroundProcess(in: ns, [bin, "run", "--listen", "0.0.0.0:4000", "--server", "--key-file", key,
                                               "--allow", "\(Self.webIP)/32", "--connect-timeout", "2"]
                                          + (advertise ? ["--advertise", tb.advertised[k]] : []),
                                      log: tmp.file("server\(k + 1).log"))
        started.add(p)
        try await Net.waitListening(ns: ns, port: 4000, alive: { p.isRunning })
        servers.append(p)
    }

    /// The gateway: redirect listener tunnelling to the balanced address, [[wan]] for both
    /// uplinks with laminar endpoints (what joins an advertised address from every WAN), no
    /// TCP Fast Open (docs/deployment.md).
    mutating func startGateway() async throws {
        let config = tmp.file("gateway.toml")
        try Files.write("""
            idle_timeout = 20
            [[listener]]
            listen = "0.0.0.0:7000"
            mode = "redirect"
            via = "\(tb.vip):4000"
            key_file = "\(key)"
            # TCP Fast Open cookies are per server: behind the balancer, measured here, 5-7 of 20
            # connections fell back to TCP or never completed their connect with it on.
            fast_open = false

            [interception]
            lan_interfaces = ["lan0"]

            [[wan]]
            interface = "wan1"
            [[wan]]
            interface = "wan2"

            [paths]
            endpoint = "laminar"
            """, to: config)
        let p = try BackgroundProcess(in: tb.gwNS, [bin, "run", "--config", config.path], log: tmp.file("gateway.log"))
        started.add(p)
        try await Net.waitListening(ns: tb.gwNS, port: 7000, alive: { p.isRunning })
        let rules = "table ip fleet_redirect { chain pre { type nat hook prerouting priority dstnat; iifname \"lan0\" tcp dport 8080 redirect to :7000; }; }"
        _ = try await Proc.check(in: tb.gwNS, ["nft", rules])
        gateway = p
    }

    static func start(advertise: Bool, bodyBytes: Int) async throws -> (Fleet, sha: String) {
        let tb = try await FleetTestbed()
        let tmp: TempDir
        do { tmp = try TempDir(prefix: "fl") } catch { await tb.down(); throw error }
        var fleet = Fleet(tb: tb, tmp: tmp, key: "", bin: "", www: tmp.file("www"))
        do {
            fleet = Fleet(tb: tb, tmp: tmp, key: try TunnelSetup.writeKey(tmp.file("tunnel.key")), bin: try await RelayBinary.path(), www: tmp.file("www"))
            try FileManager.default.createDirectory(at: fleet.www, withIntermediateDirectories: true)
            let body = fleet.www.appendingPathComponent("body.bin")
            try await Files.random(body, bytes: bodyBytes)
            for ns in [tb.gwNS] + tb.serverNS { _ = try await Proc.check(in: ns, ["sysctl", "-qw", "net.ipv4.tcp_fastopen=3"]) }
            for (k, ns) in tb.serverNS.enumerated() {
                _ = try await Proc.check(in: ns, ["ip", "addr", "add", "\(webIP)/32", "dev", "lo"])
                let web = try BackgroundProcess(in: ns, ["python3", "-m", "http.server", "8080", "--bind", webIP, "--directory", fleet.www.path],
                                                log: tmp.file("web\(k + 1).log"))
                fleet.started.add(web)
                try await Net.waitListening(ns: ns, port: 8080, alive: { web.isRunning })
                try await fleet.startServer(k, advertise: advertise)
            }
            try await fleet.startGateway()
            return (fleet, try await Files.sha256(body))
        } catch {
            await fleet.stop(failed: true)
            throw error
        }
    }

    func stop(failed: Bool = false) async {
        recordRelayExits(await started.stopAll())
        await tb.down()
        if failed && ProcessInfo.processInfo.environment["MPTCP_RELAY_KEEP_TMP"] == "1" {
            print("kept logs of the failed test in \(tmp.path)")
        } else {
            tmp.remove()
        }
    }

    /// `count` curls on the LAN fetching the body through the tunnel, at `limit` bytes/s each
    /// (nil: as fast as they can).
    func downloads(_ count: Int, tag: String, limit: String? = nil) throws -> [(curl: BackgroundProcess, file: URL)] {
        try (0..<count).map { i in
            let file = tmp.file("\(tag)-\(i).bin")
            let curl = try BackgroundProcess(in: tb.lanNS, ["curl", "-sS", "--max-time", "90", "-o", file.path]
                                                 + (limit.map { ["--limit-rate", $0] } ?? []) + ["http://\(Self.webIP):8080/body.bin"],
                                             log: tmp.file("curl-\(tag)-\(i).log"))
            started.add(curl)
            return (curl, file)
        }
    }

    /// Bytes received on both gateway WANs.
    func wanRx() async throws -> Int {
        try await rxBytes(tb.gwNS, "wan1") + (try await rxBytes(tb.gwNS, "wan2"))
    }

    /// Per server: its MPTCP connections on :4000 and the extra subflows (joins) of each, from
    /// `ss -Mi` in its namespace: a join counted there arrived at the server that holds the
    /// connection.
    func subflowsPerConnection() async throws -> [[Int]] {
        var result: [[Int]] = []
        for ns in tb.serverNS {
            let out = try await Proc.check(in: ns, ["ss", "-MniH", "state", "established", "sport = :4000"])
            result.append(out.components(separatedBy: "subflows:").dropFirst().map { Int($0.prefix { $0.isNumber }) ?? -1 })
        }
        return result
    }

    func counter(_ name: String, server k: Int) async throws -> Int64 {
        try await Net.counter("MPTcpExt\(name)", ns: tb.serverNS[k])
    }

    func logs() -> String {
        "gateway:\n\(tail(gateway?.log ?? ""))\nserver 1:\n\(tail(servers.first?.log ?? ""))\nserver 2:\n\(tail(servers.last?.log ?? ""))"
    }
}

/// Runs `body` on a started fleet and tears it down whatever happens.
func withFleet<T>(advertise: Bool, bodyBytes: Int, _ body: (Fleet, String) async throws -> T) async throws -> T {
    let (fleet, sha) = try await Fleet.start(advertise: advertise, bodyBytes: bodyBytes)
    do {
        let result = try await body(fleet, sha)
        await fleet.stop()
        return result
    } catch {
        await fleet.stop(failed: true)
        throw error
    }
}

extension Integration {
    @Suite("Server fleet behind a stateless L4 balancer")
    struct FleetSuite {
        /// 20 tunnelled downloads: spread over both servers, every join on the connection's
        /// own server, both WANs full.
        @Test func advertisedAddressesKeepEachConnectionOnItsServer() async throws {
            try await withFleet(advertise: true, bodyBytes: 5_000_000) { fleet, sha in
                for (k, server) in fleet.servers.enumerated() {
                    #expect(await server.waitForLog("allow_join_initial_addr_port = 0"), "server \(k + 1):\n\(tail(server.log))")
                    let endpoints = try await Proc.check(in: fleet.tb.serverNS[k], ["ip", "mptcp", "endpoint", "show"])
                    #expect(endpoints.contains("\(fleet.tb.advertised[k]) id ") && endpoints.contains("signal"), "\(endpoints)")
                }
                let rx0 = [try await rxBytes(fleet.tb.gwNS, "wan1"), try await rxBytes(fleet.tb.gwNS, "wan2")]
                let start = Date()
                let transfers = try fleet.downloads(20, tag: "agg")
                try await Task.sleep(nanoseconds: 2_500_000_000)
                let joins = try await fleet.subflowsPerConnection()
                for t in transfers { try #require(await t.curl.waitForExit(timeout: 90), "a download hung\n\(fleet.logs())") }
                let elapsed = Date().timeIntervalSince(start)
                let perWan = [try await rxBytes(fleet.tb.gwNS, "wan1") - rx0[0], try await rxBytes(fleet.tb.gwNS, "wan2") - rx0[1]]
                let average = Double(perWan.reduce(0, +)) * 8 / elapsed / 1e6
                for (i, t) in transfers.enumerated() {
                    #expect(t.curl.exitStatus == 0, "download \(i): \(t.curl.log)")
                    #expect(try await Files.sha256(t.file) == sha, "download \(i) differs")
                }
                let connections = [try await fleet.counter("MPCapableSYNRX", server: 0), try await fleet.counter("MPCapableSYNRX", server: 1)]
                let joined = [try await fleet.counter("MPJoinAckRx", server: 0), try await fleet.counter("MPJoinAckRx", server: 1)]
                let refused = [try await fleet.counter("MPJoinNoTokenFound", server: 0), try await fleet.counter("MPJoinNoTokenFound", server: 1)]
                print("fleet, advertise: 20 downloads: per-WAN bytes \(perWan), \(Int(average)) Mbit/s over the whole run (2 x \(fleet.tb.rateMbit) Mbit/s); connections per server \(connections), joins \(joined), refused joins \(refused); live joins per connection \(joins)")
                #expect(connections.allSatisfy { $0 > 0 }, "the balancer used one server only: \(connections)")
                #expect(connections.reduce(0, +) == 20)
                #expect(refused == [0, 0], "joins reached a server without the connection: \(refused)")
                for k in 0..<2 { #expect(joined[k] >= connections[k], "server \(k + 1): \(joined[k]) joins for \(connections[k]) connections") }
                #expect(joins.flatMap { $0 }.allSatisfy { $0 >= 1 }, "a connection without its join on its own server: \(joins)")
                #expect(joins.flatMap { $0 }.count >= 10, "too few live connections to judge: \(joins)")
                // Both WANs full, proven by bytes (a rate floor flakes on two busy cores): each
                // carried at least a third of the 20 x 5 MB.
                #expect(perWan.allSatisfy { $0 > 20 * 5_000_000 / 3 }, "per-WAN bytes \(perWan) for 20 x 5 MB")

                // SIGTERM: the signal endpoint goes and the sysctl is what it was (1, the default).
                let server = fleet.servers[1], ns = fleet.tb.serverNS[1]
                server.signal(SIGTERM)
                #expect(await server.waitForExit(timeout: 40), "\(tail(server.log))")
                let left = try await Proc.check(in: ns, ["ip", "mptcp", "endpoint", "show"])
                #expect(left.isEmpty, "left behind: \(left)")
                #expect(try await Proc.check(in: ns, ["sysctl", "-n", "net.mptcp.allow_join_initial_addr_port"]).hasPrefix("1"))
            }
        }

        /// A server dies (its processes killed, the balancer drains it): its connections end
        /// at the LAN client before their end (the tunnel carries no length: the client sees
        /// a reset or an early close), the other server's complete byte-exact, new ones go to
        /// the survivor and still aggregate.
        @Test func aDeadServerEndsItsConnectionsAndTheSurvivorTakesNewOnes() async throws {
            try await withFleet(advertise: true, bodyBytes: 12_000_000) { fleet, sha in
                let transfers = try fleet.downloads(8, tag: "before")
                let connected = try await WanProbe.poll(10) {
                    try await fleet.counter("MPCapableSYNRX", server: 0) + (try await fleet.counter("MPCapableSYNRX", server: 1)) == 8
                }
                try #require(connected, "\(fleet.logs())")
                let onFirst = Int(try await fleet.counter("MPCapableSYNRX", server: 0))
                try await Task.sleep(nanoseconds: 1_500_000_000)
                // Server 1 dies: the relay and its web server at once; the balancer's health
                // check takes it out of the pool.
                fleet.started.checksOwnExit(fleet.servers[0])  // killed on purpose: status 137
                let pids = try await Proc.check(["ip", "netns", "pids", fleet.tb.serverNS[0]])
                for pid in pids.split(separator: "\n").compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
                try await fleet.tb.drain(1)
                var statuses: [Int32] = []
                var failed = 0
                for t in transfers {
                    try #require(await t.curl.waitForExit(timeout: 60), "a download hung after the server died\n\(fleet.logs())")
                    let status = t.curl.exitStatus ?? -1
                    statuses.append(status)
                    if status == 0 {
                        #expect(try await Files.sha256(t.file) == sha, "a download that succeeded is not byte-exact")
                    } else {
                        failed += 1
                        // 18: closed before Content-Length; 56: reset.
                        #expect(status == 18 || status == 56, "\(t.curl.log)")
                    }
                }
                print("fleet, server 1 killed: \(onFirst) of 8 connections were on it; curl exit statuses \(statuses) (18: closed early, 56: reset)")
                #expect(onFirst > 0 && onFirst < 8, "the balancer used one server only: \(onFirst) of 8 on server 1")
                #expect(failed == onFirst, "the connections of the dead server must end in an error, the others complete: \(statuses), \(onFirst) on server 1\n\(fleet.logs())")

                // New connections: all on server 2, byte-exact, both WANs used.
                let before = try await fleet.counter("MPCapableSYNRX", server: 1)
                let wan2 = try await rxBytes(fleet.tb.gwNS, "wan2")
                let after = try fleet.downloads(4, tag: "after")
                for (i, t) in after.enumerated() {
                    try #require(await t.curl.waitForExit(timeout: 60), "\(fleet.logs())")
                    #expect(t.curl.exitStatus == 0, "new download \(i) after the failover: \(t.curl.log)\n\(fleet.logs())")
                    #expect(try await Files.sha256(t.file) == sha)
                }
                #expect(try await fleet.counter("MPCapableSYNRX", server: 1) - before == 4)
                #expect(try await fleet.counter("MPJoinNoTokenFound", server: 1) == 0)
                let overWan2 = try await rxBytes(fleet.tb.gwNS, "wan2") - wan2
                print("fleet, after the failover: \(overWan2 / 1_000_000) MB of 4 x 12 MB came over WAN 2")
                #expect(overWan2 > 12_000_000, "the survivor's connections did not aggregate: \(overWan2) bytes over WAN 2")
            }
        }

        /// `run --advertise` is checked like the file's `[server] advertise`; `check` says what
        /// the balancer must route where.
        @Test func advertiseFlagAndCheck() async throws {
            let bin = try await RelayBinary.path()
            let key = "--key-file=/nonexistent.key"
            let refusals: [([String], String)] = [
                (["--listen", "0.0.0.0:4000", "--upstream", "127.0.0.1:80", "--advertise", "203.0.113.11"], "--advertise is for an aggregation server: it goes with --server"),
                (["--listen", "198.51.100.1:4000", "--server", key, "--advertise", "203.0.113.11"], "has no port, so joins come to 203.0.113.11:4000, where nothing listens"),
                (["--listen", "0.0.0.0:4000", "--server", key, "--advertise", "127.0.0.1"], "wildcard, loopback or multicast"),
                (["--listen", "0.0.0.0:4000", "--server", key, "--advertise", "203.0.113.11:0"], "has a bad port"),
            ]
            for (args, message) in refusals {
                // In an empty network namespace of its own: should a refusal regress, the relay
                // that starts instead must not listen on the host's 0.0.0.0:4000.
                let r = try await Proc.run(["unshare", "--net", bin, "run"] + args, timeout: 30)
                #expect(!r.succeeded && r.stderr.contains(message), "\(args): \(r.summary)")
            }
            let tmp = try TempDir(prefix: "fl-check")
            defer { tmp.remove() }
            let keyFile = try TunnelSetup.writeKey(tmp.file("tunnel.key"))
            let config = tmp.file("server.toml")
            try Files.write("""
                [[listener]]
                listen = "0.0.0.0:4000"
                mode = "tunnel-server"
                key_file = "\(keyFile)"

                [server]
                advertise = ["203.0.113.11", "203.0.113.12:4001"]
                """, to: config)
            let out = try await Proc.check([bin, "check", "--no-bind", "--config", config.path])
            #expect(out.contains("0.0.0.0:4000 (tunnel server) -> any server"), "\(out)")
            #expect(out.contains("203.0.113.11 port(s) 4000 -> this server"), "\(out)")
            #expect(out.contains("203.0.113.12 port 4001 -> this server"), "\(out)")
            #expect(out.contains("allow_join_initial_addr_port = 0"), "\(out)")
            #expect(out.contains("warning: 203.0.113.11 is not an address of this host"), "\(out)")
        }

        /// The same fleet without `advertise`: joins go to the balanced address, the hash
        /// sends some to the other server, which refuses them; those connections stay on one WAN.
        @Test func withoutAdvertiseJoinsLandOnTheWrongServer() async throws {
            try await withFleet(advertise: false, bodyBytes: 2_000_000) { fleet, sha in
                let transfers = try fleet.downloads(20, tag: "plain")
                try await Task.sleep(nanoseconds: 1_500_000_000)
                let joins = try await fleet.subflowsPerConnection()
                for t in transfers {
                    try #require(await t.curl.waitForExit(timeout: 90), "\(fleet.logs())")
                    #expect(t.curl.exitStatus == 0, "\(t.curl.log)")
                    #expect(try await Files.sha256(t.file) == sha)
                }
                let connections = [try await fleet.counter("MPCapableSYNRX", server: 0), try await fleet.counter("MPCapableSYNRX", server: 1)]
                let joined = [try await fleet.counter("MPJoinAckRx", server: 0), try await fleet.counter("MPJoinAckRx", server: 1)]
                let refused = [try await fleet.counter("MPJoinNoTokenFound", server: 0), try await fleet.counter("MPJoinNoTokenFound", server: 1)]
                print("fleet, no advertise: connections per server \(connections), joins \(joined), refused joins (no such token) \(refused); live joins per connection \(joins)")
                #expect(refused.reduce(0, +) > 0, "no join was refused: the balancer did not split them")
                #expect(joined.reduce(0, +) < connections.reduce(0, +), "every connection joined its own server by chance: \(joined) for \(connections)")
                for (k, ns) in fleet.tb.serverNS.enumerated() {
                    #expect(try await Proc.check(in: ns, ["sysctl", "-n", "net.mptcp.allow_join_initial_addr_port"]).hasPrefix("1"), "server \(k + 1)")
                }
            }
        }
    }
}

extension WanProbe {
    /// Polls `condition` every 100 ms for up to `seconds`.
    static func poll(_ seconds: Double, _ condition: () async throws -> Bool) async throws -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            if try await condition() { return true }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        return try await condition()
    }
}
