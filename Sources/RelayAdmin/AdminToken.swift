#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The bearer token of a non-loopback admin listener, read from a file of mode 0600.
public struct AdminToken: Sendable {
    let value: [UInt8]

    public struct LoadError: Error, CustomStringConvertible {
        public let description: String
    }

    public init(value: String) { self.value = Array(value.utf8) }

    /// The token as sent in the header (for clients: `mptcp-relay status`).
    public var text: String { String(decoding: value, as: UTF8.self) }

    /// Reads `path`; refuses a file others can read (the token is a password) or an empty one.
    public static func load(path: String) throws(LoadError) -> AdminToken {
        var st = stat()
        guard stat(path, &st) == 0 else {
            throw LoadError(description: "admin token file \(path): \(String(cString: strerror(errno))) (create it with: openssl rand -hex 32 > \(path); chmod 600 \(path))")
        }
        if st.st_mode & 0o077 != 0 {
            throw LoadError(description: "admin token file \(path) is readable by others (mode \(String(st.st_mode & 0o777, radix: 8))): chmod 600 \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw LoadError(description: "admin token file \(path) cannot be read as UTF-8 text")
        }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard token.count >= 16, !token.contains(where: \.isWhitespace) else {
            throw LoadError(description: "admin token file \(path) must hold one token of 16 or more characters without spaces (openssl rand -hex 32)")
        }
        return AdminToken(value: token)
    }

    /// Checks an `Authorization` header value; the comparison time does not depend on where
    /// the first difference is.
    public func accepts(authorization: String?) -> Bool {
        guard let authorization, authorization.hasPrefix("Bearer ") else { return false }
        let given = Array(authorization.dropFirst("Bearer ".count).utf8)
        guard given.count == value.count else { return false }
        var diff: UInt8 = 0
        for (a, b) in zip(given, value) { diff |= a ^ b }
        return diff == 0
    }
}
