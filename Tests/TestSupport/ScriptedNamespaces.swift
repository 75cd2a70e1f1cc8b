import Foundation

/// The life of one set of namespaces built by a testbed script (`up NAME ...` printing
/// KEY=VALUE lines, `down NAME`, `list`): shared by Testbed and FleetTestbed. `down()` and
/// deinit remove it, once.
final class ScriptedNamespaces: @unchecked Sendable {
    let script: URL
    let name: String
    /// What `up` printed.
    let values: [String: String]
    private let output: String
    private let lock = NSLock()
    private var isDown = false

    /// Builds "<prefix>-<pid>-<n>" with `script up NAME arguments`, after removing the ones a
    /// test process that died left behind.
    init(script: URL, prefix: String, arguments: [String]) async throws {
        await Self.reapStale(script: script, prefix: prefix)
        let name = "\(prefix)-\(getpid())-\(Self.counter.next())"
        let out = try await Proc.check([script.path, "up", name] + arguments)
        var kv: [String: String] = [:]
        for line in out.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { kv[String(parts[0])] = String(parts[1]) }
        }
        self.script = script
        self.name = name
        values = kv
        output = out
    }

    func get(_ key: String) throws -> String {
        guard let v = values[key] else { throw ProcError("\(script.lastPathComponent) up printed no \(key): \(output)") }
        return v
    }

    /// Kills everything in the namespaces and deletes them. Idempotent.
    func down() async {
        guard markDown() else { return }
        _ = try? await Proc.run([script.path, "down", name], timeout: 30)
    }

    private func markDown() -> Bool {
        lock.withLock {
            if isDown { return false }
            isDown = true
            return true
        }
    }

    deinit {
        guard markDown() else { return }
        // deinit cannot await: run the script synchronously.
        Proc.runBlocking([script.path, "down", name])
    }

    /// Removes sets named "<prefix>-<pid>-<n>" whose pid no longer exists.
    static func reapStale(script: URL, prefix: String) async {
        guard let out = try? await Proc.check([script.path, "list"]) else { return }
        for name in out.split(separator: "\n") {
            let parts = name.split(separator: "-")
            guard parts.count == 3, parts[0] == prefix, let pid = Int32(parts[1]) else { continue }
            if pid != getpid() && kill(pid, 0) != 0 && errno == ESRCH {
                _ = try? await Proc.run([script.path, "down", String(name)], timeout: 30)
            }
        }
    }

    private static let counter = Counter()
}
