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
    public enum Decision: Sendable, Equatable {
        /// The main routing table decides.
        case mainTable
        /// Bind to this source (port 0): the chosen WAN's `from ADDR` rule routes the SYN.
        case bind(SocketAddress)
        /// No WAN in service: reset at once with this reason, instead of waiting out a
        /// connect timeout.
        case refuse(String)
    }

    /// A destination the main table routes more specifically than by its default route
    /// (connected prefixes, static routes, a VPN): never steered.
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

    public var v4: Decision
    public var v6: Decision
    /// The WAN chosen, for log lines.
    public var via: String?
    public var exempt: [Prefix]

    public init(v4: Decision = .mainTable, v6: Decision = .mainTable, via: String? = nil, exempt: [Prefix] = []) {
        self.v4 = v4
        self.v6 = v6
        self.via = via
        self.exempt = exempt
    }

    /// Nothing steered, nothing refused.
    public static let none = UplinkSteering()

    public var isActive: Bool { v4 != .mainTable || v6 != .mainTable }

    /// What a dial to `destination` does.
    func decision(for destination: SocketAddress) -> Decision {
        guard isActive, !isExempt(destination) else { return .mainTable }
        switch destination {
        case .v4: return v4
        case .v6: return v6
        }
    }

    /// Loopback and the exempt prefixes.
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
