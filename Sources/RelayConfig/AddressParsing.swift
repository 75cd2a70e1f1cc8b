#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket
import RelayCore

extension TableReader {
    /// A `HOST:PORT` / `[IPv6]:PORT` literal (no name resolution: a relay must not depend
    /// on DNS to start). Port 0 and, unless `wildcardAllowed`, 0.0.0.0 / :: are refused.
    func address(_ key: String, wildcardAllowed: Bool) throws(ConfigError) -> SocketAddress? {
        guard let text = try string(key) else { return nil }
        return try address(text, key: key, line: line(of: key), wildcardAllowed: wildcardAllowed)
    }

    /// `key = "HOST:PORT"` or `key = ["HOST:PORT", ...]` (each element checked like `address`,
    /// its complaint naming its own line). Nil when the key is absent.
    func addresses(_ key: String, wildcardAllowed: Bool) throws(ConfigError) -> [(address: SocketAddress, line: Int?)]? {
        guard let value = table[key] else { return nil }
        if value.string != nil {
            return try address(key, wildcardAllowed: wildcardAllowed).map { [($0, line(of: key))] }
        }
        guard value.array != nil else {
            throw error(key, "'\(key)' \(title) must be \"HOST:PORT\" or a list of them, like [\"198.51.100.4:4000\", \"203.0.113.9:4000\"]")
        }
        var result: [(address: SocketAddress, line: Int?)] = []
        for (text, line) in try strings(key) ?? [] {
            result.append((try address(text, key: key, line: line, wildcardAllowed: wildcardAllowed), line))
        }
        return result
    }

    private func address(_ text: String, key: String, line: Int?, wildcardAllowed: Bool) throws(ConfigError) -> SocketAddress {
        func fail(_ message: String) -> ConfigError { self.error(at: line, message) }
        let written = "\(key) = \"\(text)\""
        let address: SocketAddress
        do {
            address = try SocketAddress(parsing: text)
        } catch {
            switch error {
            case .missingPort: throw fail("\(written) has no port: write HOST:PORT, or [IPv6]:PORT")
            case .badPort: throw fail("\(written) has a bad port: use a number from 1 to 65535")
            case .badHost:
                let hint = text.filter { $0 == ":" }.count > 1 && !text.hasPrefix("[")
                    ? "put IPv6 addresses in brackets, like [2001:db8::1]:443"
                    : "host names are not resolved; write a numeric address"
                throw fail("\(written) is not an IPv4 or IPv6 literal (\(hint))")
            }
        }
        if address.port == 0 { throw fail("\(written) has port 0: give the real port") }
        if address.isWildcard && !wildcardAllowed {
            throw fail("\(written) is a wildcard address: give the host's real address")
        }
        return address
    }

    /// A forward upstream or server backend: an address as `address` takes it, or a
    /// `NAME:PORT` that the relay resolves at run time (and re-resolves every 30 s).
    func upstream(_ key: String) throws(ConfigError) -> Upstream? {
        guard let text = try string(key) else { return nil }
        let written = "\(key) = \"\(text)\""
        let upstream: Upstream
        do {
            upstream = try Upstream(parsing: text)
        } catch {
            switch error {
            case .address(.missingPort): throw self.error(key, "\(written) has no port: write HOST:PORT, or [IPv6]:PORT")
            case .address(.badPort): throw self.error(key, "\(written) has a bad port: use a number from 1 to 65535")
            case .address(.badHost): throw self.error(key, "\(written) is not an address or host name (put IPv6 addresses in brackets, like [2001:db8::1]:443)")
            case .badName: throw self.error(key, "\(written) is not an address or host name (a name has letters, digits, '-' and '.')")
            }
        }
        if let literal = upstream.literal {
            // The literal's own checks (port 0, wildcard).
            _ = try address(key, wildcardAllowed: false)
            return Upstream(literal)
        }
        return upstream
    }
}

/// Parses `10.0.0.0/8`, `fd00::/8`, or a bare address (a /32 or /128). Returns the
/// complaint on failure: the caller knows the line (or the flag).
public func parsePrefix(_ text: String) -> Result<AddressPrefix, PrefixError> {
    let parts = text.split(separator: "/", omittingEmptySubsequences: false)
    guard parts.count <= 2, let address = SocketAddress(host: String(parts[0]), port: 0), !parts[0].isEmpty else {
        return .failure(PrefixError("'\(text)' is not an address prefix: write 192.0.2.0/24 or 2001:db8::/32"))
    }
    let maxLength = address.family == AF_INET ? 32 : 128
    var length = maxLength
    if parts.count == 2 {
        guard let n = Int(parts[1]), (0...maxLength).contains(n) else {
            return .failure(PrefixError("'\(text)' has a bad prefix length: use 0 to \(maxLength)"))
        }
        length = n
    }
    let bytes = address.addressBytes
    let network = maskedBytes(bytes, length: length)
    if network != bytes {
        let suggestion = SocketAddress(bytes: network)?.host ?? "?"
        return .failure(PrefixError("'\(text)' has host bits set: did you mean \(suggestion)/\(length)?"))
    }
    return .success(AddressPrefix(address: address, length: length))
}

public struct PrefixError: Error, CustomStringConvertible {
    public var message: String
    init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// `bytes` with every bit after the first `length` cleared.
func maskedBytes(_ bytes: [UInt8], length: Int) -> [UInt8] {
    bytes.enumerated().map { index, byte in
        let keep = max(0, min(8, length - index * 8))
        return keep == 8 ? byte : byte & ~(UInt8.max >> keep)
    }
}

extension SocketAddress {
    /// The address in network order: 4 or 16 bytes.
    var addressBytes: [UInt8] {
        switch self {
        case .v4(let sa): return withUnsafeBytes(of: sa.sin_addr) { Array($0) }
        case .v6(let sa): return withUnsafeBytes(of: sa.sin6_addr) { Array($0) }
        }
    }

    /// Builds an address (port 0) from 4 or 16 network-order bytes.
    init?(bytes: [UInt8]) {
        var text = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        guard inet_ntop(family, bytes, &text, socklen_t(text.count)) != nil else { return nil }
        self.init(host: String(decoding: text.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self), port: 0)
    }

    /// IPv4-mapped IPv6 (`::ffff:a.b.c.d`) counts as IPv4 for interception.
    var isIPv4Mapped: Bool {
        guard case .v6 = self else { return false }
        let b = addressBytes
        return b[0..<10].allSatisfy { $0 == 0 } && b[10] == 0xff && b[11] == 0xff
    }
}

extension AddressPrefix {
    /// `10.0.0.0/8`, `::1/128`: the form nft and ip(8) take.
    var cidr: String { "\(address.host)/\(length)" }
}
