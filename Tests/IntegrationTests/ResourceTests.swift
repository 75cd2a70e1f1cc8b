import Foundation
import Testing
import TestSupport

extension Integration {
    @Suite("Resources")
    struct Resources {
        /// 1,000 echo connections through the relay, then its descriptors (sockets and pipes)
        /// must be back where they started.
        @Test func noFDLeakAfter1000Connections() async throws {
            try await withEnv { env in
                _ = try await env.peerServer("echo-server", [], port: 7100, mptcp: true, log: "server.log")
                let relay = try await env.relay(listen: "\(env.tb.gwLanIP):7100", upstream: "\(env.tb.srvIP):7100")
                let before = Net.openFDs(pid: relay.pid)
                try #require(before.total > 0, "cannot read /proc/\(relay.pid)/fd")

                let r = try await env.lanPeer("many-clients", ["--host", env.tb.gwLanIP, "--port", "7100", "--n", "1000", "--parallel", "8"], timeout: 240)
                try #require(r.succeeded, "clients failed: \(r.summary)")
                #expect(r.stdout.hasPrefix("ok 1000 errors 0"), "client output:\n\(r.stdout)\nrelay log:\n\(tail(relay.log))")
                // Short echoes never take a pipe (a direction splices only after a full 16 KiB
                // read): bulk connections do, and half of them end by RST with bytes in flight.
                try await bulkEchoesHoldPipes(env, relays: [relay.process], host: env.tb.gwLanIP, port: 7100, baselinePipes: before.pipes)

                // Closes complete asynchronously: give the relay a moment to settle.
                var after = Net.openFDs(pid: relay.pid)
                let deadline = Date().addingTimeInterval(10)
                while after.total > before.total && Date() < deadline {
                    try await Task.sleep(nanoseconds: 200_000_000)
                    after = Net.openFDs(pid: relay.pid)
                }
                print("fd check: before \(before.total) (\(before.pipes) pipe), after \(after.total) (\(after.pipes) pipe)")
                #expect(after.total == before.total, "fds before \(before.total), after \(after.total)")
                #expect(after.pipes == before.pipes, "pipe fds before \(before.pipes), after \(after.pipes)")
                #expect(await relay.waitForLog("mptcp=yes", count: 1008), "relay logged \(occurrences(of: "mptcp=yes", in: relay.log)) MPTCP connections, want 1008")
                await relay.stop()
            }
        }
    }
}

/// `n` echo connections of `bytes` each way through `relays` at host:port (peer.py
/// bulk-clients): while all of them are stalled with bytes in flight, the relays must hold
/// more pipes than `baselinePipes` in total (else a leak check after them proves nothing);
/// then half finish byte-exact and half are aborted with RST. The caller checks that the
/// pipes come back.
func bulkEchoesHoldPipes(_ env: Env, relays: [BackgroundProcess], host: String, port: Int, baselinePipes: Int,
                         n: Int = 8, bytes: Int = 1 << 20) async throws {
    let flag = env.tmp.file("bulk-\(port).go")
    let clients = try BackgroundProcess(in: env.tb.lanNS, ["python3", env.peer, "bulk-clients", "--host", host, "--port", "\(port)",
                                                           "--n", "\(n)", "--bytes", "\(bytes)", "--flag", flag.path],
                                        log: env.tmp.file("bulk-\(port).log"))
    env.started.add(clients)
    try await waitFor("\(n) bulk connections to stall with bytes in flight", timeout: 120) {
        clients.log.contains("holding") || !clients.isRunning
    }
    try #require(clients.log.contains("holding \(n)"), "bulk clients: \(clients.log)")
    // Pipes are taken and given back as bytes move: sample for a moment.
    var held = 0
    for _ in 0..<20 where held <= baselinePipes {
        held = max(held, relays.map { Net.openFDs(pid: $0.pid).pipes }.reduce(0, +))
        try await Task.sleep(nanoseconds: 50_000_000)
    }
    print("bulk echoes: \(n) x \(bytes) bytes each way, pipe descriptors while stalled \(held) (baseline \(baselinePipes))")
    #expect(held > baselinePipes, "no pipe was taken by \(n) stalled bulk connections: the leak check would prove nothing")
    try Files.write("go\n", to: flag)
    #expect(await clients.waitForExit(timeout: 120), "the bulk clients never finished: \(clients.log)")
    #expect(clients.log.contains("bulk ok \(n / 2) aborted \(n - n / 2) errors 0"), "bulk clients: \(clients.log)")
}
