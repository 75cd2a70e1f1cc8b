import Foundation

/// A finished command: status and output (read from files, so a chatty child never blocks).
struct Outcome {
    let status: Int32
    let stdout: String
    let stderr: String
    let command: [String]

    var summary: String { "`\(command.joined(separator: " "))` exited \(status); stderr: \(stderr.suffix(1500))" }
}

struct TestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A started child process whose stdout/stderr go to files in a private directory.
final class Child: @unchecked Sendable {
    let process = Process()
    let command: [String]
    private let outURL: URL
    private let errURL: URL
    private let dir: URL
    private var finished: Outcome?  // waitUntilExit must not run twice (Foundation can stall)

    init(_ command: [String], environment: [String: String] = [:]) throws {
        self.command = command
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("mptcpize-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        outURL = dir.appendingPathComponent("stdout")
        errURL = dir.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = command
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        process.standardOutput = try FileHandle(forWritingTo: outURL)
        process.standardError = try FileHandle(forWritingTo: errURL)
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    var stdout: String { (try? String(contentsOf: outURL, encoding: .utf8)) ?? "" }
    var stderr: String { (try? String(contentsOf: errURL, encoding: .utf8)) ?? "" }

    /// Waits for exit; a child still running after `timeout` is killed and reported as hung.
    func wait(timeout: Double = 120) throws -> Outcome {
        if let finished { return finished }
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning {
            if Date() > deadline {
                kill(process.processIdentifier, SIGKILL)
                process.waitUntilExit()
                throw TestError("`\(command.joined(separator: " "))` hung (killed after \(timeout) s); stderr: \(stderr.suffix(1500))")
            }
            usleep(20_000)
        }
        process.waitUntilExit()
        defer { try? FileManager.default.removeItem(at: dir) }
        let outcome = Outcome(status: process.terminationStatus, stdout: stdout, stderr: stderr, command: command)
        finished = outcome
        return outcome
    }

    /// SIGKILL (the test runner may hand children an ignored SIGTERM), then collect what it
    /// wrote; safe to call again.
    func stop() -> Outcome {
        if let finished { return finished }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        return (try? wait(timeout: 10)) ?? Outcome(status: -1, stdout: stdout, stderr: stderr, command: command)
    }
}

@discardableResult
func run(_ command: [String], environment: [String: String] = [:], timeout: Double = 120) throws -> Outcome {
    try Child(command, environment: environment).wait(timeout: timeout)
}

/// Runs and throws with the command's stderr unless it exits 0.
@discardableResult
func runChecked(_ command: [String], environment: [String: String] = [:]) throws -> Outcome {
    let outcome = try run(command, environment: environment)
    guard outcome.status == 0 else { throw TestError(outcome.summary) }
    return outcome
}

func sha256(ofFile path: String) throws -> String {
    let out = try runChecked(["sha256sum", path]).stdout
    return String(out.prefix(while: { $0 != " " }))
}

/// A private scratch directory, removed by `remove()`.
struct ScratchDir {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("mptcpize-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { "\(path)/\(name)" }
    func write(_ name: String, _ text: String) throws -> String {
        try text.write(toFile: file(name), atomically: true, encoding: .utf8)
        return file(name)
    }
    func remove() { try? FileManager.default.removeItem(atPath: path) }
}
