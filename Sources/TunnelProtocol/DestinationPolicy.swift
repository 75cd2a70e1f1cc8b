#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket

/// Which destinations the aggregation server connects to on a client's behalf, so that the
/// tunnel cannot reach the server itself or the networks behind it.
///
/// Order: an explicit deny always wins; an explicit allow lifts a default denial only when it
/// is at least as specific as the denied range (allow 10.1.0.0/16 lifts 10.0.0.0/8; allow
/// 0.0.0.0/0 lifts nothing); anything else not denied by default is permitted.
public struct DestinationPolicy: Sendable {
    public struct Decision: Sendable, Equatable {
        public var permitted: Bool
        /// For logs: the rule that decided.
        public var reason: String
    }

    struct Rule: Sendable {
        var prefix: AddressBits
        var length: Int  // in 128-bit (IPv4-mapped) terms
        var label: String
    }

    let allow: [Rule]
    let deny: [Rule]
    let defaults: [Rule]

    /// `serverAddresses`: the server's own addresses (all interfaces when it listens on a
    /// wildcard: `Socket.interfaceAddresses()`, re-read by the relay as they change); denied by default, any port.
    public init(allow: [IPPrefix] = [], deny: [IPPrefix] = [], serverAddresses: [SocketAddress] = []) {
        self.allow = allow.map { Rule($0, label: "allow \($0)") }
        self.deny = deny.map { Rule($0, label: "deny \($0)") }
        self.defaults = Self.defaultDenials + serverAddresses.map {
            Rule(prefix: AddressBits($0), length: 128, label: "the server's own address \($0.host)")
        }
    }

    public func permits(_ address: SocketAddress) -> Bool { decide(address).permitted }

    public func decide(_ address: SocketAddress) -> Decision {
        guard address.port != 0 else { return Decision(permitted: false, reason: "port 0") }
        // NAT64 and IPv4-compatible forms reach the embedded IPv4 address: judge that too.
        let bits = AddressBits(address)
        var candidates = [bits]
        if let v4 = Self.embeddedIPv4(bits) { candidates.append(AddressBits(mappedIPv4: v4)) }

        for c in candidates {
            if let rule = deny.first(where: { c.hasPrefix($0.prefix, length: $0.length) }) {
                return Decision(permitted: false, reason: rule.label)
            }
        }
        for c in candidates {
            for rule in defaults where c.hasPrefix(rule.prefix, length: rule.length) {
                let lifted = allow.first { c.hasPrefix($0.prefix, length: $0.length) && $0.length >= rule.length }
                if lifted == nil { return Decision(permitted: false, reason: "default denial: \(rule.label)") }
            }
        }
        if let rule = allow.first(where: { r in candidates.contains { $0.hasPrefix(r.prefix, length: r.length) } }) {
            return Decision(permitted: true, reason: rule.label)
        }
        return Decision(permitted: true, reason: "public address")
    }

    /// IPv4 inside NAT64 (64:ff9b::/96) or deprecated IPv4-compatible (::/96, not :: or ::1).
    static func embeddedIPv4(_ b: AddressBits) -> UInt32? {
        let v4 = UInt32(truncatingIfNeeded: b.low)
        if b.high == 0x0064_ff9b_0000_0000, b.low >> 32 == 0 { return v4 }
        if b.high == 0, b.low >> 32 == 0, v4 > 1 { return v4 }
        return nil
    }

    static let defaultDenials: [Rule] = [
        ("0.0.0.0", 8, "unspecified/this network (0.0.0.0/8)"),
        ("10.0.0.0", 8, "private (10.0.0.0/8)"),
        ("100.64.0.0", 10, "carrier-grade NAT (100.64.0.0/10)"),
        ("127.0.0.0", 8, "loopback (127.0.0.0/8)"),
        ("169.254.0.0", 16, "link-local (169.254.0.0/16)"),
        ("172.16.0.0", 12, "private (172.16.0.0/12)"),
        ("192.168.0.0", 16, "private (192.168.0.0/16)"),
        ("224.0.0.0", 4, "multicast (224.0.0.0/4)"),
        ("198.18.0.0", 15, "benchmarking (198.18.0.0/15)"),
        ("240.0.0.0", 4, "reserved and broadcast (240.0.0.0/4)"),
        ("::", 128, "unspecified (::)"),
        ("::1", 128, "loopback (::1)"),
        // Transition prefixes that lead into networks the policy cannot see through:
        // local-use NAT64, Teredo and 6to4 relays.
        ("64:ff9b:1::", 48, "local-use NAT64 (64:ff9b:1::/48)"),
        ("2001::", 32, "Teredo (2001::/32)"),
        ("2002::", 16, "6to4 (2002::/16)"),
        ("fc00::", 7, "unique local (fc00::/7)"),
        ("fe80::", 10, "link-local (fe80::/10)"),
        ("fec0::", 10, "site-local (fec0::/10)"),
        ("ff00::", 8, "multicast (ff00::/8)"),
    ].map { host, length, label in
        Rule(IPPrefix(address: SocketAddress(host: host, port: 0)!, length: length), label: label)
    }
}

/// An address prefix such as 10.0.0.0/8 or fd00::/8. (RelayCore's AddressPrefix has the same
/// shape; this module cannot see RelayCore, which will depend on it.)
public struct IPPrefix: Sendable, Equatable, CustomStringConvertible {
    public var address: SocketAddress
    public var length: Int
    public init(address: SocketAddress, length: Int) {
        self.address = address
        self.length = length
    }
    public var description: String { "\(address.host)/\(length)" }
}

extension DestinationPolicy.Rule {
    /// IPv4 prefixes become IPv4-mapped ones, so one comparison covers both families.
    init(_ p: IPPrefix, label: String) {
        let bits = AddressBits(p.address)
        let isV4 = p.address.family == AF_INET
        let length = max(0, min(p.length, isV4 ? 32 : 128))
        self.init(prefix: bits, length: isV4 ? 96 + length : length, label: label)
    }
}
