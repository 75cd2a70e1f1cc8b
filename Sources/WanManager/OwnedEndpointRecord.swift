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

    /// The default file: one per network namespace, since endpoints are per namespace. Named
    /// by the namespace's cookie (SO_NETNS_COOKIE, Linux 5.14+), which the kernel never
    /// reuses during a boot, unlike the namespace's inode: a record left by a namespace that
    /// is gone must not be taken for a new one's.
    public static func defaultPath() -> String {
        "/run/mptcp-relay/wan-endpoints-\(namespaceKey())"
    }

    static func namespaceKey() -> String {
        let fd = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        if fd >= 0 {
            defer { close(fd) }
            var cookie: UInt64 = 0
            var len = socklen_t(MemoryLayout<UInt64>.size)
            // SO_NETNS_COOKIE = 71 (asm-generic/socket.h); Glibc's module predates it.
            if getsockopt(fd, SOL_SOCKET, 71, &cookie, &len) == 0 { return "c\(cookie)" }
        }
        var st = stat()
        return stat("/proc/self/ns/net", &st) == 0 ? "i\(st.st_ino)" : "default"
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
