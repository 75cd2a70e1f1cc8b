#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket

/// PROXY protocol version 2 (HAProxy's spec, section 2.2): tells a backend behind
/// server mode the real client address. Binary form only; TCP over IPv4 or IPv6.
enum ProxyProtocolHeader {
    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    /// Writes the header for a connection from `source` to `destination`; returns its length
    /// (16 + 12 for IPv4, 16 + 36 for IPv6). Mixed families are sent as IPv6 (IPv4-mapped).
    static func write(source: SocketAddress, destination: SocketAddress, into out: UnsafeMutableRawPointer) -> Int {
        var bytes = signature
        bytes.append(0x21)  // version 2, command PROXY
        if case .v4(let s) = source, case .v4(let d) = destination {
            bytes.append(0x11)  // AF_INET, STREAM
            bytes.append(contentsOf: [0, 12])
            withUnsafeBytes(of: s.sin_addr.s_addr) { bytes.append(contentsOf: $0) }
            withUnsafeBytes(of: d.sin_addr.s_addr) { bytes.append(contentsOf: $0) }
        } else {
            bytes.append(0x21)  // AF_INET6, STREAM
            bytes.append(contentsOf: [0, 36])
            bytes.append(contentsOf: ipv6Bytes(source))
            bytes.append(contentsOf: ipv6Bytes(destination))
        }
        bytes.append(UInt8(source.port >> 8)); bytes.append(UInt8(source.port & 0xff))
        bytes.append(UInt8(destination.port >> 8)); bytes.append(UInt8(destination.port & 0xff))
        bytes.withUnsafeBytes { out.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return bytes.count
    }

    private static func ipv6Bytes(_ a: SocketAddress) -> [UInt8] {
        switch a {
        case .v6(let s): return withUnsafeBytes(of: s.sin6_addr) { Array($0) }
        case .v4(let s): return [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] + withUnsafeBytes(of: s.sin_addr.s_addr) { Array($0) }
        }
    }
}
