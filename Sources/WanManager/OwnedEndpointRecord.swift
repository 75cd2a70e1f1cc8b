#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Netlink

/// The endpoints this gateway created, kept in a file so that a manager killed with SIGKILL
/// recognises them after a restart (and removes or keeps them) without ever claiming an
/// endpoint someone else added. One "ID ADDRESS" per line; written atomically (rename).
public struct OwnedEndpointRecord: Sendable {
    public let path: String

    public init(path: String) { self.path = path }

    /// The default file: one per network namespace, since endpoints are per namespace.
    public static func defaultPath() -> String {
        var st = stat()
        let ns = stat("/proc/self/ns/net", &st) == 0 ? "\(st.st_ino)" : "default"
        return "/run/mptcp-relay/wan-endpoints-\(ns)"
    }

    public func load() -> Set<OwnedEndpoint> {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
        var out = Set<OwnedEndpoint>()
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let id = UInt8(parts[0]), let address = IPAddress(String(parts[1])) else { continue }
            out.insert(OwnedEndpoint(id: id, address: address))
        }
        return out
    }

    public func save(_ owned: Set<OwnedEndpoint>) throws {
        let directory = (path as NSString).deletingLastPathComponent
        if !directory.isEmpty { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) }
        let text = owned.sorted().map { "\($0.id) \($0.address)\n" }.joined()
        try text.write(toFile: path, atomically: true, encoding: .utf8)
    }

    public func remove() { unlink(path) }
}
