#if canImport(Glibc)
import Glibc
#endif

/// An IPv4 or IPv6 address as netlink carries it: network-order bytes, no port.
public struct IPAddress: Hashable, Sendable, Comparable, CustomStringConvertible {
    public enum Family: UInt8, Sendable, Hashable, Comparable {
        case v4 = 2    // AF_INET
        case v6 = 10   // AF_INET6
        public static func < (a: Family, b: Family) -> Bool { a.rawValue < b.rawValue }
        public var bitCount: Int { self == .v4 ? 32 : 128 }
    }

    public let family: Family
    /// 4 or 16 bytes.
    public let bytes: [UInt8]

    public init?(family: Family, bytes: [UInt8]) {
        guard bytes.count == (family == .v4 ? 4 : 16) else { return nil }
        self.family = family
        self.bytes = bytes
    }

    /// From netlink's 16-byte field (IPv4 in the first four bytes).
    init?(rawFamily: UInt8, _ raw: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8)) {
        guard let family = Family(rawValue: rawFamily) else { return nil }
        let all = withUnsafeBytes(of: raw) { Array($0) }
        self.init(family: family, bytes: Array(all.prefix(family == .v4 ? 4 : 16)))
    }

    /// 0.0.0.0 or ::, the destination of a default route.
    public static func unspecified(_ family: Family) -> IPAddress {
        IPAddress(family: family, bytes: [UInt8](repeating: 0, count: family == .v4 ? 4 : 16))!
    }

    /// "10.2.0.1" or "fd00:2::1"; nil for anything else (no brackets, no prefix, no scope).
    public init?(_ text: String) {
        var buf = [UInt8](repeating: 0, count: 16)
        if text.contains(":") {
            guard inet_pton(AF_INET6, text, &buf) == 1 else { return nil }
            self.init(family: .v6, bytes: buf)
        } else {
            guard inet_pton(AF_INET, text, &buf) == 1 else { return nil }
            self.init(family: .v4, bytes: Array(buf.prefix(4)))
        }
    }

    public var description: String {
        var out = [CChar](repeating: 0, count: 64)
        let af = family == .v4 ? AF_INET : AF_INET6
        _ = bytes.withUnsafeBytes { inet_ntop(af, $0.baseAddress, &out, socklen_t(out.count)) }
        return String(decoding: out.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The address with the bits past `prefixLength` cleared: the network of a prefix.
    public func masked(_ prefixLength: Int) -> IPAddress {
        var out = bytes
        for i in 0..<out.count {
            let keep = max(0, min(8, prefixLength - i * 8))
            out[i] &= keep == 8 ? 0xff : UInt8(truncatingIfNeeded: 0xff << (8 - keep))
        }
        return IPAddress(family: family, bytes: out)!
    }

    /// The 16-byte field netlink structs carry.
    var raw16: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) {
        var t: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &t) { dst in
            for (i, b) in bytes.enumerated() { dst[i] = b }
        }
        return t
    }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        a.family != b.family ? a.family < b.family : a.bytes.lexicographicallyPrecedes(b.bytes)
    }
}
