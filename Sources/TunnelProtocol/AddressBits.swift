#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket

/// An address as the 128 bits the Connect TLV carries: IPv6 as is, IPv4 as ::ffff:a.b.c.d.
/// One representation lets the parser, encoder and policy share prefix arithmetic.
struct AddressBits: Hashable, Sendable {
    var high: UInt64
    var low: UInt64

    init(high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
    }

    init(_ address: SocketAddress) {
        switch address {
        case .v4(let sa):
            self.init(mappedIPv4: UInt32(bigEndian: sa.sin_addr.s_addr))
        case .v6(let sa):
            var a = sa.sin6_addr
            let (h, l) = withUnsafeBytes(of: &a) { ($0.be64(0), $0.be64(8)) }
            self.init(high: h, low: l)
        }
    }

    init(mappedIPv4 v4: UInt32) {
        self.init(high: 0, low: 0x0000_ffff_0000_0000 | UInt64(v4))
    }

    /// The IPv4 address when these bits are ::ffff:a.b.c.d.
    var mappedIPv4: UInt32? {
        high == 0 && low >> 32 == 0x0000_ffff ? UInt32(truncatingIfNeeded: low) : nil
    }

    func socketAddress(port: UInt16) -> SocketAddress {
        if let v4 = mappedIPv4 {
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = port.bigEndian
            sa.sin_addr.s_addr = v4.bigEndian
            return .v4(sa)
        }
        var sa = sockaddr_in6()
        sa.sin6_family = sa_family_t(AF_INET6)
        sa.sin6_port = port.bigEndian
        withUnsafeMutableBytes(of: &sa.sin6_addr) {
            $0.putBE64(high, at: 0)
            $0.putBE64(low, at: 8)
        }
        return .v6(sa)
    }

    /// True when the first `length` bits equal those of `prefix`.
    func hasPrefix(_ prefix: AddressBits, length: Int) -> Bool {
        if length <= 0 { return true }
        if length <= 64 {
            let mask = length == 64 ? UInt64.max : ~(UInt64.max >> UInt64(length))
            return (high ^ prefix.high) & mask == 0
        }
        guard high == prefix.high else { return false }
        let rest = min(length, 128) - 64
        let mask = rest == 64 ? UInt64.max : ~(UInt64.max >> UInt64(rest))
        return (low ^ prefix.low) & mask == 0
    }
}
