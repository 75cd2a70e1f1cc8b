#if canImport(Glibc)
import Glibc
#endif

/// The tunnel server's pre-authentication limits, per worker: how many connections may
/// still be sending their header, in all and per source (an IPv4 address or an IPv6 /64).
/// Without them a client trickling headers from one address could hold every slot until
/// the header deadline, and keep doing so.
struct HeaderBudget {
    struct SourceKey: Hashable {
        var high: UInt64
        var low: UInt64
    }

    let total: Int
    let perSource: Int
    private(set) var inUse = 0
    private var bySource: [SourceKey: Int] = [:]

    init(total: Int, perSource: Int) {
        self.total = max(1, total)
        self.perSource = max(1, perSource)
        bySource.reserveCapacity(min(self.total, 4096))
    }

    enum Verdict: Equatable {
        case granted
        case sourceFull
        case allFull
    }

    /// Takes one unit for `peer`, or says which limit refuses it.
    mutating func take(for peer: sockaddr_storage) -> Verdict {
        let key = Self.key(peer)
        if inUse >= total { return .allFull }
        let held = bySource[key, default: 0]
        if held >= perSource { return .sourceFull }
        bySource[key] = held + 1
        inUse += 1
        return .granted
    }

    mutating func give(for peer: sockaddr_storage) {
        let key = Self.key(peer)
        guard let held = bySource[key] else { return }
        if held <= 1 { bySource.removeValue(forKey: key) } else { bySource[key] = held - 1 }
        inUse -= 1
    }

    /// IPv4 (and IPv4-mapped IPv6) by address; IPv6 by its /64, the unit one host or
    /// subscriber is usually handed.
    static func key(_ peer: sockaddr_storage) -> SourceKey {
        var peer = peer
        let family = Int32(peer.ss_family)
        return withUnsafeBytes(of: &peer) { raw -> SourceKey in
            if family == AF_INET {
                let a = raw.load(fromByteOffset: 4, as: UInt32.self)
                return SourceKey(high: 0, low: UInt64(a))
            }
            if family == AF_INET6 {
                // sockaddr_in6: the address is bytes 8..<24.
                let mapped = (8..<18).allSatisfy { raw[$0] == 0 } && raw[18] == 0xff && raw[19] == 0xff
                if mapped {
                    // ::ffff:a.b.c.d counts as a.b.c.d.
                    return SourceKey(high: 0, low: UInt64(raw.loadUnaligned(fromByteOffset: 20, as: UInt32.self)))
                }
                return SourceKey(high: 1, low: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self))
            }
            return SourceKey(high: 2, low: 0)
        }
    }
}
