import Foundation

/// The namespaces of scripts/testbed-fleet.sh: lan -- gw ==wan1,wan2== lb -- srv1, srv2,
/// with a stateless hashing balancer in lb. `down()` (or deinit) removes it all.
public final class FleetTestbed: @unchecked Sendable {
    public let lanNS: String
    public let gwNS: String
    public let lbNS: String
    public let serverNS: [String]
    /// The balanced address, on both servers.
    public let vip: String
    /// Each server's own address, routed straight to it.
    public let advertised: [String]
    public let rateMbit: Int

    private let namespaces: ScriptedNamespaces
    public var name: String { namespaces.name }

    public static var script: URL { Repo.path("scripts/testbed-fleet.sh") }

    public init(prefix: String = "fl", rateMbit: Int = 50) async throws {
        let n = try await ScriptedNamespaces(script: FleetTestbed.script, prefix: prefix, arguments: ["--rate", "\(rateMbit)"])
        namespaces = n
        lanNS = try n.get("LAN_NS"); gwNS = try n.get("GW_NS"); lbNS = try n.get("LB_NS")
        serverNS = [try n.get("SRV1_NS"), try n.get("SRV2_NS")]
        vip = try n.get("VIP")
        advertised = [try n.get("ADV1"), try n.get("ADV2")]
        self.rateMbit = Int(try n.get("RATE_MBIT")) ?? rateMbit
    }

    /// The balancer sends no new flow to server `k` (1-based), as a health check would once
    /// it is gone.
    public func drain(_ k: Int) async throws {
        try await Proc.check([FleetTestbed.script.path, "drain", name, "\(k)"])
    }

    public func down() async { await namespaces.down() }
}
