import Foundation
import Testing
import TestSupport

extension Integration {
    /// Issue 28: two promises no test held the relay to. Past the pipe-memory cap a bulk
    /// connection copies instead of splicing, and is never reset for want of a pipe; a second
    /// SIGTERM resets the connections the first one left their grace period.
    @Suite("Pipe-memory cap and second SIGTERM (issue 28)")
    struct ShutdownAndPipeLimit {
        /// An unprivileged relay (nobody, no capabilities: the per-user pipe budget applies)
        /// with --pipe-memory at its minimum, which no 256 KiB pipe fits: six concurrent 4 MB
        /// downloads all complete byte-exact and end "done", and the relay holds no pipe while
        /// they run.
        @Test func pipeMemoryCapCopiesInsteadOfResetting() async throws {
            try await withEnv(wans: 2, rateMbit: 100) { env in
                let www = env.tmp.file("www")
                try FileManager.default.createDirectory(at: www, withIntermediateDirectories: true)
                try await Files.random(www.appendingPathComponent("body.bin"), bytes: 4_000_000)
                let sha = try await Files.sha256(www.appendingPathComponent("body.bin"))
                _ = try await env.server(["python3", "-m", "http.server", "8080", "--bind", env.tb.srvIP, "--directory", www.path], port: 8080, mptcp: true, log: "http.log")
                let bin = try await RelayBinary.path()
                // The same six downloads through an unprivileged relay on `port`, with `args`:
                // whether they were byte-exact and the most pipe descriptors it held meanwhile.
                func run(port: Int, _ args: [String]) async throws -> (relay: BackgroundProcess, base: Int, most: Int) {
                    let relay = try await env.daemon(in: env.tb.gwNS, ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all",
                                                                       bin, "run", "--listen", "\(env.tb.gwLanIP):\(port)", "--upstream", "\(env.tb.srvIP):8080",
                                                                       "--log-level", "info"] + args, port: port, log: "relay-\(port).log")
                    #expect(await relay.waitForLog("listening on"), "\(tail(relay.log))")
                    let status = try String(contentsOfFile: "/proc/\(relay.pid)/status", encoding: .utf8)
                    #expect(status.contains("Uid:\t65534"), "the relay is not unprivileged:\n\(status)")
                    let base = Net.openFDs(pid: relay.pid).pipes
                    let downloads = try (0..<6).map { i -> (BackgroundProcess, URL) in
                        let file = env.tmp.file("dl-\(port)-\(i).bin")
                        let p = try BackgroundProcess(in: env.tb.lanNS, ["curl", "-sS", "--max-time", "90", "-o", file.path, "http://\(env.tb.gwLanIP):\(port)/body.bin"],
                                                      log: env.tmp.file("curl-\(port)-\(i).log"))
                        env.started.add(p)
                        return (p, file)
                    }
                    var most = 0
                    while downloads.contains(where: { $0.0.isRunning }) {
                        most = max(most, Net.openFDs(pid: relay.pid).pipes)
                        try await Task.sleep(nanoseconds: 50_000_000)
                    }
                    for (i, (curl, file)) in downloads.enumerated() {
                        #expect(curl.exitStatus == 0, "download \(i) through :\(port): \(curl.log)\n\(tail(relay.log))")
                        #expect(try await Files.sha256(file) == sha, "download \(i) through :\(port) differs")
                    }
                    return (relay, base, most)
                }
                // Control: without the cap the same downloads splice (else this proves nothing).
                let free = try await run(port: 7501, [])
                let capped = try await run(port: 7500, ["--pipe-memory", "65536"])
                let relay = capped.relay
                print("pipe-memory cap: pipe descriptors while 6 x 4 MB ran: at most \(capped.most) with --pipe-memory 65536 (baseline \(capped.base)), \(free.most) without (baseline \(free.base))")
                #expect(free.most > free.base, "without the cap no pipe was taken: the capped run proves nothing")
                #expect(capped.most == capped.base, "the relay took pipes beyond its --pipe-memory cap: \(capped.most) pipe descriptors, \(capped.base) before")
                #expect(await relay.waitForLog("closed conn=", count: 6), "\(tail(relay.log))")
                let closes = relay.log.split(separator: "\n").filter { $0.contains("closed conn=") }
                #expect(closes.allSatisfy { $0.contains(" done ") }, "connections ended otherwise than done:\n\(closes.joined(separator: "\n"))")
            }
        }

        /// SIGTERM with --grace 30 leaves an open (silent) connection its grace period; a
        /// second SIGTERM resets it at once, both ways, and the relay exits 0.
        @Test func secondSIGTERMResetsOpenConnectionsAtOnce() async throws {
            try await withEnv(wans: 1, rateMbit: 100) { env in
                let server = try await env.peerServer("rst-server", ["--timeout", "60"], port: 7510, mptcp: true, log: "server.log")
                let relay = try await env.relay(listen: "\(env.tb.gwLanIP):7510", upstream: "\(env.tb.srvIP):7510", extraArgs: ["--grace", "30"])
                let client = try BackgroundProcess(in: env.tb.lanNS, ["python3", env.peer, "rst-client", "--host", env.tb.gwLanIP, "--port", "7510", "--timeout", "60"],
                                                   log: env.tmp.file("client.log"))
                env.started.add(client)
                try await waitFor("the relayed connection to reach the server", timeout: 30) {
                    !(try await Proc.run(in: env.tb.srvNS, ["ss", "-tnH", "state", "established", "( sport = :7510 )"])).stdout.isEmpty
                }
                relay.process.signal(SIGTERM)
                #expect(await relay.waitForLog("received SIGTERM", timeout: 10), "\(tail(relay.log))")
                try await Task.sleep(nanoseconds: 1_500_000_000)
                #expect(client.isRunning && relay.process.isRunning, "the first SIGTERM must leave the open connection its grace period: client \(client.log), relay:\n\(tail(relay.log))")
                let second = Date()
                relay.process.signal(SIGTERM)
                #expect(await client.waitForExit(timeout: 10), "the client still waits after the second SIGTERM")
                let took = Date().timeIntervalSince(second)
                print("second SIGTERM: the client saw '\(client.log.trimmingCharacters(in: .whitespacesAndNewlines))' after \(String(format: "%.2f", took)) s")
                #expect(client.log.contains("client saw RESET"), "the client must see a reset: \(client.log)")
                #expect(took < 5, "the reset took \(took) s")
                #expect(await server.waitForExit(timeout: 10) && server.log.contains("server saw RESET"), "the server side must be reset too: \(server.log)")
                #expect(await relay.process.waitForExit(timeout: 10), "the relay did not exit after the second SIGTERM")
                #expect(relay.process.exitStatus == 0, "exit status \(String(describing: relay.process.exitStatus)) after the second SIGTERM:\n\(tail(relay.log))")
                #expect(relay.log.contains("second stop signal: resetting open connections"), "\(tail(relay.log))")
            }
        }
    }
}
