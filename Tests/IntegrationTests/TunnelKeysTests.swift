import Foundation
import Testing
import TestSupport

extension Integration {
    /// Issue 26: one aggregation server for many gateways (a key per gateway, revoked alone,
    /// limited alone), and one gateway on several servers at once (spread by destination,
    /// health-pinged over the tunnel, a refusal retried on the other server).
    @Suite("Tunnel keys per gateway and servers per gateway (issue 26)")
    struct TunnelKeys {
        static let webIP = Integration.Tunnel.webIP
        static let canaryIP = Integration.Tunnel.canaryIP
        static let gateways = ["gw-a", "gw-b", "gw-c"]

        /// Three gateway relays, each with its own key and key id, behind one server with a
        /// key directory: each aggregates (its connection has subflows from both WANs),
        /// byte-exact. Then gw-b's key file is removed and the server gets SIGHUP (revoke =
        /// "now"): gw-b's next connections are refused within 1 s and its open transfer is
        /// reset, while gw-a's and gw-c's open transfers finish byte-exact and new ones work.
        @Test func threeGatewaysOneServerAndARevokedKey() async throws {
            try await withEnv(wans: 2, rateMbit: 50) { env in
                let bin = try await RelayBinary.path()
                _ = try await Proc.check(in: env.tb.srvNS, ["ip", "addr", "add", "\(Self.webIP)/32", "dev", "lo"])
                let keys = env.tmp.file("keys")
                try FileManager.default.createDirectory(at: keys, withIntermediateDirectories: true)
                var keyFiles: [String: String] = [:]
                for g in Self.gateways { keyFiles[g] = try TunnelSetup.writeKey(keys.appendingPathComponent("\(g).key")) }
                let config = env.tmp.file("server.toml")
                try Files.write("""
                    header_timeout = 2
                    [[listener]]
                    listen = "\(env.tb.srvIP):4000"
                    mode = "tunnel-server"
                    key_dir = "\(keys.path)"
                    allow = ["\(Self.webIP)/32"]
                    revoke = "now"
                    [admin]
                    listen = "127.0.0.1:9187"
                    """, to: config)
                let check = try await Proc.run(in: env.tb.srvNS, [bin, "check", "--no-bind", "--config", config.path], timeout: 20)
                print("check (server):\n\(check.stdout)")
                #expect(check.succeeded && Self.gateways.allSatisfy { check.stdout.contains("key \"\($0)\"") }, "\(check.summary)")
                let server = try await env.daemon(in: env.tb.srvNS, [bin, "run", "--config", config.path], port: 4000, log: "server.log")

                let www = env.tmp.file("www")
                try FileManager.default.createDirectory(at: www, withIntermediateDirectories: true)
                let body = www.appendingPathComponent("body.bin")
                try await Files.random(body, bytes: 6_000_000)
                let want = try await Files.sha256(body)
                try Files.write("small\n", to: www.appendingPathComponent("small.txt"))
                var gatewayLogs: [String: BackgroundProcess] = [:]
                for (i, g) in Self.gateways.enumerated() {
                    let port = 8081 + i
                    _ = try await env.serverIn(["python3", "-m", "http.server", "\(port)", "--bind", Self.webIP, "--directory", www.path],
                                               port: port, log: "web-\(g).log")
                    gatewayLogs[g] = try await env.daemon(in: env.tb.gwNS, [bin, "run", "--listen", "0.0.0.0:\(7001 + i)", "--redirect",
                                                                           "--via", "\(env.tb.srvIP):4000", "--key-file", keyFiles[g]!, "--key-id", g],
                                                          port: 7001 + i, log: "gateway-\(g).log")
                    _ = try await Proc.check(in: env.tb.gwNS, ["nft", "table ip it_keys_\(port) { chain pre { type nat hook prerouting priority dstnat; iifname \"lan0\" tcp dport \(port) redirect to :\(7001 + i); }; }"])
                }
                func fetch(_ g: String, _ tag: String, limit: String? = nil) throws -> (BackgroundProcess, URL) {
                    let port = 8081 + Self.gateways.firstIndex(of: g)!
                    let file = env.tmp.file("\(tag)-\(g).bin")
                    let curl = try BackgroundProcess(in: env.tb.lanNS, ["curl", "-sS", "--max-time", "60", "-o", file.path]
                                                         + (limit.map { ["--limit-rate", $0] } ?? []) + ["http://\(Self.webIP):\(port)/body.bin"],
                                                     log: env.tmp.file("curl-\(tag)-\(g).log"))
                    env.started.add(curl)
                    return (curl, file)
                }

                // Long transfers (6 MB at 1 MB/s) through all three gateways at once.
                let open = try Self.gateways.map { try fetch($0, "open", limit: "1M") }
                // Each gateway's connection, by its key, with subflows from both gateway WANs.
                var perKey: [String: [String]] = [:]
                try await waitFor("a connection per key with subflows over both WANs", timeout: 15) {
                    let doc = try await adminGet(env, "127.0.0.1:9187", "/api/connections", ns: env.tb.srvNS)
                    perKey = Self.subflowRemotes(doc)
                    return Self.gateways.allSatisfy { g in Set(perKey[g] ?? []).isSuperset(of: ["10.1.0.1", "10.2.0.1"]) }
                }
                print("tunnel keys: subflow sources per key at the server: \(perKey)")

                // Revoke gw-b: remove its key file, SIGHUP; gw-b tries a new connection every
                // 100 ms from the signal on, until one is refused.
                try FileManager.default.removeItem(at: keys.appendingPathComponent("gw-b.key"))
                let hup = Date()
                kill(server.pid, SIGHUP)
                var revokedAfter: Double?
                var attempts: [String] = []
                while Date().timeIntervalSince(hup) < 5 {
                    let started = Date()
                    let r = try await env.lan(["curl", "-sS", "--max-time", "3", "-o", "/dev/null", "-w", "%{http_code}", "http://\(Self.webIP):8082/small.txt"], timeout: 10)
                    attempts.append("\(String(format: "%.2f", started.timeIntervalSince(hup)))s:\(r.status)")
                    if !r.succeeded {
                        revokedAfter = Date().timeIntervalSince(hup)
                        break
                    }
                    try await Task.sleep(nanoseconds: 100_000_000)
                }
                print("tunnel keys: gw-b refused \(revokedAfter.map { String(format: "%.3f", $0) } ?? "never") s after SIGHUP (attempts \(attempts))")
                let refusedAt = try #require(revokedAfter, "gw-b was never refused: \(attempts)\n\(tail(server.log))")
                #expect(refusedAt < 1.0, "revocation took \(refusedAt) s: \(attempts)")
                // And stays refused.
                for _ in 0..<3 {
                    let r = try await env.lan(["curl", "-sS", "--max-time", "3", "-o", "/dev/null", "http://\(Self.webIP):8082/small.txt"], timeout: 10)
                    #expect(!r.succeeded, "a connection of the revoked key got through: \(r.summary)")
                }

                // The open transfers: gw-a and gw-c byte-exact; gw-b's was reset (revoke = "now").
                for (i, g) in Self.gateways.enumerated() {
                    let (curl, file) = open[i]
                    _ = await curl.waitForExit(timeout: 40)
                    let status = curl.exitStatus
                    if g == "gw-b" {
                        #expect(status != 0, "the revoked key's open transfer finished: \(curl.log)")
                    } else {
                        #expect(status == 0, "\(g)'s open transfer failed across the reload: \(curl.log)\n\(tail(gatewayLogs[g]!.log))")
                        #expect(try await Files.sha256(file) == want, "\(g)'s open transfer differs")
                    }
                }
                // The other two open new connections, byte-exact.
                for g in ["gw-a", "gw-c"] {
                    let (curl, file) = try fetch(g, "after")
                    _ = await curl.waitForExit(timeout: 40)
                    #expect(curl.exitStatus == 0, "\(g) cannot open a new connection after the reload: \(curl.log)")
                    #expect(try await Files.sha256(file) == want, "\(g)'s new transfer differs")
                }
                #expect(await server.waitForLog("unknown key id \"gw-b\""), "\(tail(server.log))")
                #expect(await server.waitForLog("gw-b revoked"), "\(tail(server.log))")
                let metrics = try await adminGet(env, "127.0.0.1:9187", "/metrics", ns: env.tb.srvNS)
                for g in ["gw-a", "gw-c"] {
                    #expect(metricValue(metrics, "mptcp_relay_tunnel_key_connections_total", ["key": g]) >= 2, "no per-key series for \(g)")
                    #expect(metricValue(metrics, "mptcp_relay_tunnel_key_bytes_total", ["key": g, "direction": "down"]) >= 12_000_000)
                }
                #expect(server.isRunning)
            }
        }

        /// A gateway with two servers (scripts/testbed-fleet.sh: each server reached at its own
        /// address): 20 connections to 20 destination hosts spread over both; SIGKILL server 1
        /// while a client keeps opening connections: from 3 s after the kill every connection
        /// goes through server 2 and none is refused; restarted, server 1 takes its share again.
        @Test func aGatewayOnTwoServersFailsOverAndBack() async throws {
            let tb = try await FleetTestbed()
            let tmp = try TempDir(prefix: "fl")
            let started = ProcessBag()
            var failed = true
            defer { if failed { print("logs in \(tmp.path)") } }
            do {
                let bin = try await RelayBinary.path()
                let keys = tmp.file("keys")
                try FileManager.default.createDirectory(at: keys, withIntermediateDirectories: true)
                let key = try TunnelSetup.writeKey(keys.appendingPathComponent("gw.key"))
                let script = tmp.file("servers.py")
                try Files.write(serverSpreadScript, to: script)
                for ns in [tb.gwNS] + tb.serverNS { _ = try await Proc.check(in: ns, ["sysctl", "-qw", "net.ipv4.tcp_fastopen=3"]) }
                // Twenty destination hosts on the balancer's namespace, which both servers route to;
                // each answers with the address the connection came from: which server it took.
                let hosts = (1...20).map { "198.18.1.\($0)" }
                for h in hosts { _ = try await Proc.check(in: tb.lbNS, ["ip", "addr", "add", "\(h)/32", "dev", "lo"]) }
                let who = try BackgroundProcess(in: tb.lbNS, ["python3", script.path, "whoami", "--port", "8080"], log: tmp.file("whoami.log"))
                started.add(who)
                try await Net.waitListening(ns: tb.lbNS, port: 8080, alive: { who.isRunning })
                func startServer(_ k: Int) async throws -> BackgroundProcess {
                    let p = try BackgroundProcess(in: tb.serverNS[k], [bin, "run", "--listen", "\(tb.advertised[k]):4000", "--server", "--key-dir", keys.path,
                                                                       "--allow", "198.18.1.0/24", "--connect-timeout", "2"],
                                                  log: tmp.file("server\(k + 1)-\(Date().timeIntervalSince1970).log"))
                    started.add(p)
                    try await Net.waitListening(ns: tb.serverNS[k], port: 4000, alive: { p.isRunning })
                    return p
                }
                var servers = [try await startServer(0), try await startServer(1)]
                let config = tmp.file("gateway.toml")
                try Files.write("""
                    [[listener]]
                    listen = "0.0.0.0:7000"
                    mode = "redirect"
                    via = ["\(tb.advertised[0]):4000", "\(tb.advertised[1]):4000"]
                    key_file = "\(key)"
                    key_id = "gw"
                    [interception]
                    lan_interfaces = ["lan0"]
                    [admin]
                    listen = "127.0.0.1:9188"
                    """, to: config)
                let check = try await Proc.run(in: tb.gwNS, [bin, "check", "--no-bind", "--config", config.path], timeout: 20)
                print("check (gateway):\n\(check.stdout)")
                #expect(check.succeeded && check.stdout.contains("server \(tb.advertised[1]):4000"), "\(check.summary)")
                let gateway = try BackgroundProcess(in: tb.gwNS, [bin, "run", "--config", config.path], log: tmp.file("gateway.log"))
                started.add(gateway)
                try await Net.waitListening(ns: tb.gwNS, port: 7000, alive: { gateway.isRunning })
                _ = try await Proc.check(in: tb.gwNS, ["nft", "table ip keys_redirect { chain pre { type nat hook prerouting priority dstnat; iifname \"lan0\" tcp dport 8080 redirect to :7000; }; }"])
                func serversInService() async throws -> [Bool] {
                    let r = try await Proc.run(in: tb.gwNS, ["curl", "-sS", "--max-time", "5", "http://127.0.0.1:9188/api/connections"], timeout: 10)
                    return tb.advertised.map { a in Self.serverInService(r.stdout, "\(a):4000") ?? false }
                }
                try await waitFor("both servers in service", timeout: 10) { try await serversInService() == [true, true] }
                let serverAddress = ["10.10.1.2": 1, "10.10.2.2": 2]

                // 1. The spread: one connection per host.
                func spread() async throws -> [Int: Int] {
                    let r = try await Proc.run(in: tb.lanNS, ["python3", script.path, "spread", "--hosts", hosts.joined(separator: ","), "--port", "8080"], timeout: 60)
                    var count: [Int: Int] = [:]
                    for l in r.stdout.split(separator: "\n") where l.hasPrefix("via ") {
                        count[serverAddress[String(l.split(separator: " ")[1])] ?? 0, default: 0] += 1
                    }
                    return count
                }
                let before = try await spread()
                print("tunnel servers: spread of 20 hosts before the kill: server 1 \(before[1] ?? 0), server 2 \(before[2] ?? 0), failed \(before[0] ?? 0)")
                #expect((before[1] ?? 0) > 0 && (before[2] ?? 0) > 0 && (before[1] ?? 0) + (before[2] ?? 0) == 20, "\(before)")

                // 2. A client that keeps opening connections while server 1 is SIGKILLed.
                let loopLog = tmp.file("loop.log")
                let loop = try BackgroundProcess(in: tb.lanNS, ["python3", script.path, "loop", "--hosts", hosts.joined(separator: ","), "--port", "8080",
                                                                "--seconds", "9", "--every", "0.05"], log: loopLog)
                started.add(loop)
                try await Task.sleep(nanoseconds: 1_500_000_000)
                let killedAt = Date().timeIntervalSince1970
                kill(servers[0].pid, SIGKILL)
                started.checksOwnExit(servers[0])
                try await waitFor("server 1 out of service", timeout: 5) { try await serversInService() == [false, true] }
                let outAfter = Date().timeIntervalSince1970 - killedAt
                #expect(outAfter < 3, "server 1 went out of service \(outAfter) s after its death")
                _ = await loop.waitForExit(timeout: 30)
                let results = loop.log.split(separator: "\n").compactMap { l -> (t: Double, ok: Bool, server: Int, ms: Double)? in
                    let f = l.split(separator: " ")
                    guard f.count == 4, let t = Double(f[0]), let ms = Double(f[3]) else { return nil }
                    return (t, f[1] == "ok", serverAddress[String(f[2])] ?? 0, ms)
                }
                let after = results.filter { $0.t > killedAt }
                let settled = after.filter { $0.t > killedAt + 3 }
                let failures = after.filter { !$0.ok }
                let lastViaDead = after.filter { $0.ok && $0.server == 1 }.map(\.t).max().map { $0 - killedAt }
                // The gap a client sees: the longest time between two successive completed
                // connections around the kill, and the slowest single connection.
                let done = results.filter(\.ok).map { $0.t + $0.ms / 1000 }.sorted()
                let gap = zip(done, done.dropFirst()).filter { $0.1 > killedAt - 1 && $0.0 < killedAt + 4 }.map { $0.1 - $0.0 }.max() ?? 0
                let slowest = after.filter { $0.t < killedAt + 4 }.map(\.ms).max() ?? 0
                print("tunnel servers: \(results.count) connections in 9 s, \(after.count) after the kill: \(failures.count) failed, \(after.filter { $0.ok && $0.server == 2 }.count) via server 2; last via server 1 \(lastViaDead.map { String(format: "%.2f", $0) } ?? "-") s after the kill; gap between completed connections \(String(format: "%.0f", gap * 1000)) ms, slowest connection \(String(format: "%.0f", slowest)) ms")
                #expect(settled.count >= 40, "too few connections after the kill to judge: \(settled.count)")
                #expect(settled.allSatisfy { $0.ok && $0.server == 2 }, "from 3 s after the kill every connection must go to server 2: \(settled.filter { !$0.ok || $0.server != 2 }.prefix(5))")
                #expect(failures.isEmpty, "connections refused to the client after the kill: \(failures.prefix(5))\n\(tail(gateway.log, lines: 10))")
                #expect(after.allSatisfy { !$0.ok || $0.server == 2 }, "a connection went through the killed server")
                // Until the pings took it out, server 1's hosts reached it, were refused, and were
                // moved to server 2 before their client saw anything.
                let retried = occurrences(of: "trying \(tb.advertised[1]):4000", in: gateway.log)
                print("tunnel servers: server 1 out of service \(String(format: "%.2f", outAfter)) s after the kill; \(retried) connection(s) retried on server 2 meanwhile")
                #expect(retried > 0, "no connection was retried on server 2: \(tail(gateway.log, lines: 10))")

                // 3. Restarted, server 1 takes new connections again.
                servers[0] = try await startServer(0)
                let restartedAt = Date()
                try await waitFor("server 1 back in service", timeout: 10) { try await serversInService() == [true, true] }
                print("tunnel servers: server 1 back in service \(String(format: "%.2f", Date().timeIntervalSince(restartedAt))) s after its restart")
                let back = try await spread()
                print("tunnel servers: spread of 20 hosts after the restart: server 1 \(back[1] ?? 0), server 2 \(back[2] ?? 0), failed \(back[0] ?? 0)")
                #expect(back == before, "the hosts did not go back to their server: before \(before), after \(back)")
                let status = try await Proc.run(in: tb.gwNS, [bin, "status", "--admin", "127.0.0.1:9188"], timeout: 20)
                #expect(status.stdout.contains("Tunnel server") && status.stdout.contains("in service"), "\(status.summary)")
                #expect(gateway.isRunning)
                failed = false
            } catch {
                recordRelayExits(await started.stopAll())
                await tb.down()
                throw error
            }
            recordRelayExits(await started.stopAll())
            await tb.down()
            tmp.remove()
        }

        /// One gateway's authenticated but idle connections reach its own key's limit (20);
        /// another gateway, from the same address even, still gets its connections. Malformed
        /// key ids, unknown ids, a key that is not the named one's and replayed headers are
        /// refused with nothing dialled; the single-key form still works.
        @Test func perKeyLimitAndBadKeyIDs() async throws {
            try await withEnv(wans: 1, rateMbit: 100) { env in
                let bin = try await RelayBinary.path()
                let script = env.tmp.file("tunnel.py")
                try Files.write(tunnelScript, to: script)
                for ip in [Self.webIP, Self.canaryIP] { _ = try await Proc.check(in: env.tb.srvNS, ["ip", "addr", "add", "\(ip)/32", "dev", "lo"]) }
                let keys = env.tmp.file("keys")
                try FileManager.default.createDirectory(at: keys, withIntermediateDirectories: true)
                let keyA = try TunnelSetup.writeKey(keys.appendingPathComponent("a.key"))
                let keyB = try TunnelSetup.writeKey(keys.appendingPathComponent("b.key"))
                let count = env.tmp.file("canary.count")
                try Files.write(canaryScript, to: env.tmp.file("canary.py"))
                _ = try await env.serverIn(["python3", env.tmp.file("canary.py").path, Self.canaryIP, "9090", count.path], port: 9090, log: "canary.log")
                let holder = env.tmp.file("hold.py")
                try Files.write("import socket,time\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('\(Self.webIP)',9300));s.listen(512)\nheld=[]\nwhile True:\n    c,_=s.accept();held.append(c)\n", to: holder)
                _ = try await env.serverIn(["python3", holder.path], port: 9300, log: "holder.log")
                let server = try await env.daemon(in: env.tb.srvNS, [bin, "run", "--listen", "\(env.tb.srvIP):4000", "--server", "--key-dir", keys.path,
                                                                     "--max-connections-per-key", "20", "--allow", "\(Self.webIP)/32", "--allow", "\(Self.canaryIP)/32",
                                                                     "--admin", "127.0.0.1:9189"], port: 4000, log: "server.log")
                func run(_ args: [String], key: String = keyA) async throws -> String {
                    let r = try await env.lan(["python3", script.path] + args + ["--server", env.tb.srvIP, "--port", "4000", "--key", key], timeout: 60)
                    try #require(r.succeeded, "\(r.summary)\n\(tail(server.log))")
                    return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                }
                // Gateway "a" floods: 30 idle connections held, the 21st on refused.
                let flood = try BackgroundProcess(in: env.tb.lanNS, ["python3", script.path, "hold", "--name", "a", "--n", "30", "--hold", "6",
                                                                     "--dest", Self.webIP, "--dest-port", "9300", "--server", env.tb.srvIP, "--port", "4000", "--key", keyA],
                                                  log: env.tmp.file("flood.log"))
                env.started.add(flood)
                try await waitFor("the flood's verdicts", timeout: 30) { flood.log.contains("case=hold") }
                print("tunnel keys: flood of key a: \(flood.log.trimmingCharacters(in: .whitespacesAndNewlines))")
                #expect(flood.log.contains("reply_ok=20") && flood.log.contains("reply_64=10"), "key a's limit of 20: \(flood.log)")
                // Gateway "b" is untouched by a's flood; a is still at its limit.
                let b = try await run(["hold", "--name", "b", "--n", "5", "--dest", Self.webIP, "--dest-port", "9300"], key: keyB)
                #expect(b.contains("reply_ok=5") && !b.contains("reply_64"), "key b was limited by key a's flood: \(b)")
                let a = try await run(["hold", "--name", "a", "--n", "1", "--dest", Self.webIP, "--dest-port", "9300"])
                #expect(a.contains("reply_64=1"), "key a went past its limit: \(a)")
                let api = try await adminGet(env, "127.0.0.1:9189", "/api/connections", ns: env.tb.srvNS)
                #expect(api.contains("\"key\":\"a\"") && api.contains("\"key\":\"b\""), "no key column in /api/connections")

                // Bad key ids, a key that is not the named one's, a replay: refused, nothing dialled.
                // As gateway b (a is at its limit, which would refuse everything with 64).
                func attack(_ name: String) async throws -> String {
                    try await run([name, "--name", "b", "--wrong-key", keyA, "--dest", Self.canaryIP, "--dest-port", "9090"], key: keyB)
                }
                let expected = [("bad-name", "reply=1 "), ("long-name", "reply=1 "), ("unknown-name", "reply=32 "),
                                ("wrong-key-named", "reply=32 "), ("replay-named", "reply=32 ")]
                for (name, code) in expected {
                    let out = try await attack(name)
                    print("tunnel keys: \(out)")
                    #expect(out.contains(code) && !out.contains("outcome=open"), "\(name): \(out)")
                }
                let dialled = Int((try? String(contentsOf: count, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "0") ?? 0
                #expect(dialled == 1, "the canary was dialled \(dialled) times; only the replay's first, valid use may reach it")
                #expect(await server.waitForLog("unknown key id \"nobody\""), "\(tail(server.log))")
                #expect(await server.waitForLog("replayed"), "\(tail(server.log))")
                // The single-key form (no Key Name TLV): found by the key's hash.
                let unnamed = try await run(["good", "--dest", Self.canaryIP, "--dest-port", "9090"], key: keyB)
                #expect(unnamed.contains("reply=ok"), "the single-key form stopped working: \(unnamed)")
                let metrics = try await adminGet(env, "127.0.0.1:9189", "/metrics", ns: env.tb.srvNS)
                #expect(metricValue(metrics, "mptcp_relay_tunnel_key_refusals_total", ["key": "a"]) >= 11, "\(metrics.split(separator: "\n").filter { $0.contains("tunnel_key") })")
                #expect(metricValue(metrics, "mptcp_relay_tunnel_key_open_connections", ["key": "a"]) == 20)
                _ = await flood.waitForExit(timeout: 30)
                #expect(server.isRunning)
            }
        }

        /// Per key, the remote addresses of the subflows of its open connections (/api JSON).
        static func subflowRemotes(_ json: String) -> [String: [String]] {
            guard let doc = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
                  let connections = doc["connections"] as? [[String: Any]] else { return [:] }
            var result: [String: [String]] = [:]
            for c in connections {
                guard let key = c["key"] as? String else { continue }
                for f in c["subflows"] as? [[String: Any]] ?? [] {
                    if let remote = f["remote"] as? String { result[key, default: []].append(String(remote.split(separator: ":").first ?? "")) }
                }
            }
            return result
        }

        static func serverInService(_ json: String, _ address: String) -> Bool? {
            guard let doc = try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any],
                  let servers = doc["servers"] as? [[String: Any]],
                  let s = servers.first(where: { $0["address"] as? String == address }) else { return nil }
            return s["in_service"] as? Bool
        }
    }
}

/// The destination side of the two-server test: `whoami` answers each connection with the
/// address it came from (which aggregation server dialled it); `spread` opens one connection
/// per host; `loop` keeps opening them and logs "TIME ok|fail SERVER|ERROR MS" per connection.
let serverSpreadScript = #"""
import argparse, socket, sys, threading, time

def whoami(a):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", a.port)); s.listen(512)
    def one(c, peer):
        try:
            c.settimeout(5); c.recv(64); c.sendall(peer[0].encode() + b"\n")
        except OSError:
            pass
        c.close()
    while True:
        c, peer = s.accept()
        threading.Thread(target=one, args=(c, peer), daemon=True).start()

def ask(host, port):
    t = time.time()
    try:
        c = socket.create_connection((host, port), timeout=5)
        c.sendall(b"who\n")
        data = b""
        while not data.endswith(b"\n"):
            d = c.recv(64)
            if not d: break
            data += d
        c.close()
        if not data.endswith(b"\n"):
            return t, False, "empty", time.time() - t
        return t, True, data.decode().strip(), time.time() - t
    except OSError as e:
        return t, False, type(e).__name__, time.time() - t

def spread(a):
    for h in a.hosts.split(","):
        t, ok, who, _ = ask(h, a.port)
        print(("via %s %s" % (who, h)) if ok else ("fail %s %s" % (who, h)), flush=True)

def loop(a):
    hosts = a.hosts.split(","); i = 0
    end = time.time() + a.seconds
    while time.time() < end:
        t, ok, who, took = ask(hosts[i % len(hosts)], a.port); i += 1
        print("%.3f %s %s %.1f" % (t, "ok" if ok else "fail", who, took * 1000), flush=True)
        time.sleep(a.every)

p = argparse.ArgumentParser()
p.add_argument("mode"); p.add_argument("--port", type=int, default=8080); p.add_argument("--hosts", default="")
p.add_argument("--seconds", type=float, default=5); p.add_argument("--every", type=float, default=0.05)
a = p.parse_args()
{"whoami": whoami, "spread": spread, "loop": loop}[a.mode](a)
"""#
