import Foundation

/// A private temporary directory, removed by `remove()` (tests call it in teardown).
public struct TempDir: Sendable {
    public let url: URL

    public init(prefix: String = "mptcp-relay-test") throws {
        let base = FileManager.default.temporaryDirectory
        let url = base.appendingPathComponent("\(prefix)-\(getpid())-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        self.url = url
    }

    public var path: String { url.path }

    public func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    public func remove() { try? FileManager.default.removeItem(at: url) }
}

public enum Files {
    /// SHA-256 of a file as lowercase hex, via sha256sum (no extra package dependency).
    public static func sha256(_ url: URL) async throws -> String {
        let out = try await Proc.check(["sha256sum", "--", url.path])
        guard let hex = out.split(separator: " ").first, hex.count == 64 else {
            throw ProcError("unexpected sha256sum output: \(out)")
        }
        return String(hex)
    }

    /// Creates a file of `bytes` random bytes.
    public static func random(_ url: URL, bytes: Int) async throws {
        try await Proc.check(["sh", "-c", "head -c \(bytes) /dev/urandom > \"$1\"", "sh", url.path])
        let size = try size(url)
        guard size == bytes else { throw ProcError("\(url.path) has \(size) bytes, wanted \(bytes)") }
    }

    public static func size(_ url: URL) throws -> Int {
        let attrs = try FileManager.default.attributesOfItem(atPath: url.path)
        return (attrs[.size] as? NSNumber)?.intValue ?? -1
    }

    /// Writes a script (Python helpers live in the tests as strings: test targets here carry
    /// no resources) and returns its URL.
    @discardableResult
    public static func write(_ text: String, to url: URL) throws -> URL {
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }
}
