import Foundation

/// Finds the `mptcp-relay` executable the tests run.
public enum RelayBinary {
    /// In order: $MPTCP_RELAY_BIN; the test bundle's own build directory (swift test builds
    /// every product next to the test bundle, whatever the configuration or scratch path);
    /// otherwise `swift build --product mptcp-relay` once in the repository.
    public static func path() async throws -> String {
        if let env = ProcessInfo.processInfo.environment["MPTCP_RELAY_BIN"], !env.isEmpty {
            guard FileManager.default.isExecutableFile(atPath: env) else {
                throw ProcError("MPTCP_RELAY_BIN=\(env) is not an executable file")
            }
            return env
        }
        let exePath = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = URL(fileURLWithPath: exePath).deletingLastPathComponent()
        // The test binary may sit inside a bundle directory (xctest on other platforms).
        for _ in 0..<3 {
            let candidate = dir.appendingPathComponent("mptcp-relay")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate.path }
            dir = dir.deletingLastPathComponent()
        }
        return try await built.get()
    }

    /// Built at most once per test process.
    private static let built = Once {
        let root = Repo.root.path
        try await Proc.check(["swift", "build", "--package-path", root, "--product", "mptcp-relay"], timeout: 1800)
        let bin = try await Proc.check(["swift", "build", "--package-path", root, "--show-bin-path"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let path = bin + "/mptcp-relay"
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw ProcError("swift build did not produce \(path)")
        }
        return path
    }
}

/// Runs an async computation once and hands every caller its result.
final class Once<T: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var task: Task<T, Error>?
    private let body: @Sendable () async throws -> T

    init(_ body: @escaping @Sendable () async throws -> T) { self.body = body }

    func get() async throws -> T {
        let t = lock.withLock { () -> Task<T, Error> in
            if let task { return task }
            let t = Task { try await body() }
            task = t
            return t
        }
        return try await t.value
    }
}
