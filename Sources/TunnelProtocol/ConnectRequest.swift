import MPTCPSocket

/// A parsed, not yet verified, request: every field the MAC covers, so `verify` can rebuild
/// the authenticated bytes without holding on to the caller's buffer.
public struct ConnectRequest: Sendable, Equatable {
    /// Where the client wants to go (IPv4-mapped addresses come back as `.v4`).
    public var destination: SocketAddress
    /// A TCP connection (Connect TLV) or a UDP flow (UDP Connect TLV, framed datagrams).
    public var transport: TunnelTransport = .stream
    public var keyID: UInt32
    /// The Key Name TLV's name: which of the server's keys to check the MAC with. Nil in the
    /// single-key form (the server then finds the key by `keyID`).
    public var keyName: KeyName? = nil
    /// Unix seconds at the client when it built the header.
    public var timestamp: UInt64
    public var nonce: Nonce
    /// The 16 MAC bytes as received (big-endian halves).
    var macHigh: UInt64
    var macLow: UInt64
    /// The fixed header's unassigned bits: ignored by RFC 8803 receivers, but authenticated.
    var unassigned: UInt16
}

/// What a tunnel connection carries after the reply.
public enum TunnelTransport: Sendable, Equatable {
    /// The client's TCP byte stream, untouched (Connect TLV, type 10).
    case stream
    /// One UDP flow's datagrams, each framed with a 16-bit length (UDP Connect TLV, type
    /// 193; docs/tunnel-protocol.md "UDP flows").
    case datagram
}

extension ConnectRequest {
    /// A ping (TunnelHeader.pingDestination): authenticated like any request, connects nowhere.
    public var isPing: Bool { destination.port == 0 && AddressBits(destination) == AddressBits(high: 0, low: 0) }

    /// Bytes of the request the MAC covers (everything before the MAC).
    var macOffset: Int { TunnelHeader.requestLength(keyName: keyName) - TunnelHeader.AuthTLV.macLength }
}
