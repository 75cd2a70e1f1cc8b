#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket

/// Where new upstream connections start while a WAN is out of service (issue 15): MPTCP
/// keeps existing connections alive over the other subflows, but a new connection's first
/// SYN follows the main routing table, whose default route may lead into a dead uplink.
/// The WAN manager decides; every worker keeps a copy (posted through its mailbox) and
/// applies it to each dial, so the data path takes no lock for it.
public struct UplinkSteering: Sendable, Equatable {
    /// A connected prefix: destinations on it are reached directly and never steered.
    public struct Prefix: Sendable, Equatable {
        public var family: Int32
        public var bytes: [UInt8]
        public var length: Int
        public init(family: Int32, bytes: [UInt8], length: Int) {
            self.family = family
            self.bytes = bytes
            self.length = length
        }
    }

    /// Source to bind an IPv4 / IPv6 upstream socket to (port 0): the address of the WAN
    /// chosen, whose `from ADDR` rule sends the SYN out through it. nil: the main table decides.
    public var sourceV4: SocketAddress?
    public var sourceV6: SocketAddress?
    /// The WAN chosen, for log lines.
    public var via: String?
    /// Set when no WAN is in service: new upstream connections are reset at once with this
    /// reason instead of waiting out a connect timeout.
    public var refusal: String?
    public var exempt: [Prefix]

    public init(sourceV4: SocketAddress? = nil, sourceV6: SocketAddress? = nil, via: String? = nil,
                refusal: String? = nil, exempt: [Prefix] = []) {
        self.sourceV4 = sourceV4
        self.sourceV6 = sourceV6
        self.via = via
        self.refusal = refusal
        self.exempt = exempt
    }

    /// Nothing steered, nothing refused.
    public static let none = UplinkSteering()

    public var isActive: Bool { sourceV4 != nil || sourceV6 != nil || refusal != nil }

    enum Decision: Equatable {
        case mainTable
        case bind(SocketAddress)
        case refuse(String)
    }

    /// What a dial to `destination` does.
    func decision(for destination: SocketAddress) -> Decision {
        guard isActive, !isExempt(destination) else { return .mainTable }
        if let refusal { return .refuse(refusal) }
        switch destination {
        case .v4: return sourceV4.map(Decision.bind) ?? .mainTable
        case .v6: return sourceV6.map(Decision.bind) ?? .mainTable
        }
    }

    /// Loopback and connected prefixes (the LAN, a WAN's own subnet).
    func isExempt(_ destination: SocketAddress) -> Bool {
        switch destination {
        case .v4(var sa):
            if UInt32(bigEndian: sa.sin_addr.s_addr) >> 24 == 127 { return true }
            return withUnsafeBytes(of: &sa.sin_addr) { covered(AF_INET, $0) }
        case .v6(var sa):
            return withUnsafeBytes(of: &sa.sin6_addr) { raw in
                if raw.prefix(15).allSatisfy({ $0 == 0 }) && raw[15] == 1 { return true }
                return covered(AF_INET6, raw)
            }
        }
    }

    private func covered(_ family: Int32, _ address: UnsafeRawBufferPointer) -> Bool {
        exempt.contains { p in
            guard p.family == family, p.bytes.count == address.count else { return false }
            var bits = p.length, i = 0
            while bits >= 8 {
                if p.bytes[i] != address[i] { return false }
                bits -= 8
                i += 1
            }
            guard bits > 0 else { return true }
            let mask = UInt8(truncatingIfNeeded: 0xff << (8 - bits))
            return p.bytes[i] & mask == address[i] & mask
        }
    }
}
