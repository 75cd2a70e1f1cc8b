import Foundation

/// A namespace testbed built by scripts/testbed.sh: lan -- gw ==wan1..N== srv.
/// Call `down()` when done; deinit does it too, so a failed test leaves nothing behind.
public final class Testbed: @unchecked Sendable {
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

    private let namespaces: ScriptedNamespaces
    public var name: String { namespaces.name }

    public static var script: URL { Repo.path("scripts/testbed.sh") }

    /// True when this process may build namespaces.
    public static var isSupported: Bool { Proc.isRoot }

    /// Builds a testbed with a unique name "<prefix>-<pid>-<n>". Testbeds left by a test
    /// process that died are removed first.
    /// `bare`: testbed.sh --bare (no endpoints, limits or policy routes on the gateway).
    /// `nat`: testbed.sh --nat (per-WAN masquerade; the server has no route to the LAN).
    public init(prefix: String = "it", wans: Int = 2, rateMbit: Int = 50, bare: Bool = false, nat: Bool = false) async throws {
        let n = try await ScriptedNamespaces(script: Testbed.script, prefix: prefix,
                                             arguments: ["--wans", "\(wans)", "--rate", "\(rateMbit)"] + (bare ? ["--bare"] : []) + (nat ? ["--nat"] : []))
        namespaces = n
        lanNS = try n.get("LAN_NS"); gwNS = try n.get("GW_NS"); srvNS = try n.get("SRV_NS")
        lanIP = try n.get("LAN_IP"); lanIP6 = try n.get("LAN_IP6")
        gwLanIP = try n.get("GW_LAN_IP"); gwLanIP6 = try n.get("GW_LAN_IP6")
        srvIP = try n.get("SRV_IP"); srvIP6 = try n.get("SRV_IP6")
        srvFarIP = try n.get("SRV_FAR_IP"); srvFarIP6 = try n.get("SRV_FAR_IP6")
        self.wans = Int(try n.get("WANS")) ?? wans
        self.rateMbit = Int(try n.get("RATE_MBIT")) ?? rateMbit
    }

    /// Kills everything in the namespaces and deletes them. Idempotent.
    public func down() async { await namespaces.down() }

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
        await ScriptedNamespaces.reapStale(script: script, prefix: prefix)
    }
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
