import CNetlink
import SystemPackage

/// ctnetlink requests: the conntrack entries of flows NATed to an uplink that went out of
/// service are deleted, so the flow's next packet is tracked afresh and NATed out of a WAN
/// in service (an entry left in place keeps sending the flow to the dead WAN's address).
public final class ConntrackClient {
    let socket: NetlinkSocket

    public init() throws(Errno) {
        socket = try NetlinkSocket(bus: .netfilter)
    }

    /// Deletes the entries source-NATed to any of `addresses` (one family per call is done
    /// for each family present); returns how many went.
    public func deleteSourceNATed(to addresses: [IPAddress]) throws(Errno) -> Int {
        var total = 0
        for family in [IPAddress.Family.v4, .v6] {
            let of = addresses.filter { $0.family == family }
            guard !of.isEmpty else { continue }
            var raw: [UInt8] = []
            for a in of { withUnsafeBytes(of: a.raw16) { raw += $0 } }
            var deleted: Int32 = 0
            let ret = raw.withUnsafeBufferPointer { cnl_ct_delete_snat(socket.handle, family.rawValue, $0.baseAddress!, Int32(of.count), &deleted) }
            total += Int(deleted)
            try check(ret)
        }
        return total
    }
}
