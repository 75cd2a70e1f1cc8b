import Foundation

/// The namespaces of scripts/testbed-fleet.sh: lan -- gw ==wan1,wan2== lb -- srv1, srv2,
/// with a stateless hashing balancer in lb. `down()` (or deinit) removes it all.
public final class FleetTestbed: @unchecked Sendable {
    public let name: String
    public let lanNS: String
    public let gwNS: String
    public let lbNS: String
    public let serverNS: [String]
    /// The balanced address, on both servers.
    public let vip: String
    /// Each server's own address, routed straight to it.
    public let advertised: [String]
    public let rateMbit: Int

    private let lock = NSLock()
    private var isDown = false

    public static var script: URL { Repo.path("scripts/testbed-fleet.sh") }

    public init(prefix: String = "fl", rateMbit: Int = 50) async throws {
        await FleetTestbed.reapStale(prefix: prefix)
        let name = "\(prefix)-\(getpid())-\(FleetTestbed.counter.next())"
        let out = try await Proc.check([FleetTestbed.script.path, "up", name, "--rate", "\(rateMbit)"])
        var kv: [String: String] = [:]
        for line in out.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { kv[String(parts[0])] = String(parts[1]) }
        }
        func get(_ key: String) throws -> String {
            guard let v = kv[key] else { throw ProcError("testbed-fleet.sh up printed no \(key): \(out)") }
            return v
        }
        self.name = name
        lanNS = try get("LAN_NS"); gwNS = try get("GW_NS"); lbNS = try get("LB_NS")
        serverNS = [try get("SRV1_NS"), try get("SRV2_NS")]
        vip = try get("VIP")
        advertised = [try get("ADV1"), try get("ADV2")]
        self.rateMbit = Int(try get("RATE_MBIT")) ?? rateMbit
    }

    /// The balancer sends no new flow to server `k` (1-based), as a health check would once
    /// it is gone.
    public func drain(_ k: Int) async throws {
        try await Proc.check([FleetTestbed.script.path, "drain", name, "\(k)"])
    }

    public func down() async {
        guard markDown() else { return }
        _ = try? await Proc.run([FleetTestbed.script.path, "down", name], timeout: 30)
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
        Proc.runBlocking([FleetTestbed.script.path, "down", name])
    }

    /// Removes fleets named "<prefix>-<pid>-<n>" whose pid no longer exists.
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
