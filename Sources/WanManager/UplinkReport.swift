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

    /// The state in a few words: "in service", "out of service (probes)", "link down".
    public var summary: String {
        if link != "up" { return "link \(link)" }
        if probes == "down" { return "out of service: link up, probes failing" }
        return probes == "off" ? "in service (not probed)" : "in service"
    }
}

/// The manager's reports in a file next to the endpoint record, so `mptcp-relay wan` (a
/// process of its own) shows what the daemon's probes found. Written atomically.
public struct UplinkReportFile: Sendable {
    public let path: String
    public init(path: String) { self.path = path }

    public static func defaultPath() -> String { "/run/mptcp-relay/wan-health-\(OwnedEndpointRecord.namespaceKey()).json" }

    public func save(_ reports: [UplinkReport]) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        try JSONEncoder().encode(reports).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    public func load() -> [UplinkReport]? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try? JSONDecoder().decode([UplinkReport].self, from: data)
    }

    public func remove() { unlink(path) }
}
