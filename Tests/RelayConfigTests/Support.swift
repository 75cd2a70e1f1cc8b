import Foundation
import RelayConfig

/// The origin used in parsed texts: messages start with "gw.toml:LINE:".
let origin = "gw.toml"

/// The error parsing `text` throws, nil when it parses.
func parseError(_ text: String, baseDirectory: String = ".") -> ConfigError? {
    do {
        _ = try RelayConfigFile.parse(text: text, origin: origin, baseDirectory: baseDirectory)
        return nil
    } catch {
        return error
    }
}

/// A fresh directory under /tmp, removed by `cleanup`.
struct TempDirectory {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "relayconfig-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func write(_ name: String, _ text: String, mode: Int = 0o600) throws -> String {
        let file = path + "/" + name
        try text.write(toFile: file, atomically: false, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: file)
        return file
    }
    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

/// 64 hex digits: a well-formed tunnel key.
let sampleKeyHex = String(repeating: "0123456789abcdef", count: 4)

struct CommandResult {
    var status: Int32
    var output: String
    var error: String
}

/// Runs a program to completion, with optional standard input. Output goes to files, not
/// pipes, so a chatty child cannot fill one pipe while we wait on the other; a child still
/// running after 60 s is killed.
@discardableResult
func run(_ arguments: [String], input: String? = nil) throws -> CommandResult {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("relayconfig-run-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let outURL = dir.appendingPathComponent("out"), errURL = dir.appendingPathComponent("err")
    _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
    _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    process.arguments = arguments
    let inPipe = Pipe()
    process.standardOutput = try FileHandle(forWritingTo: outURL)
    process.standardError = try FileHandle(forWritingTo: errURL)
    process.standardInput = inPipe
    try process.run()
    if let input { inPipe.fileHandleForWriting.write(Data(input.utf8)) }
    try inPipe.fileHandleForWriting.close()
    let deadline = Date().addingTimeInterval(60)
    while process.isRunning && Date() < deadline { usleep(20_000) }
    if process.isRunning { process.terminate() }
    process.waitUntilExit()
    return CommandResult(status: process.terminationStatus,
                         output: (try? String(contentsOf: outURL, encoding: .utf8)) ?? "",
                         error: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "")
}

/// The repository root (Tests/RelayConfigTests/ is two levels below it).
let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()
