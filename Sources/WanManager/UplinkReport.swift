import Foundation

/// One WAN's service state as the manager sees it: what `mptcp-relay wan`, the status API
/// and the metrics show.
public struct UplinkReport: Codable, Sendable, Equatable {
    public var interface: String
    /// "up", "down" or "absent".
    public var link: String
    /// "up", "down", "unknown" (no round finished yet) or "off" (not probed).
    public var probes: String
    /// Takes new subflows and may carry new connections.
    public var inService: Bool
    /// Why not in service, or what answered the last round.
    public var detail: String
    /// Seconds since the epoch of the last change of `inService`.
    public var since: Double
    public var rounds: UInt64
    public var failedRounds: UInt64
    public var transitions: UInt64
    /// NATed flows released from it (conntrack entries deleted) when it went out of service.
    public var flowsMoved: UInt64 = 0
    /// Its probes fail, but so do every other WAN's: used anyway (fail open).
    public var failOpen = false
    /// The last probe round's quickest answer, in milliseconds; nil when it failed or none ran.
    public var rttMs: Double?

    /// The state in a few words: "in service", "out of service (probes)", "link down".
    public var summary: String {
        if link != "up" { return "link \(link)" }
        if probes == "down" && failOpen { return "in service by fail open: probes failing on every WAN" }
        if probes == "down" { return "out of service: link up, probes failing" }
        return probes == "off" ? "in service (not probed)" : "in service"
    }
}

/// Where one family's routed traffic (and the gateway's own) goes now, with
/// `[routing] follow_service`.
public struct RoutingReport: Codable, Sendable, Equatable {
    /// "IPv4" or "IPv6".
    public var family: String
    /// The WAN the relay's table sends it to; nil: the main routing table decides.
    public var via: String?
    public var reason: String
    /// Seconds since the epoch of the last change.
    public var since: Double
    public var changes: UInt64

    public init(family: String, via: String?, reason: String, since: Double, changes: UInt64) {
        self.family = family
        self.via = via
        self.reason = reason
        self.since = since
        self.changes = changes
    }

    public var summary: String { "\(family): \(via.map { "by \($0)" } ?? "main routing table") (\(reason))" }
}

/// What the report file holds.
public struct WanReportDocument: Codable, Sendable, Equatable {
    public var uplinks: [UplinkReport]
    /// Empty when routed traffic does not follow the WANs (`[routing] follow_service = false`).
    public var routing: [RoutingReport]
}

/// The manager's reports in a file next to the endpoint record, so `mptcp-relay wan` (a
/// process of its own) shows what the daemon's probes found. Written atomically.
public struct UplinkReportFile: Sendable {
    public let path: String
    public init(path: String) { self.path = path }

    public static func defaultPath() -> String { "/run/mptcp-relay/wan-health-\(OwnedEndpointRecord.namespaceKey()).json" }

    public func save(_ document: WanReportDocument) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        try JSONEncoder().encode(document).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    public func load() -> WanReportDocument? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode(WanReportDocument.self, from: data)
    }

    public func remove() { unlink(path) }
}
