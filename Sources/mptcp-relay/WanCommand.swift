#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Foundation
import Netlink
import RelayConfig
import RelayCore
import WanManager

/// `mptcp-relay wan`: each `[[wan]]` of a config as the kernel sees it now.
struct WanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wan",
        abstract: "Show each WAN of a config: link, addresses, gateway, MPTCP endpoints, TCP subflows and bytes.",
        discussion: "Run it in the gateway's network namespace (as root: reading endpoints needs no privilege, but it shows what `run` manages).")

    @Option(help: ArgumentHelp("Config file with [[wan]] tables.", valueName: "file"))
    var config: String

    func run() throws {
        let loaded = try loadConfigOrExit(config)
        // A gateway's tunnel servers: one ping each, now, from here (what the running relay's
        // pings see is in `mptcp-relay status`).
        let servers = TunnelServerProber.targets(loaded.settings, includingSingle: true)
        for target in servers {
            let outcome = TunnelServerProber.ping([target])[0]
            let state: String
            if case .answered = outcome { state = "answers" } else { state = "DOES NOT ANSWER" }
            print("tunnel server \(target.address): \(state) a ping with key \(target.keyName.map { "\"\($0)\"" } ?? "(unnamed)"): \(outcome)")
        }
        guard !loaded.wan.wans.isEmpty else {
            if !servers.isEmpty { return }
            printError("\(config): no [[wan]] tables: nothing to show")
            throw ExitCode(1)
        }
        let view: KernelView
        do { view = try KernelView.read(routing: try RoutingClient(), pm: try PathManagerClient()) } catch {
            printError("wan: cannot read the kernel's state over netlink: \(error)")
            throw ExitCode(1)
        }
        let owned = OwnedEndpointRecord(path: OwnedEndpointRecord.defaultPath()).load()
        let sockets = Self.establishedBySource()
        // What the running relay's probes found (it writes them next to its endpoint record).
        let document = UplinkReportFile(path: UplinkReportFile.defaultPath()).load()
        let reports = document?.uplinks
        print("limits: \(view.limits.map(String.init(describing:)) ?? "?") (config wants \(loaded.wan.limits))")
        print("routed traffic: \(Self.routing(loaded.wan, document))")
        for w in WanStatus.of(loaded.wan, view, owned: owned) {
            var head = "\(w.interface): link \(w.link), table \(w.table)"
            if w.backup { head += ", backup" }
            if !w.enabled { head += ", disabled in the config" }
            print(head)
            print("  addresses: \(w.addresses.isEmpty ? "-" : w.addresses.map(\.description).joined(separator: " "))")
            print("  gateways:  \(w.gateways.isEmpty ? "-" : w.gateways.map(\.description).joined(separator: " "))")
            print("  service:   \(Self.service(reports, w.interface))")
            if let moved = reports?.first(where: { $0.interface == w.interface })?.flowsMoved, moved > 0 {
                print("  released:  \(moved) NATed flow(s) moved off it when it went out of service")
            }
            if w.endpoints.isEmpty { print("  endpoints: -") }
            for (e, mine) in w.endpoints {
                print("  endpoint:  id \(e.id) \(e.address) \(e.flags)\(mine ? "" : " (not created by mptcp-relay)")")
            }
            let subflows = w.addresses.reduce(0) { $0 + (sockets[$1] ?? 0) }
            print("  subflows:  \(subflows) established TCP (MPTCP subflows included) from its addresses")
            let rx = Self.counter(w.interface, "rx_bytes"), tx = Self.counter(w.interface, "tx_bytes")
            print("  bytes:     rx \(rx.map(String.init) ?? "-") tx \(tx.map(String.init) ?? "-")")
        }
    }

    /// Where routed traffic and the gateway's own go now, per family.
    static func routing(_ plan: WanPlan, _ document: WanReportDocument?) -> String {
        guard plan.followsService else { return "main routing table ([routing] follow_service = false: it does not avoid WANs out of service)" }
        guard let document, !document.routing.isEmpty else { return "unknown (no relay manages the WANs of this namespace)" }
        return document.routing.map { r in
            let since = Date(timeIntervalSince1970: r.since).formatted(.iso8601.time(includingFractionalSeconds: false))
            return "\(r.summary) since \(since) UTC, \(r.changes) change(s)"
        }.joined(separator: "\n                ")
    }

    /// "in service", or "out of service: link up, probes failing since ..." with the last round.
    static func service(_ reports: [UplinkReport]?, _ interface: String) -> String {
        guard let reports else { return "unknown (no relay manages the WANs of this namespace)" }
        guard let r = reports.first(where: { $0.interface == interface }) else { return "unknown (not in the running relay's config)" }
        // The relay rewrites the file at least every 5 s while it runs; an old one was left
        // by a relay that was killed.
        let path = UplinkReportFile.defaultPath()
        if let written = (try? FileManager.default.attributesOfItem(atPath: path))?[.modificationDate] as? Date,
           Date().timeIntervalSince(written) > 30 {
            return "unknown (\(path) is \(Int(Date().timeIntervalSince(written))) s old: is the relay running?)"
        }
        let since = Date(timeIntervalSince1970: r.since).formatted(.iso8601.time(includingFractionalSeconds: false))
        var text = "\(r.summary) since \(since) UTC, \(r.failedRounds) of \(r.rounds) probe rounds failed"
        if !r.detail.isEmpty { text += "\n             last round: \(r.detail)" }
        return text
    }

    static func counter(_ interface: String, _ name: String) -> Int? {
        (try? String(contentsOfFile: "/sys/class/net/\(interface)/statistics/\(name)", encoding: .utf8))
            .flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    /// Established TCP sockets per local address, from /proc/net/tcp{,6}: MPTCP subflows are
    /// TCP sockets there too.
    static func establishedBySource() -> [IPAddress: Int] {
        var out: [IPAddress: Int] = [:]
        for (file, family) in [("/proc/net/tcp", IPAddress.Family.v4), ("/proc/net/tcp6", .v6)] {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { continue }
            for line in text.split(separator: "\n").dropFirst() {
                let fields = line.split(separator: " ")
                guard fields.count > 3, fields[3] == "01", let hex = fields[1].split(separator: ":").first,
                      let address = procAddress(String(hex), family) else { continue }
                out[address, default: 0] += 1
            }
        }
        return out
    }

    /// /proc/net/tcp prints addresses as 32-bit words in host order.
    static func procAddress(_ hex: String, _ family: IPAddress.Family) -> IPAddress? {
        let chars = Array(hex)
        guard chars.count == (family == .v4 ? 8 : 32) else { return nil }
        var bytes: [UInt8] = []
        for word in stride(from: 0, to: chars.count, by: 8) {
            var wordBytes: [UInt8] = []
            for i in stride(from: word, to: word + 8, by: 2) {
                guard let b = UInt8(String(chars[i...i + 1]), radix: 16) else { return nil }
                wordBytes.append(b)
            }
            bytes += wordBytes.reversed()
        }
        return IPAddress(family: family, bytes: bytes)
    }
}
