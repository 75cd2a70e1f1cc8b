import MPTCPSocket

/// A parsed, not yet verified, request: every field the MAC covers, so `verify` can rebuild
/// the authenticated bytes without holding on to the caller's buffer.
public struct ConnectRequest: Sendable, Equatable {
    /// Where the client wants to go (IPv4-mapped addresses come back as `.v4`).
    public var destination: SocketAddress
    public var keyID: UInt32
    /// Unix seconds at the client when it built the header.
    public var timestamp: UInt64
    public var nonce: Nonce
    /// The 16 MAC bytes as received (big-endian halves).
    var macHigh: UInt64
    var macLow: UInt64
    /// The fixed header's unassigned bits: ignored by RFC 8803 receivers, but authenticated.
    var unassigned: UInt16
}
