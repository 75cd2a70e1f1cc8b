#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The nftables side of `[routing] follow_service`: a flow is pinned to the WAN it first
/// left by, so that a WAN coming back into service (or the relay's table changing its
/// default route) never moves a flow that is working — a NATed flow moved mid-way would
/// leave with the other WAN's source address and die.
///
/// Postrouting writes the WAN's mark (WanPlan.mark(of:)) into the connection's mark the
/// first time one of its packets leaves by a WAN; prerouting copies it to the packet's mark
/// for the routing decision (`fwmark` rules, WanPlan.markPriority), only when nothing else
/// marked the packet (TPROXY's mark wins). A WAN out of service loses its `fwmark` rule and
/// its NATed conntrack entries, so its flows start afresh on a WAN in service.
///
/// One table, `inet mptcp_relay_wan`, owned by the WAN manager: replaced atomically when
/// the WAN list changes (nft 1.0.6 has no `destroy`: declare, delete, define in one
/// transaction), deleted on exit; after a SIGKILL the next start replaces it.
public enum FlowPinning {
    public static let table = "mptcp_relay_wan"

    public static func render(_ plan: WanPlan) -> String {
        let mask = hex(WanPlan.markMask)
        var pin = [
            "type filter hook postrouting priority mangle; policy accept;",
            "ct mark & \(mask) != 0 return",
        ]
        for wan in plan.enabledWans {
            guard let mark = plan.mark(of: wan.interface) else { continue }
            pin.append("oifname \"\(wan.interface)\" ct mark set ct mark | \(hex(mark))")
        }
        // Before TPROXY's chain (mangle, -150): a packet it marks is left alone here anyway.
        let follow = [
            "type filter hook prerouting priority -160; policy accept;",
            "meta mark != 0 return",
            "ct mark & \(mask) != 0 meta mark set ct mark & \(mask)",
        ]
        var out = ["table inet \(table)", "delete table inet \(table)", "table inet \(table) {"]
        out += ["\tchain pin {"] + pin.map { "\t\t" + $0 } + ["\t}"]
        out += ["\tchain follow {"] + follow.map { "\t\t" + $0 } + ["\t}"]
        out.append("}")
        return out.joined(separator: "\n") + "\n"
    }

    /// Loads a ruleset `render` made; nil when done, else what nft said.
    public static func install(_ ruleset: String) -> String? {
        nft(ruleset)
    }

    /// Deletes the table (a no-op when it is not there).
    @discardableResult
    public static func remove() -> String? {
        nft("table inet \(table)\ndelete table inet \(table)\n")
    }

    /// Runs `nft -f -` with `script` on its standard input.
    static func nft(_ script: String) -> String? {
        let candidates: [String] = ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        guard let path = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
            return "nft not found (install nftables)"
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = ["-f", "-"]
        let input = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        do { try process.run() } catch { return "cannot run \(path): \(error)" }
        input.fileHandleForWriting.write(Data(script.utf8))
        try? input.fileHandleForWriting.close()
        let said = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: said, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            return "nft exited \(process.terminationStatus)\(text.isEmpty ? "" : ": " + text)"
        }
        return nil
    }

    private static func hex(_ n: UInt32) -> String { "0x" + String(n, radix: 16) }
}
