import Foundation

/// A long-running child (a server, the relay) whose output goes to a log file, stopped
/// reliably: SIGTERM, a grace period, then SIGKILL to its whole process group. Killed on
/// deinit as a last resort.
public final class BackgroundProcess: @unchecked Sendable {
    public let command: [String]
    public let logURL: URL
    /// `ip netns exec` and the classic `mptcpize run` both exec in place, so this is the
    /// program's own pid even when it is wrapped by them.
    public let pid: Int32
    private let lock = NSLock()
    private var status: Int32?

    /// Starts `args` (through PATH), stdout and stderr both written to `log`.
    public init(_ args: [String], log: URL) throws {
        command = args
        logURL = log
        pid = try Spawn.start(args, Spawn.Redirect(stdout: log.path, append: true))
    }

    /// Starts `args` inside network namespace `ns`.
    public convenience init(in ns: String, _ args: [String], log: URL) throws {
        try self.init(Proc.inNamespace(ns, args), log: log)
    }

    /// Exit status once it has exited (nil while running); reaps it.
    public var exitStatus: Int32? {
        lock.withLock {
            if status == nil { status = Spawn.poll(pid) }
            return status
        }
    }

    public var isRunning: Bool { exitStatus == nil }

    /// Everything it has written so far.
    public var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Sends a signal to the process (not its group) without waiting.
    public func signal(_ sig: Int32) {
        // Never signal a pid that was reaped: it may belong to someone else by now.
        lock.withLock { if status == nil { kill(pid, sig) } }
    }

    /// Waits until the log contains `text` `count` times (lines may be written a moment
    /// after the event they report, e.g. when a connection ends).
    @discardableResult
    public func waitForLog(_ text: String, count: Int = 1, timeout: Double = 10) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if log.components(separatedBy: text).count - 1 >= count { return true }
            try? await Task.sleep(nanoseconds: 50_000_000)
        }
        return false
    }

    /// Waits for it to exit by itself; false if it is still running at the deadline.
    public func waitForExit(timeout: Double) async -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while isRunning {
            if Date() > deadline { return false }
            try? await Task.sleep(nanoseconds: 10_000_000)
        }
        return true
    }

    /// SIGTERM, then SIGKILL after `grace` seconds. Returns the exit status.
    @discardableResult
    public func stop(grace: Double = 3) async -> Int32 {
        signal(SIGTERM)
        if await !waitForExit(timeout: grace) {
            killGroup()
        }
        // Helpers it forked (in its process group) go too.
        kill(-pid, SIGKILL)
        return exitStatus ?? -1
    }

    /// How the relay is stopped: SIGTERM (open connections get the grace period), a second
    /// SIGTERM after `grace` seconds (the relay resets what is still open and exits), SIGKILL
    /// after `grace` more. Returns the exit status: 0 unless the process failed or hung.
    @discardableResult
    public func stopTwice(grace: Double = 5) async -> Int32 {
        signal(SIGTERM)
        if await !waitForExit(timeout: grace) {
            signal(SIGTERM)
            if await !waitForExit(timeout: grace) { killGroup() }
        }
        kill(-pid, SIGKILL)
        return exitStatus ?? -1
    }

    /// True for `mptcp-relay run ...`, however it is wrapped (ip netns exec, prlimit, env).
    public var isRelayRun: Bool {
        zip(command, command.dropFirst()).contains { ($0.0 as NSString).lastPathComponent == "mptcp-relay" && $0.1 == "run" }
    }

    private func killGroup() {
        lock.withLock {
            guard status == nil else { return }
            kill(-pid, SIGKILL)
            status = Spawn.waitBlocking(pid)
        }
    }

    deinit {
        // Tests should call stop(); this only keeps a failed test from leaving a server behind.
        killGroup()
    }
}
