#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket

/// Which aggregation server a gateway's new connection goes to: rendezvous (highest random
/// weight) hashing of the destination's address over the servers.
///
/// Why a hash of the destination and not least connections: the destination sees the
/// server's address as the client's. Sites that bind a login, a rate limit or a CAPTCHA to
/// the client address break when one host's connections arrive from two addresses, and
/// least connections would send consecutive connections to one host through different
/// servers. With rendezvous hashing a host keeps its server for as long as that server is in
/// service; when one goes out only its hosts move (to their next-highest weight), and they
/// come back when it returns. The cost: the spread follows the destinations, so one heavy
/// host loads one server. Pure and allocation-free: every worker computes it alone.
enum TunnelServerChoice {
    /// The index of the best server not in `tried` (a bit per index), preferring those not in
    /// `out`; when every untried server is out, the best of them anyway (the probes may be
    /// wrong, and a refusal is retried). Nil when every server was tried. At most 32 servers.
    static func pick(_ servers: [SocketAddress], destination: SocketAddress, tried: UInt32, out: Set<SocketAddress>) -> Int? {
        var best: Int?
        var bestWeight: UInt64 = 0
        var bestInService = false
        let host = words(destination)
        for i in servers.indices where i < 32 && tried & (1 << UInt32(i)) == 0 {
            let inService = !out.contains(servers[i])
            let w = weight(server: servers[i], host: host)
            if best == nil || (inService && !bestInService) || (inService == bestInService && w > bestWeight) {
                best = i
                bestWeight = w
                bestInService = inService
            }
        }
        return best
    }

    /// A server's weight for one host: a fixed mix (not Swift's per-process seeded Hasher), so
    /// every worker, every restart and every gateway of a fleet agree.
    static func weight(server: SocketAddress, host: (UInt64, UInt64)) -> UInt64 {
        let s = words(server)
        var h = mix(host.0 ^ 0x9e37_79b9_7f4a_7c15)
        h = mix(h ^ host.1)
        h = mix(h ^ s.0)
        h = mix(h ^ s.1 ^ UInt64(server.port) << 48)
        return h
    }

    /// The address as two words (IPv4 in the low word); the port is left out: a host is a host.
    static func words(_ a: SocketAddress) -> (UInt64, UInt64) {
        switch a {
        case .v4(let sa):
            return (0, 0xffff_0000_0000 | UInt64(UInt32(bigEndian: sa.sin_addr.s_addr)))
        case .v6(let sa):
            var addr = sa.sin6_addr
            return withUnsafeBytes(of: &addr) { raw in
                (raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self), raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            }
        }
    }

    /// SplitMix64's finaliser: every input bit moves every output bit.
    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9e37_79b9_7f4a_7c15
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
