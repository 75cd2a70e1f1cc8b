import Foundation
import Testing
import TestSupport

extension Integration {
    /// The transparent LAN gateway of examples/gateway.toml, run as written: rules from
    /// `mptcp-relay nft`, plain curl on the LAN, an MPTCP web server (python http.server
    /// under the classic mptcpize) reached at its real address.
    @Suite("Transparent gateway")
    struct Gateway {
        @Test func tproxyAggregatesAndSurvivesTheLossOfTheFirstWAN() async throws {
            try await withEnv(wans: 2, rateMbit: 50) { env in
                let g = try await GatewaySetup.start(env, config: Repo.path("examples/gateway.toml").path)
                let body = try await g.body(bytes: 40_000_000)
                let capable = try await Net.counter("MPTcpExtMPCapableSYNRX", ns: env.tb.srvNS)

                // 1. Aggregation, byte-exact, with bytes over both WANs.
                let (wan1Before, wan2Before) = (try await rxBytes(env.tb.gwNS, "wan1"), try await rxBytes(env.tb.gwNS, "wan2"))
                let first = try await g.download("http://\(env.tb.srvIP):8080/body.bin", to: "first.bin")
                let perWan = [try await rxBytes(env.tb.gwNS, "wan1") - wan1Before, try await rxBytes(env.tb.gwNS, "wan2") - wan2Before]
                print("gateway (TPROXY): \(Int(first.mbit)) Mbit/s over 2 x 50 Mbit/s; per-WAN bytes \(perWan)")
                #expect(try await Files.sha256(first.file) == body.sha)
                // Aggregation by bytes, not by curl's average (a rate floor flakes on two busy
                // cores): each WAN carried at least a quarter of the 40 MB.
                #expect(perWan.allSatisfy { $0 > 10_000_000 }, "per-WAN bytes \(perWan) for 40 MB: one WAN carried too little")
                #expect(try await Net.counter("MPTcpExtMPCapableSYNRX", ns: env.tb.srvNS) > capable, "the server saw no MPTCP connection")
                #expect(await g.relay.waitForLog("upstream=\(env.tb.srvIP):8080 mptcp=yes"), "\(tail(g.relay.log))")

                // 2. WAN 1 (the initial subflow's) goes down 2 s into the download.
                let slow = try BackgroundProcess(in: env.tb.lanNS, ["curl", "-sS", "--max-time", "60", "-o", env.tmp.file("failover.bin").path,
                                                                    "http://\(env.tb.srvIP):8080/body.bin"], log: env.tmp.file("curl-failover.log"))
                env.started.add(slow)
                try await Task.sleep(nanoseconds: 2_000_000_000)
                try await env.tb.link(1, up: false)
                try #require(slow.isRunning, "the download ended before WAN 1 went down: no failover was tested")
                #expect(await slow.waitForExit(timeout: 60), "download did not finish after WAN 1 went down")
                #expect(slow.exitStatus == 0, "curl failed after WAN 1 went down: \(slow.log)")
                #expect(try await Files.sha256(env.tmp.file("failover.bin")) == body.sha, "body differs after failover")

                // 3. WAN 1 back: a new connection carries bytes over it again.
                try await env.tb.link(1, up: true)
                try await Task.sleep(nanoseconds: 1_000_000_000)
                let before = try await rxBytes(env.tb.gwNS, "wan1")
                let third = try await g.download("http://\(env.tb.srvIP):8080/body.bin", to: "third.bin")
                let overWAN1 = try await rxBytes(env.tb.gwNS, "wan1") - before
                #expect(try await Files.sha256(third.file) == body.sha)
                #expect(overWAN1 > 5_000_000, "only \(overWAN1) bytes came in over WAN 1 after it came back")
            }
        }

        @Test func tproxyOverIPv6() async throws {
            try await withEnv(wans: 2, rateMbit: 100) { env in
                let g = try await GatewaySetup.start(env, config: Repo.path("examples/gateway.toml").path)
                let body = try await g.body(bytes: 10_000_000)
                let got = try await g.download("http://[\(env.tb.srvIP6)]:8080/body.bin", to: "v6.bin")
                #expect(try await Files.sha256(got.file) == body.sha)
                #expect(await g.relay.waitForLog("upstream=[\(env.tb.srvIP6)]:8080 mptcp=yes"), "\(tail(g.relay.log))")
                // A client that talks to the listener itself would make the relay dial itself.
                let loop = try await env.lan(["curl", "-sS", "--max-time", "5", "http://\(env.tb.gwLanIP):7000/"], timeout: 20)
                #expect(!loop.succeeded, "a connection to the relay's own listener was relayed: \(loop.summary)")
                #expect(await g.relay.waitForLog("this relay's own listener (loop)"), "\(tail(g.relay.log))")
            }
        }

        @Test func redirectFindsTheOriginalDestination() async throws {
            try await withEnv(wans: 2, rateMbit: 100) { env in
                let config = env.tmp.file("redirect.toml")
                try Files.write("""
                    [[listener]]
                    listen = "[::]:7001"
                    mode = "redirect"

                    [interception]
                    lan_interfaces = ["lan0"]
                    exclude = ["192.168.50.0/24", "fd00:50::/64", "127.0.0.0/8", "::1/128"]
                    """, to: config)
                let g = try await GatewaySetup.start(env, config: config.path, port: 7001)
                let body = try await g.body(bytes: 10_000_000)
                for url in ["http://\(env.tb.srvIP):8080/body.bin", "http://[\(env.tb.srvIP6)]:8080/body.bin"] {
                    let got = try await g.download(url, to: "redirect.bin")
                    #expect(try await Files.sha256(got.file) == body.sha, "\(url)")
                }
                #expect(await g.relay.waitForLog("upstream=\(env.tb.srvIP):8080 mptcp=yes"), "\(tail(g.relay.log))")
                #expect(await g.relay.waitForLog("upstream=[\(env.tb.srvIP6)]:8080 mptcp=yes"), "\(tail(g.relay.log))")
            }
        }

        /// SIGHUP with a changed config adds a listener while a download through the old one
        /// goes on: the established connection is not dropped.
        @Test func reloadKeepsEstablishedConnections() async throws {
            try await withEnv(wans: 1, rateMbit: 20) { env in
                let config = env.tmp.file("reload.toml")
                let base = """
                    [[listener]]
                    listen = "\(env.tb.gwLanIP):8081"
                    mode = "forward"
                    upstream = "\(env.tb.srvIP):8080"

                    """
                try Files.write(base, to: config)
                let g = try await GatewaySetup.start(env, config: config.path, port: 8081, intercept: false)
                let body = try await g.body(bytes: 10_000_000)
                let download = try BackgroundProcess(in: env.tb.lanNS, ["curl", "-sS", "-o", env.tmp.file("during.bin").path,
                                                                        "http://\(env.tb.gwLanIP):8081/body.bin"], log: env.tmp.file("curl.log"))
                env.started.add(download)
                try await Task.sleep(nanoseconds: 1_000_000_000)
                try Files.write(base + """
                    [[listener]]
                    listen = "\(env.tb.gwLanIP):8082"
                    mode = "forward"
                    upstream = "\(env.tb.srvIP):8080"
                    """, to: config)
                g.relay.signal(SIGHUP)
                try await Net.waitListening(ns: env.tb.gwNS, port: 8082, alive: { g.relay.isRunning })
                let viaNew = try await g.download("http://\(env.tb.gwLanIP):8082/body.bin", to: "new.bin")
                #expect(try await Files.sha256(viaNew.file) == body.sha)
                #expect(await download.waitForExit(timeout: 30) && download.exitStatus == 0, "download during reload: \(download.log)")
                #expect(try await Files.sha256(env.tmp.file("during.bin")) == body.sha, "the established download was disturbed by the reload")
                #expect(await g.relay.waitForLog("reloaded: 2 listener(s): 1 kept, 1 new"), "\(tail(g.relay.log))")
            }
        }
    }
}

/// `mptcp-relay check` on bad configs: one clear line naming the line, exit status 1.
@Suite("Config check command")
struct ConfigCheckCLI {
    @Test(arguments: [
        ("[[listener]]\nlisten = \"0.0.0.0:7000\"\nmode = \"transparent\"\nupsteam = \"1.2.3.4:5\"\n", ":4: unknown key 'upsteam'"),
        ("[[listener]]\nlisten = \"10.0.0.300:7000\"\nmode = \"transparent\"\n", ":2: "),
        ("[[listener]]\nlisten = \"127.0.0.1:7000\"\nmode = \"transparent\"\n[[listener]]\nlisten = \"127.0.0.1:7000\"\nmode = \"redirect\"\n", ":5: duplicate listener"),
    ])
    func badConfigIsOneLineAndFails(_ text: String, _ expected: String) async throws {
        let tmp = try TempDir(prefix: "check")
        defer { tmp.remove() }
        let file = try Files.write(text, to: tmp.file("bad.toml"))
        let r = try await Proc.run([try await RelayBinary.path(), "check", "--config", file.path])
        #expect(r.status == 1, "\(r.summary)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.count == 1, "want one line, got:\n\(r.stderr)")
        #expect(r.stderr.contains(file.path + expected), "\(r.stderr)")
    }

    @Test func portInUseIsReported() async throws {
        let tmp = try TempDir(prefix: "check")
        defer { tmp.remove() }
        // Hold a port, then ask check about it.
        let holder = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(holder) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(holder, $0, len) } }
        listen(holder, 1)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(holder, $0, &len) } }
        let port = UInt16(bigEndian: addr.sin_port)
        let file = try Files.write("[[listener]]\nlisten = \"127.0.0.1:\(port)\"\nmode = \"forward\"\nupstream = \"127.0.0.1:9\"\n", to: tmp.file("busy.toml"))
        let r = try await Proc.run([try await RelayBinary.path(), "check", "--config", file.path])
        #expect(r.status == 1, "\(r.summary)")
        #expect(r.stderr.split(separator: "\n").count == 1 && r.stderr.contains(":2: ") && r.stderr.contains("in use"), "\(r.stderr)")
    }
}

/// The gateway under test: rules loaded from `mptcp-relay nft`, relay started with the
/// config, and the web server on srv (dual-stack, under the classic mptcpize).
struct GatewaySetup {
    let env: Env
    let relay: BackgroundProcess
    let www: URL

    static func start(_ env: Env, config: String, port: Int = 7000, intercept: Bool = true) async throws -> GatewaySetup {
        if intercept {
            try await env.loadInterception(config: config)
        }
        let relay = try await env.relay(in: env.tb.gwNS, config: config, port: port, log: "gateway.log")
        let www = env.tmp.file("www")
        try FileManager.default.createDirectory(at: www, withIntermediateDirectories: true)
        _ = try await env.server(["python3", "-m", "http.server", "8080", "--bind", "::", "--directory", www.path], port: 8080, mptcp: true, log: "http.log")
        return GatewaySetup(env: env, relay: relay, www: www)
    }

    func body(bytes: Int) async throws -> (url: URL, sha: String) {
        let url = www.appendingPathComponent("body.bin")
        try await Files.random(url, bytes: bytes)
        return (url, try await Files.sha256(url))
    }

    /// curl on the LAN; returns the file and the average speed in Mbit/s.
    func download(_ url: String, to name: String) async throws -> (file: URL, mbit: Double) {
        let file = env.tmp.file(name)
        let r = try await env.lan(["curl", "-sS", "--max-time", "60", "-o", file.path, "-w", "%{speed_download}", url], timeout: 90)
        try #require(r.succeeded, "\(r.summary)\nrelay log:\n\(tail(relay.log))")
        return (file, (Double(r.stdout) ?? 0) * 8 / 1e6)
    }
}

/// Bytes received on an interface of a namespace.
extension Env {
    /// What `mptcp-relay nft --config` prints for `config`, loaded on the gateway: the nft
    /// table, then its `ip rule`/`ip route` lines (--routes), as the nft unit does.
    func loadInterception(config: String) async throws {
        let bin = try await RelayBinary.path()
        let rules = try await Proc.check([bin, "nft", "--config", config])
        _ = try await Proc.check(in: tb.gwNS, ["nft", "-f", "-"], stdin: rules)
        for line in try await Proc.check([bin, "nft", "--config", config, "--routes"]).split(separator: "\n") {
            _ = try await Proc.check(in: tb.gwNS, line.split(separator: " ").map(String.init))
        }
    }
}

func rxBytes(_ ns: String, _ dev: String) async throws -> Int {
    Int(try await Proc.check(in: ns, ["cat", "/sys/class/net/\(dev)/statistics/rx_bytes"]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
}
