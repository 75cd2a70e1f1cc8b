import Foundation

/// What a finished command left behind.
public struct ProcResult: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String
    public let command: [String]

    public var succeeded: Bool { status == 0 }

    /// One line for failure messages: the command, its status and the tail of its stderr.
    public var summary: String {
        "`\(command.joined(separator: " "))` exited \(status): \(stderr.suffix(2000))"
    }
}

public struct ProcError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// Runs commands to completion. Output goes through temporary files rather than pipes so a
/// chatty child can never block on a full pipe while we wait for it to exit.
public enum Proc {
    /// Runs `args` (resolved through PATH) and captures status and output.
    /// The child is killed if it outlives `timeout` seconds.
    @discardableResult
    public static func run(_ args: [String], timeout: Double = 120, stdin: String? = nil) async throws -> ProcResult {
        let dir = try TempDir(prefix: "proc")
        defer { dir.remove() }
        let outPath = dir.file("stdout").path, errPath = dir.file("stderr").path
        var io = Spawn.Redirect(stdout: outPath, stderr: errPath)
        if let stdin {
            let inURL = dir.file("stdin")
            try stdin.write(to: inURL, atomically: true, encoding: .utf8)
            io.stdin = inURL.path
        }
        let pid = try Spawn.start(args, io)

        let deadline = Date().addingTimeInterval(timeout)
        var status = Spawn.poll(pid)
        while status == nil {
            if Date() > deadline {
                kill(-pid, SIGKILL)
                _ = Spawn.waitBlocking(pid)
                throw ProcError("`\(args.joined(separator: " "))` did not finish within \(timeout) s and was killed")
            }
            try? await Task.sleep(nanoseconds: 10_000_000)
            status = Spawn.poll(pid)
        }
        return ProcResult(
            status: status!,
            stdout: (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
            stderr: (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "",
            command: args)
    }

    /// Like `run`, but a non-zero exit is an error carrying the command's stderr.
    @discardableResult
    public static func check(_ args: [String], timeout: Double = 120, stdin: String? = nil) async throws -> String {
        let r = try await run(args, timeout: timeout, stdin: stdin)
        guard r.succeeded else { throw ProcError(r.summary) }
        return r.stdout
    }

    /// Runs to completion without awaiting (for deinit); returns the exit status.
    @discardableResult
    public static func runBlocking(_ args: [String]) -> Int32 {
        guard let pid = try? Spawn.start(args, Spawn.Redirect(stdout: "/dev/null")) else { return -1 }
        return Spawn.waitBlocking(pid)
    }

    /// The argument vector that runs `args` inside network namespace `ns`.
    public static func inNamespace(_ ns: String, _ args: [String]) -> [String] {
        ["ip", "netns", "exec", ns] + args
    }

    /// Runs `args` inside network namespace `ns`.
    @discardableResult
    public static func run(in ns: String, _ args: [String], timeout: Double = 120, stdin: String? = nil) async throws -> ProcResult {
        try await run(inNamespace(ns, args), timeout: timeout, stdin: stdin)
    }

    @discardableResult
    public static func check(in ns: String, _ args: [String], timeout: Double = 120, stdin: String? = nil) async throws -> String {
        try await check(inNamespace(ns, args), timeout: timeout, stdin: stdin)
    }

    /// True when running as root: namespaces and the testbed need it.
    public static var isRoot: Bool { geteuid() == 0 }
}
