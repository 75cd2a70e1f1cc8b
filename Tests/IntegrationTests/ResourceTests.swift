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
                #expect(await relay.waitForLog("mptcp=yes", count: 1000), "relay logged \(occurrences(of: "mptcp=yes", in: relay.log)) MPTCP connections, want 1000")
                await relay.stop()
            }
        }
    }
}
