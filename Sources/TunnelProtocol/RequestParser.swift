/// Outcome of looking at the first bytes of a tunnel connection.
public enum RequestParse: Sendable, Equatable {
    /// Not enough bytes yet. `total` is how many the caller must hold before parsing can
    /// progress: the fixed header's 4 until the length byte arrived, then the whole header.
    /// A stream that ends (or times out) here gets `.malformedMessage`.
    case needMore(total: Int)
    /// A well-formed request; the first `consumed` bytes were the header, the rest is payload.
    case request(ConnectRequest, consumed: Int)
    /// Reply with this code and close.
    case invalid(ErrorCode)
}

extension TunnelHeader {
    /// Parses a request incrementally: call again with the longer buffer after `.needMore`.
    /// Checks structure only; `verify` checks the proof. Reads nothing past `bytes.count`
    /// and never more than `maximumLength` bytes.
    public static func parseRequest(_ bytes: UnsafeRawBufferPointer) -> RequestParse {
        // Reject a wrong version from its first byte, so random traffic costs nothing.
        guard bytes.count >= 1 else { return .needMore(total: fixedHeaderLength) }
        guard bytes[0] == version else { return .invalid(.unsupportedVersion) }
        guard bytes.count >= 2 else { return .needMore(total: fixedHeaderLength) }
        let total = Int(bytes[1]) * 4
        guard total >= fixedHeaderLength else { return .invalid(.malformedMessage) }
        guard bytes.count >= total else { return .needMore(total: total) }

        var connect: (port: UInt16, address: AddressBits, transport: TunnelTransport)?
        var keyName: KeyName?
        var auth: (keyID: UInt32, timestamp: UInt64, nonce: Nonce, mac: (UInt64, UInt64))?
        var offset = fixedHeaderLength
        // Total and TLV lengths are both whole words, so at least 4 bytes remain here.
        while offset < total {
            let type = bytes[offset]
            let length = Int(bytes[offset + 1]) * 4
            guard length >= 4, length <= total - offset else { return .invalid(.malformedMessage) }
            // Auth must come last: then its MAC covers every byte before it.
            guard auth == nil else { return .invalid(.malformedMessage) }
            switch type {
            case TLVType.connect, TLVType.udpConnect:
                guard connect == nil, length >= ConnectTLV.length else { return .invalid(.malformedMessage) }
                // Extra words are TCP options to replay towards the server: not supported.
                guard length == ConnectTLV.length else { return .invalid(.unsupportedTCPOption) }
                connect = (bytes.be16(offset + 2), AddressBits(high: bytes.be64(offset + 4), low: bytes.be64(offset + 12)),
                           type == TLVType.connect ? .stream : .datagram)
            case TLVType.keyName:
                // Once, after Connect (Auth is last anyway): one layout, so the MAC's input
                // can be rebuilt from the parsed fields.
                guard connect != nil, keyName == nil, length >= 4 else { return .invalid(.malformedMessage) }
                let n = Int(bytes[offset + 2])
                guard n >= 1, n <= KeyName.maximumLength, length == KeyNameTLV.length(nameBytes: n) else { return .invalid(.malformedMessage) }
                let end = offset + KeyNameTLV.nameOffset + n
                // Padding is zero: otherwise two byte strings would carry the same name.
                for i in end..<(offset + length) where bytes[i] != 0 { return .invalid(.malformedMessage) }
                guard let name = KeyName(validating: UnsafeRawBufferPointer(rebasing: bytes[(offset + KeyNameTLV.nameOffset)..<end])) else {
                    return .invalid(.malformedMessage)
                }
                keyName = name
            case TLVType.auth:
                guard length == AuthTLV.length, bytes[offset + 3] == 0 else { return .invalid(.malformedMessage) }
                // An algorithm we cannot check is a proof we cannot accept.
                guard bytes[offset + 2] == AuthTLV.algorithmHMACSHA256_128 else { return .invalid(.notAuthorized) }
                auth = (bytes.be32(offset + 4), bytes.be64(offset + 8),
                        Nonce(high: bytes.be64(offset + 16), low: bytes.be64(offset + 24)),
                        (bytes.be64(offset + 32), bytes.be64(offset + 40)))
            default:
                // Error TLVs are for replies; Info, Cookie, TCP-extension TLVs are features we
                // do not offer. Rejecting them keeps the authenticated layout fixed.
                return .invalid(.unsupportedMessage)
            }
            offset += length
        }
        guard let connect else { return .invalid(.malformedMessage) }
        guard let auth else { return .invalid(.notAuthorized) }
        let request = ConnectRequest(
            destination: connect.address.socketAddress(port: connect.port), transport: connect.transport,
            keyID: auth.keyID, keyName: keyName, timestamp: auth.timestamp, nonce: auth.nonce,
            macHigh: auth.mac.0, macLow: auth.mac.1, unassigned: bytes.be16(2))
        return .request(request, consumed: total)
    }
}
