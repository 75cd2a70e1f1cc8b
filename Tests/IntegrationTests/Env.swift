import Foundation
import Testing
import TestSupport

/// The classic mptcpd `mptcpize` (LD_PRELOAD), not this package's own: the tests use it to
/// make stock servers speak MPTCP, independently of the code under test.
let classicMptcpize = "/usr/bin/mptcpize"

/// One test's world: a fresh testbed, a temporary directory, the Python peers.
/// Everything started in the namespaces dies with the testbed.
struct Env {
    let tb: Testbed
    let tmp: TempDir
    let peer: String
    /// Keeps every started process alive until teardown (a discarded BackgroundProcess
    /// would be killed by its deinit at once).
    let started = ProcessBag()

    /// A server in the srv namespace, under the classic mptcpize when `mptcp`; returns once
    /// it listens on `port`.
    func server(_ args: [String], port: Int, mptcp: Bool, log: String) async throws -> BackgroundProcess {
        let argv = mptcp ? [classicMptcpize, "run"] + args : args
        let p = try BackgroundProcess(in: tb.srvNS, argv, log: tmp.file(log))
        started.add(p)
        do {
            try await Net.waitListening(ns: tb.srvNS, port: port, alive: { p.isRunning })
        } catch {
            throw ProcError("\(error); server log:\n\(p.log)")
        }
        return p
    }

    /// A Python peer server (see PeerScript.swift) in srv.
    func peerServer(_ sub: String, _ args: [String], port: Int, mptcp: Bool, log: String) async throws -> BackgroundProcess {
        try await server(["python3", peer, sub, "--port", "\(port)"] + args, port: port, mptcp: mptcp, log: log)
    }

    /// The relay in gw.
    func relay(listen: String, upstream: String, extraArgs: [String] = [], log: String = "relay.log") async throws -> Relay {
        let relay = try await Relay(ns: tb.gwNS, listen: listen, upstream: upstream, extraArgs: extraArgs, log: tmp.file(log))
        started.add(relay.process)
        return relay
    }

    /// `mptcp-relay run --config FILE` in `ns` (the file checked first), returned once it
    /// listens on `port` and its workers run.
    func relay(in ns: String, config: String, port: Int, log: String) async throws -> BackgroundProcess {
        let bin = try await RelayBinary.path()
        let check = try await Proc.run([bin, "check", "--config", config, "--no-bind"])
        try #require(check.succeeded, "config check failed: \(check.summary)")
        let relay = try await daemon(in: ns, [bin, "run", "--config", config], port: port, log: log)
        guard await relay.waitForLog("listening on") else { throw ProcError("\(log): the relay never logged that its workers run:\n\(relay.log)") }
        return relay
    }

    /// A command on the LAN client, to completion.
    func lan(_ args: [String], timeout: Double = 120) async throws -> ProcResult {
        try await Proc.run(in: tb.lanNS, args, timeout: timeout)
    }

    /// A Python peer client on the LAN.
    func lanPeer(_ sub: String, _ args: [String], timeout: Double = 120) async throws -> ProcResult {
        try await lan(["python3", peer, sub] + args, timeout: timeout)
    }
}

/// Builds an Env, runs `body`, and tears everything down whether it passed or threw.
func withEnv<T>(wans: Int = 2, rateMbit: Int = 30, bare: Bool = false, nat: Bool = false, _ body: (Env) async throws -> T) async throws -> T {
    let tb = try await Testbed(prefix: "it", wans: wans, rateMbit: rateMbit, bare: bare, nat: nat)
    let tmp: TempDir
    do { tmp = try TempDir(prefix: "it") } catch { await tb.down(); throw error }
    let env = Env(tb: tb, tmp: tmp, peer: tmp.file("peer.py").path)
    do {
        try Files.write(peerScript, to: tmp.file("peer.py"))
        let result = try await body(env)
        recordRelayExits(await env.started.stopAll())
        await tb.down()
        tmp.remove()
        return result
    } catch {
        recordRelayExits(await env.started.stopAll())
        await tb.down()
        // Logs of a failed test are kept on request (they name the files they came from).
        if ProcessInfo.processInfo.environment["MPTCP_RELAY_KEEP_TMP"] == "1" {
            print("kept logs of the failed test in \(tmp.path)")
        } else {
            tmp.remove()
        }
        throw error
    }
}

/// Fails the running test for each relay that did not end with status 0 (a crash at the
/// last close, a hang or a crash on SIGTERM): tests rarely look at how a relay ended.
func recordRelayExits(_ failures: [String]) {
    for f in failures { Issue.record("\(f)") }
}

/// The processes a test started, stopped newest first at teardown. Relays (`mptcp-relay
/// run`) are stopped as a supervisor would (SIGTERM, a second SIGTERM, SIGKILL) and must
/// have ended with status 0, unless the test checks how one ended itself (`checksOwnExit`).
final class ProcessBag: @unchecked Sendable {
    private let lock = NSLock()
    private var procs: [BackgroundProcess] = []
    private var ownExit: Set<Int32> = []

    func add(_ p: BackgroundProcess) { lock.withLock { procs.append(p) } }

    /// The test expects `p` (a relay) to end otherwise than with 0 and checks that itself.
    func checksOwnExit(_ p: BackgroundProcess) { _ = lock.withLock { ownExit.insert(p.pid) } }

    /// Stops everything; returns one line per relay that ended badly.
    @discardableResult
    func stopAll() async -> [String] {
        let (all, own) = lock.withLock { () -> ([BackgroundProcess], Set<Int32>) in defer { procs = [] }; return (procs, ownExit) }
        var failures: [String] = []
        for p in all.reversed() {
            guard p.isRelayRun else { await p.stop(grace: 3); continue }
            let status = await p.stopTwice(grace: 5)
            if status != 0 && !own.contains(p.pid) {
                failures.append("the relay `\(p.command.suffix(from: p.command.firstIndex(of: "run").map { $0 - 1 } ?? 0).joined(separator: " "))` "
                                + "ended with status \(status) (128+N: killed by signal N), log:\n\(tail(p.log, lines: 15))")
            }
        }
        return failures
    }
}

/// Counts occurrences of `needle` in `text`.
func occurrences(of needle: String, in text: String) -> Int {
    text.components(separatedBy: needle).count - 1
}

/// The last lines of a log, for failure messages.
func tail(_ text: String, lines: Int = 30) -> String {
    text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
}

/// The whole integration suite runs serially: the throughput test must not share the two
/// cores with 50 MB transfers, and serial runs keep failures readable. scripts/test.sh runs
/// this target on its own, apart from the other test targets.
@Suite("Integration", .serialized, .enabled(if: Testbed.isSupported, "needs root to build network namespaces"))
struct Integration {}
