import Foundation

/// A namespace testbed built by scripts/testbed.sh: lan -- gw ==wan1..N== srv.
/// Call `down()` when done; deinit does it too, so a failed test leaves nothing behind.
public final class Testbed: @unchecked Sendable {
    public let name: String
    public let lanNS: String
    public let gwNS: String
    public let srvNS: String
    public let lanIP: String
    public let lanIP6: String
    public let gwLanIP: String
    public let gwLanIP6: String
    public let srvIP: String
    public let srvIP6: String
    /// The server's address beyond every WAN (on its loopback): routed, never on-link.
    public let srvFarIP: String
    public let srvFarIP6: String
    public let wans: Int
    public let rateMbit: Int

    private let lock = NSLock()
    private var isDown = false

    public static var script: URL { Repo.path("scripts/testbed.sh") }

    /// True when this process may build namespaces.
    public static var isSupported: Bool { Proc.isRoot }

    /// Builds a testbed with a unique name "<prefix>-<pid>-<n>". Testbeds left by a test
    /// process that died are removed first.
    /// `bare`: testbed.sh --bare (no endpoints, limits or policy routes on the gateway).
    public init(prefix: String = "it", wans: Int = 2, rateMbit: Int = 50, bare: Bool = false) async throws {
        await Testbed.reapStale(prefix: prefix)
        let name = "\(prefix)-\(getpid())-\(Testbed.counter.next())"
        let out = try await Proc.check([Testbed.script.path, "up", name, "--wans", "\(wans)", "--rate", "\(rateMbit)"] + (bare ? ["--bare"] : []))
        var kv: [String: String] = [:]
        for line in out.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { kv[String(parts[0])] = String(parts[1]) }
        }
        func get(_ key: String) throws -> String {
            guard let v = kv[key] else { throw ProcError("testbed.sh up printed no \(key): \(out)") }
            return v
        }
        self.name = name
        lanNS = try get("LAN_NS"); gwNS = try get("GW_NS"); srvNS = try get("SRV_NS")
        lanIP = try get("LAN_IP"); lanIP6 = try get("LAN_IP6")
        gwLanIP = try get("GW_LAN_IP"); gwLanIP6 = try get("GW_LAN_IP6")
        srvIP = try get("SRV_IP"); srvIP6 = try get("SRV_IP6")
        srvFarIP = try get("SRV_FAR_IP"); srvFarIP6 = try get("SRV_FAR_IP6")
        self.wans = Int(try get("WANS")) ?? wans
        self.rateMbit = Int(try get("RATE_MBIT")) ?? rateMbit
    }

    /// Kills everything in the namespaces and deletes them. Idempotent.
    public func down() async {
        guard markDown() else { return }
        _ = try? await Proc.run([Testbed.script.path, "down", name], timeout: 30)
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
        Proc.runBlocking([Testbed.script.path, "down", name])
    }

    public func link(_ k: Int, up: Bool) async throws {
        try await Proc.check([Testbed.script.path, "link", name, "\(k)", up ? "up" : "down"])
    }

    /// WAN k's far side drops everything; its link stays up.
    public func blackhole(_ k: Int, _ on: Bool) async throws {
        try await Proc.check([Testbed.script.path, "blackhole", name, "\(k)", on ? "on" : "off"])
    }

    public func loss(_ k: Int, percent: Int) async throws {
        try await Proc.check([Testbed.script.path, "loss", name, "\(k)", "\(percent)"])
    }

    /// Removes testbeds named "<prefix>-<pid>-<n>" whose pid no longer exists.
    public static func reapStale(prefix: String) async {
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

/// A process-wide counter for unique names.
final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func next() -> Int {
        lock.withLock {
            value += 1
            return value
        }
    }
}
