import Foundation
import Testing
import TestSupport

extension Integration {
    @Suite("Running out of file descriptors")
    struct DescriptorLimit {
        /// With a tiny RLIMIT_NOFILE and more clients than descriptors, the relay pauses
        /// accepting (it neither spins nor dies) and serves again once clients leave. Each
        /// held connection takes two descriptors, so two limits of different parity make the
        /// shortage land on different calls (accept() or the upstream socket() after it).
        @Test(arguments: [40, 41])
        func pausesAcceptingAndResumes(limit: Int) async throws {
            try await withEnv(wans: 1, rateMbit: 100) { env in
                _ = try await env.peerServer("echo-server", [], port: 7200, mptcp: true, log: "server.log")
                let bin = try await RelayBinary.path()
                let relay = try await env.daemon(in: env.tb.gwNS, ["prlimit", "--nofile=\(limit):\(limit)", bin, "run", "--listen", "\(env.tb.gwLanIP):7200",
                                                                   "--upstream", "\(env.tb.srvIP):7200", "--workers", "1"],
                                                 port: 7200, log: "relay.log")
                try Files.write(holderScript, to: env.tmp.file("holder.py"))
                // 60 clients connect (the kernel completes handshakes from the backlog) and stay.
                let holder = try BackgroundProcess(in: env.tb.lanNS, ["python3", env.tmp.file("holder.py").path, env.tb.gwLanIP, "7200", "60", "5"],
                                                   log: env.tmp.file("holder.log"))
                env.started.add(holder)
                try await waitFor("the holder's connections", timeout: 60) { holder.log.contains("holding") }
                #expect(await relay.waitForLog("accept paused", timeout: 30), "no pause logged:\n\(tail(relay.log))")
                let cpuBefore = cpuSeconds(pid: relay.pid)
                try await Task.sleep(nanoseconds: 2_000_000_000)
                let cpuAfter = cpuSeconds(pid: relay.pid)
                #expect(relay.isRunning, "the relay died: \(tail(relay.log))")
                // A spinning accept loop burns the whole 2 s; paused, the relay wakes ten times a second.
                #expect(cpuAfter - cpuBefore < 0.5, "relay used \(cpuAfter - cpuBefore) s of CPU in 2 s while out of descriptors")
                #expect(await holder.waitForExit(timeout: 15), "holder did not finish")
                let r = try await env.lanPeer("many-clients", ["--host", env.tb.gwLanIP, "--port", "7200", "--n", "20", "--parallel", "2"], timeout: 60)
                #expect(r.stdout.hasPrefix("ok 20 errors 0"), "after the shortage: \(r.stdout)\n\(tail(relay.log))")
                #expect(await relay.waitForLog("accepting again after"), "\(tail(relay.log))")
                // One warning per shortage (at most one per ten seconds), not one per retry.
                #expect(occurrences(of: "accept paused", in: relay.log) == 1, "\(occurrences(of: "accept paused", in: relay.log)) warnings")
                #expect(relay.isRunning)
            }
        }
    }
}

/// utime + stime of a process, in seconds.
func cpuSeconds(pid: Int32) -> Double {
    guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { return 0 }
    let fields = stat[stat.index(after: close)...].split(separator: " ")
    // Fields after the command: state is [0], utime is field 14 overall -> [11], stime [12].
    guard fields.count > 12, let u = Double(fields[11]), let s = Double(fields[12]) else { return 0 }
    return (u + s) / Double(sysconf(Int32(_SC_CLK_TCK)))
}

/// Opens N connections, keeps them for T seconds, closes them. They send nothing, so the
/// relay holds exactly two descriptors for each (no pipe): the parity argument above holds.
let holderScript = #"""
import socket, sys, time
host, port, n, hold = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
socks = []
for _ in range(n):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect((host, port)); socks.append(s)
    except OSError as e:
        print("connect failed:", e)
print("holding", len(socks), flush=True)
time.sleep(hold)
for s in socks: s.close()
print("closed", flush=True)
"""#
