import Foundation
import Testing
import TestSupport

extension Integration {
    /// Issue 8: one test per finding of the review, each checked by what a user sees (bytes,
    /// exit status, log lines). Written against the hardened interface (--header-timeout,
    /// host-name upstreams, ring failure exits non-zero); on the relay before the fix they fail.
    @Suite("Hardening (issue 8)")
    struct Hardening {
        static let webIP = "198.18.0.80"

        /// Finding 1: a reload never changes how an accepted connection is handled. A tunnelled
        /// connect is held pending (the server's SYNs are dropped), SIGHUP removes `via`, then
        /// the connect completes: the LAN client must get exactly the destination's bytes, never
        /// the tunnel server's Convert reply spliced in as payload.
        @Test func reloadMidConnectKeepsTunnelSettings() async throws {
            try await withEnv(wans: 1, rateMbit: 100) { env in
                let script = try writeHardeningScript(env)
                let key = try TunnelSetup.writeKey(env.tmp.file("tunnel.key"))
                _ = try await Proc.check(in: env.tb.srvNS, ["ip", "addr", "add", "\(Self.webIP)/32", "dev", "lo"])
                _ = try await startHardeningTunnelServer(env, key: key, ["--allow", "\(Self.webIP)/32"])
                _ = try await env.serverIn(["python3", script, "serve-blob", "--bind", Self.webIP, "--port", "9100", "--bytes", "200000"],
                                           port: 9100, log: "blob.log")
                func config(via: Bool) -> String {
                    """
                    connect_timeout = 20
                    [[listener]]
                    listen = "0.0.0.0:7000"
                    mode = "redirect"
                    \(via ? "via = \"\(env.tb.srvIP):4000\"\nkey_file = \"\(key)\"\nfast_open = false" : "")

                    [interception]
                    lan_interfaces = ["lan0"]
                    exclude = ["192.168.50.0/24", "127.0.0.0/8"]
                    """
                }
                let configFile = env.tmp.file("gateway.toml")
                try Files.write(config(via: true), to: configFile)
                let bin = try await RelayBinary.path()
                let gateway = try await env.daemon(in: env.tb.gwNS, [bin, "run", "--config", configFile.path], port: 7000, log: "gateway.log")
                _ = try await Proc.check(in: env.tb.gwNS, ["nft", "table ip it_redirect { chain pre { type nat hook prerouting priority dstnat; iifname \"lan0\" tcp dport 9100 redirect to :7000; }; }"])

                // The tunnel server's host drops SYNs to :4000: the gateway's connect stays pending.
                _ = try await Proc.check(in: env.tb.srvNS, ["nft", "table inet it_syndrop { chain input { type filter hook input priority 0; tcp dport 4000 tcp flags & (syn | ack) == syn drop; }; }"])
                let client = try BackgroundProcess(in: env.tb.lanNS, ["python3", script, "fetch-blob", "--host", Self.webIP, "--port", "9100",
                                                                      "--bytes", "200000", "--timeout", "40"], log: env.tmp.file("client.log"))
                env.started.add(client)
                try await waitFor("the gateway's tunnel connect to be pending (SYN-SENT to :4000)", timeout: 10) {
                    let r = try await Proc.run(in: env.tb.gwNS, ["ss", "-tnH", "state", "syn-sent", "( dport = :4000 )"])
                    return !r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
                }
                try Files.write(config(via: false), to: configFile)
                gateway.signal(SIGHUP)
                #expect(await gateway.waitForLog("reloaded:"), "no reload logged:\n\(tail(gateway.log))")
                // SYNs pass again: the next retransmission completes the pending connect.
                _ = try await Proc.check(in: env.tb.srvNS, ["nft", "delete", "table", "inet", "it_syndrop"])
                #expect(await client.waitForExit(timeout: 40), "the client never finished:\n\(tail(gateway.log))")
                let result = client.log.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(result.hasPrefix("got=200000 match=yes"),
                        "the LAN client must get the destination's 200000 bytes exactly (a Convert reply starts 0101): \(result)\ngateway:\n\(tail(gateway.log))")
                #expect(gateway.isRunning)
            }
        }

        /// Finding 1, server side: a connection accepted without `proxy_protocol` never gets
        /// a PROXY header because a reload turned it on while its backend connect was pending.
        /// The backend echoes: the client must get back exactly what it sent.
        @Test func reloadMidConnectKeepsProxyProtocolSetting() async throws {
            try await withEnv(wans: 1, rateMbit: 100) { env in
                _ = try await env.peerServer("echo-server", [], port: 7240, mptcp: false, log: "echo.log")
                func config(proxy: Bool) -> String {
                    """
                    connect_timeout = 20
                    [[listener]]
                    listen = "\(env.tb.gwLanIP):7240"
                    mode = "server"
                    backend = "\(env.tb.srvIP):7240"
                    proxy_protocol = \(proxy)
                    """
                }
                let configFile = env.tmp.file("server.toml")
                try Files.write(config(proxy: false), to: configFile)
                let bin = try await RelayBinary.path()
                let relay = try await env.daemon(in: env.tb.gwNS, [bin, "run", "--config", configFile.path], port: 7240, log: "relay.log")
                _ = try await Proc.check(in: env.tb.srvNS, ["nft", "table inet it_syndrop { chain input { type filter hook input priority 0; tcp dport 7240 tcp flags & (syn | ack) == syn drop; }; }"])
                let client = try BackgroundProcess(in: env.tb.lanNS, ["python3", "-c", echoOnceSnippet(env.tb.gwLanIP, 7240)], log: env.tmp.file("client.log"))
                env.started.add(client)
                try await waitFor("the backend connect to be pending (SYN-SENT to :7240)", timeout: 10) {
                    let r = try await Proc.run(in: env.tb.gwNS, ["ss", "-tnH", "state", "syn-sent", "( dport = :7240 )"])
                    return !r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
                }
                try Files.write(config(proxy: true), to: configFile)
                relay.signal(SIGHUP)
                #expect(await relay.waitForLog("reloaded:"), "no reload logged:\n\(tail(relay.log))")
                _ = try await Proc.check(in: env.tb.srvNS, ["nft", "delete", "table", "inet", "it_syndrop"])
                #expect(await client.waitForExit(timeout: 40), "the client never finished:\n\(tail(relay.log))")
                let echoed = client.log.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(echoed == "echo=68656c6c6f", "the backend got something other than the client's bytes (a PROXY v2 header starts 0d0a0d0a): \(echoed)\n\(tail(relay.log))")
                #expect(relay.isRunning)
            }
        }

        /// Finding 2 (the deadline half; TunnelFloodTests has the flood): `--connect-timeout 0`
        /// must not switch off the header deadline. A client that sends one byte of header and
        /// then nothing is answered Malformed Message and closed (default --header-timeout 5 s).
        @Test func headerDeadlineHoldsWithConnectTimeoutZero() async throws {
            try await withEnv(wans: 1, rateMbit: 100) { env in
                let key = try TunnelSetup.writeKey(env.tmp.file("tunnel.key"))
                let server = try await startHardeningTunnelServer(env, key: key, ["--connect-timeout", "0"])
                let r = try await env.lan(["python3", "-c", trickleSnippet(env.tb.srvIP, 4000, wait: 25)], timeout: 40)
                let outcome = r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                #expect(outcome.hasPrefix("closed") || outcome.hasPrefix("reset"), "a client stuck in its header was kept: \(outcome) \(r.stderr)\nserver:\n\(tail(server.log))")
                #expect(outcome.contains("reply=0102"), "want an Error reply (Malformed Message) before the close: \(outcome)")
                #expect(await server.waitForLog("refused"), "\(tail(server.log))")
                #expect(server.isRunning)
            }
        }

        /// Finding 3, transparent side: an address the gateway gains after start is protected by
        /// the loop guard like the ones it had. A LAN client connecting to the listener through
        /// the new address is refused ("loop"), not relayed to the relay itself again and again.
        @Test func loopGuardCoversAddressesAddedAfterStart() async throws {
            try await withEnv(wans: 1, rateMbit: 100) { env in
                let bin = try await RelayBinary.path()
                // A low limit bounds the self-connection chain of a relay without the guard.
                let relay = try await env.daemon(in: env.tb.gwNS, [bin, "run", "--listen", "0.0.0.0:7000", "--transparent", "--max-connections", "64",
                                                                   "--connect-timeout", "3"], port: 7000, log: "relay.log")
                // Control: an address the relay had at start.
                let before = try await env.lanPeer("probe-close", ["--host", env.tb.gwLanIP, "--port", "7000", "--timeout", "10"], timeout: 30)
                #expect(before.stdout.hasPrefix("EOF") || before.stdout.hasPrefix("RESET") || before.stdout.hasPrefix("REFUSED"), "\(before.stdout)")
                #expect(await relay.waitForLog("loop"), "the guard missed a start-time address:\n\(tail(relay.log))")

                _ = try await Proc.check(in: env.tb.gwNS, ["ip", "addr", "add", "192.168.77.1/32", "dev", "lan0"])
                // A gained address is used seconds later (DHCP, SLAAC), not in the same
                // millisecond: give a relay that learns of it asynchronously (netlink) a moment.
                try await Task.sleep(nanoseconds: 2_000_000_000)
                let after = try await env.lanPeer("probe-close", ["--host", "192.168.77.1", "--port", "7000", "--timeout", "10"], timeout: 30)
                #expect(after.stdout.hasPrefix("EOF") || after.stdout.hasPrefix("RESET") || after.stdout.hasPrefix("REFUSED"),
                        "a connection to the relay's own listener on a new address was kept open: \(after.stdout)\n\(tail(relay.log))")
                #expect(await relay.waitForLog("loop", count: 2), "no loop refusal for 192.168.77.1:\n\(tail(relay.log))")
                #expect(await relay.waitForLine { $0.contains("loop") && $0.contains("192.168.77.1") }, "no loop line names 192.168.77.1:\n\(tail(relay.log))")
                #expect(relay.isRunning)
            }
        }

        /// Finding 3, tunnel side: the tunnel server denies its own addresses, including one it
        /// gained after start, and dials nothing for such a request.
        @Test func tunnelServerDeniesOwnAddressesAddedAfterStart() async throws {
            try await withEnv(wans: 1, rateMbit: 100) { env in
                let script = env.tmp.file("tunnel.py")
                try Files.write(tunnelScript, to: script)
                let key = try TunnelSetup.writeKey(env.tmp.file("tunnel.key"))
                let newIP = "198.51.100.99"
                // The allow is less specific than an own address (/32), so it lifts any default
                // denial of the documentation range but never the own-address one.
                let server = try await startHardeningTunnelServer(env, key: key, ["--allow", "198.51.100.0/24"])
                func request() async throws -> String {
                    let r = try await env.lan(["python3", script.path, "denied", "--server", env.tb.srvIP, "--port", "4000",
                                               "--key", key, "--dest", newIP, "--dest-port", "9090"], timeout: 30)
                    try #require(r.succeeded, "\(r.summary)\nserver:\n\(tail(server.log))")
                    return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                }
                // Control: before the address exists the policy permits it (the connect then fails).
                let control = try await request()
                #expect(!control.contains("reply=32"), "\(newIP) was denied before it was the server's: \(control)\n\(tail(server.log))")

                _ = try await Proc.check(in: env.tb.srvNS, ["ip", "addr", "add", "\(newIP)/32", "dev", "lo"])
                try await Task.sleep(nanoseconds: 2_000_000_000)   // as above: learnt asynchronously
                let count = env.tmp.file("canary.count")
                try Files.write(canaryScript, to: env.tmp.file("canary.py"))
                _ = try await env.serverIn(["python3", env.tmp.file("canary.py").path, newIP, "9090", count.path], port: 9090, log: "canary.log")
                let denied = try await request()
                #expect(denied.contains("reply=32"), "the server's new own address was not denied: \(denied)\n\(tail(server.log))")
                let dialled = Int((try? String(contentsOf: count, encoding: .utf8)) ?? "0") ?? 0
                #expect(dialled == 0, "the server connected to its own new address \(dialled) time(s)")
                #expect(await server.waitForLog("destination denied"), "\(tail(server.log))")
                #expect(server.isRunning)
            }
        }

        /// Finding 4: a timeout too large for the nanosecond clock (1e10 s, beyond Int64) never
        /// traps. The relay either refuses it at start with a message naming the option, or
        /// runs with it: relays, survives its timer ticks, and stops cleanly on SIGTERM.
        @Test(arguments: ["--idle-timeout", "--connect-timeout", "--grace"])
        func hugeTimeoutNeverTraps(option: String) async throws {
            try await withEnv(wans: 1, rateMbit: 100) { env in
                _ = try await env.peerServer("echo-server", [], port: 7230, mptcp: true, log: "server.log")
                let bin = try await RelayBinary.path()
                let relay = try BackgroundProcess(in: env.tb.gwNS, [bin, "run", "--listen", "\(env.tb.gwLanIP):7230", "--upstream", "\(env.tb.srvIP):7230",
                                                                    option, "1e10"], log: env.tmp.file("relay.log"))
                env.started.add(relay)
                env.started.checksOwnExit(relay)  // a refusal at start exits 1 or 64, checked below
                let listening = (try? await Net.waitListening(ns: env.tb.gwNS, port: 7230, alive: { relay.isRunning })) != nil
                let name = String(option.dropFirst(2))
                if !listening || !relay.isRunning {
                    #expect(await relay.waitForExit(timeout: 10))
                    #expect(relay.exitStatus == 1 || relay.exitStatus == 64, "\(option) 1e10: exit status \(String(describing: relay.exitStatus)) (a crash is 128+signal):\n\(tail(relay.log))")
                    #expect(relay.log.contains(name) && !relay.log.contains("Fatal error"), "the refusal does not name \(option):\n\(tail(relay.log))")
                    return
                }
                let r = try await env.lanPeer("many-clients", ["--host", env.tb.gwLanIP, "--port", "7230", "--n", "5", "--parallel", "1"], timeout: 60)
                #expect(r.stdout.hasPrefix("ok 5 errors 0"), "\(option) 1e10: \(r.stdout)\n\(tail(relay.log))")
                // The worker's tick (1 s) reads every timeout: let two pass.
                try await Task.sleep(nanoseconds: 2_500_000_000)
                try #require(relay.isRunning, "\(option) 1e10: the relay died:\n\(tail(relay.log))")
                relay.signal(SIGTERM)
                #expect(await relay.waitForExit(timeout: 10), "no exit after SIGTERM")
                #expect(relay.exitStatus == 0, "\(option) 1e10: exit status \(String(describing: relay.exitStatus)) after SIGTERM:\n\(tail(relay.log))")
                #expect(!relay.log.contains("Fatal error"), "\(tail(relay.log))")
            }
        }

        /// Finding 5: a worker that cannot set up its io_uring (seccomp refuses io_uring_setup)
        /// makes the process exit non-zero, after saying why, and READY=1 is never sent, so that
        /// systemd's Restart=on-failure acts.
        @Test func ringFailureExitsNonZeroWithoutReady() async throws {
            try await withEnv(wans: 1, rateMbit: 100) { env in
                let source = try Files.write(noRingWrapperSource, to: env.tmp.file("noring.c"))
                let wrapper = env.tmp.file("noring").path
                try await Proc.check(["cc", "-O1", "-o", wrapper, source.path])
                let notify = try NotifySocket(path: env.tmp.file("notify.sock").path)
                let bin = try await RelayBinary.path()
                let relay = try BackgroundProcess(in: env.tb.gwNS, ["env", "NOTIFY_SOCKET=\(notify.path)", wrapper, bin, "run",
                                                                    "--listen", "\(env.tb.gwLanIP):7400", "--upstream", "\(env.tb.srvIP):7400"],
                                                  log: env.tmp.file("relay.log"))
                env.started.add(relay)
                env.started.checksOwnExit(relay)  // must exit non-zero, checked below
                #expect(await relay.waitForExit(timeout: 20), "the relay kept running without a ring:\n\(tail(relay.log))")
                let status = relay.exitStatus
                #expect(status != nil && status != 0, "exit status \(String(describing: status)) after the ring failed:\n\(tail(relay.log))")
                #expect(relay.log.contains("io_uring"), "the log does not say what failed:\n\(tail(relay.log))")
                var messages: [String] = []
                while let m = notify.receive(timeout: 0.5) { messages.append(m) }
                #expect(!messages.contains { $0.contains("READY=1") }, "READY=1 was sent although no worker could run: \(messages)")
            }
        }

        /// Finding 6: a descriptor shortage never resets a healthy idle connection. Eight
        /// connections go idle (their pipes are returned), fillers exhaust the descriptors
        /// (accepting pauses; at most three stay free, not enough for two pipes), then the
        /// idle ones resume all at once, both ways: each must echo 2 MB byte-exact.
        @Test func idleConnectionsSurviveDescriptorShortage() async throws {
            try await withEnv(wans: 1, rateMbit: 100) { env in
                let script = try writeHardeningScript(env)
                _ = try await env.peerServer("echo-server", [], port: 7210, mptcp: true, log: "server.log")
                let bin = try await RelayBinary.path()
                let limit = 64
                let relay = try await env.daemon(in: env.tb.gwNS, ["prlimit", "--nofile=\(limit):\(limit)", bin, "run", "--listen", "\(env.tb.gwLanIP):7210",
                                                                   "--upstream", "\(env.tb.srvIP):7210", "--workers", "1"],
                                                 port: 7210, log: "relay.log")
                let basePipes = Net.openFDs(pid: relay.pid).pipes
                let flag = env.tmp.file("go")
                let clients = try BackgroundProcess(in: env.tb.lanNS, ["python3", script, "idle-hold", "--host", env.tb.gwLanIP, "--port", "7210",
                                                                       "--idle", "8", "--fillers", "300", "--flag", flag.path],
                                                    log: env.tmp.file("clients.log"))
                env.started.add(clients)
                try await waitFor("the idle connections and the fillers", timeout: 60) { clients.log.contains("fillers") || !clients.isRunning }
                try #require(clients.log.contains("idle ready 8"), "\(clients.log)\n\(tail(relay.log))")
                #expect(await relay.waitForLog("accept paused", timeout: 15), "no descriptor shortage happened:\n\(tail(relay.log))")
                // Spare pipes are trimmed on the worker's tick, and the fillers take what frees up.
                try await waitFor("the relay's spare pipes to be trimmed", timeout: 10) { Net.openFDs(pid: relay.pid).pipes <= basePipes }
                try await waitFor("the relay's descriptors to be exhausted (at most 3 free of \(limit))", timeout: 15) {
                    limit - Net.openFDs(pid: relay.pid).total <= 3
                }
                try Files.write("go\n", to: flag)
                #expect(await clients.waitForExit(timeout: 90), "the clients never finished:\n\(clients.log)")
                #expect(clients.log.contains("resumed ok 8 errors 0"), "idle connections were hurt by the shortage:\n\(clients.log)\nrelay:\n\(tail(relay.log))")
                #expect(relay.isRunning, "the relay died:\n\(tail(relay.log))")
            }
        }

        /// Finding 8: `--upstream` takes a host name, resolved by the system resolver, and
        /// every address is tried in order: the first one the name resolves to refuses, the
        /// next one serves, and every client is served byte-exact.
        @Test func hostNameUpstreamTriesEveryAddress() async throws {
            try await withEnv(wans: 1, rateMbit: 100) { env in
                // `ip netns exec` bind-mounts /etc/netns/NS/hosts over /etc/hosts.
                let etc = URL(fileURLWithPath: "/etc/netns/\(env.tb.gwNS)")
                try FileManager.default.createDirectory(at: etc, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(at: etc) }
                _ = try await Proc.check(in: env.tb.srvNS, ["ip", "addr", "add", "10.1.0.3/24", "dev", "wan1"])
                try Files.write("127.0.0.1 localhost\n10.1.0.3 backend.test\n10.1.0.2 backend.test\n", to: etc.appendingPathComponent("hosts"))
                // The order the system resolver gives (RFC 6724 sorting may reorder the file).
                let resolved = try await Proc.check(in: env.tb.gwNS, ["getent", "ahostsv4", "backend.test"])
                let order = resolved.split(separator: "\n").compactMap { $0.split(separator: " ").first.map(String.init) }
                    .reduce(into: [String]()) { if !$0.contains($1) { $0.append($1) } }
                try #require(order.count == 2, "backend.test should resolve to two addresses in \(env.tb.gwNS): \(resolved)")
                let (dead, alive) = (order[0], order[1])
                // Only the second address serves: the first one refuses (nothing listens there).
                _ = try await env.peerServer("echo-server", ["--bind", alive], port: 7220, mptcp: true, log: "server.log")
                // Count the SYNs each address gets: a relay that dialled only the last address
                // would serve every client too, so the dead one must have been dialled.
                _ = try await Proc.check(in: env.tb.srvNS, ["nft", """
                    table inet it_dials { chain input { type filter hook input priority -10;
                        ip daddr \(dead) tcp dport 7220 tcp flags & (syn | ack) == syn counter;
                        ip daddr \(alive) tcp dport 7220 tcp flags & (syn | ack) == syn counter; }; }
                    """])
                let relay = try await env.relay(listen: "\(env.tb.gwLanIP):7220", upstream: "backend.test:7220")
                let r = try await env.lanPeer("many-clients", ["--host", env.tb.gwLanIP, "--port", "7220", "--n", "10", "--parallel", "2"], timeout: 90)
                #expect(r.stdout.hasPrefix("ok 10 errors 0"), "through backend.test (\(dead) dead, \(alive) alive): \(r.stdout)\n\(tail(relay.log))")
                let rules = try await Proc.check(in: env.tb.srvNS, ["nft", "list", "table", "inet", "it_dials"])
                func syns(_ address: String) -> Int {
                    let rule = rules.split(separator: "\n").first { $0.contains("daddr \(address) ") } ?? ""
                    return Int(rule.components(separatedBy: "packets ").dropFirst().first?.prefix { $0.isNumber } ?? "") ?? -1
                }
                print("host-name upstream: SYNs to \(dead) (refuses) \(syns(dead)), to \(alive) (serves) \(syns(alive))")
                #expect(syns(dead) >= 1, "the relay never dialled \(dead), the first address of backend.test:\n\(rules)")
                #expect(syns(alive) >= 10, "\(alive) got \(syns(alive)) SYNs for 10 clients:\n\(rules)")
                #expect(relay.process.isRunning)
            }
        }
    }
}

/// Writes the hardening peers into the test's directory; returns the script's path.
func writeHardeningScript(_ env: Env) throws -> String {
    let url = env.tmp.file("hardening.py")
    if !FileManager.default.fileExists(atPath: url.path) { try Files.write(hardeningScript, to: url) }
    return url.path
}

/// A tunnel server on the server's WAN address, port 4000, with `key` and `args`.
func startHardeningTunnelServer(_ env: Env, key: String, _ args: [String], log: String = "tunnel-server.log") async throws -> BackgroundProcess {
    let bin = try await RelayBinary.path()
    _ = try await Proc.check(in: env.tb.srvNS, ["sysctl", "-qw", "net.ipv4.tcp_fastopen=3"])
    return try await env.daemon(in: env.tb.srvNS, [bin, "run", "--listen", "\(env.tb.srvIP):4000", "--server", "--key-file", key] + args,
                                port: 4000, log: log)
}

/// A tunnel client that sends the first byte of a Convert header and nothing more, then
/// reports how the server ended it: "closed reply=HEX", "reset reply=HEX" or "open".
func trickleSnippet(_ host: String, _ port: Int, wait: Double) -> String {
    """
    import socket
    s = socket.create_connection(("\(host)", \(port)), timeout=10)
    s.send(b"\\x01")
    s.settimeout(\(wait))
    data, outcome = b"", "closed"
    try:
        while True:
            d = s.recv(4096)
            if not d: break
            data += d
    except ConnectionResetError:
        outcome = "reset"
    except socket.timeout:
        outcome = "open"
    print(outcome, "reply=" + data[:8].hex())
    """
}

/// Sends "hello", half-closes, prints what came back as hex ("echo=..."), or the error.
func echoOnceSnippet(_ host: String, _ port: Int) -> String {
    """
    import socket
    try:
        s = socket.create_connection(("\(host)", \(port)), timeout=10)
        s.sendall(b"hello"); s.shutdown(socket.SHUT_WR)
        s.settimeout(30)
        data = b""
        while True:
            d = s.recv(4096)
            if not d: break
            data += d
        print("echo=" + data.hex())
    except Exception as e:
        print(type(e).__name__, e)
    """
}

extension BackgroundProcess {
    /// Waits until some line of the log satisfies `matches` (the relay writes its log from
    /// a writer thread: a line may land a moment after the event).
    func waitForLine(timeout: Double = 10, _ matches: (Substring) -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if log.split(separator: "\n").contains(where: matches) { return true }
            try? await Task.sleep(nanoseconds: 100_000_000)
        }
        return false
    }
}
