import MPTCPSocket

extension TunnelHeader {
    /// Writes a request for `destination` into `buffer` (at least `requestLength(keyName:)`
    /// bytes) and returns the bytes written. `nonce` must be fresh for every request: use
    /// `Nonce.random()`. With `keyName` the request carries a Key Name TLV (a server with a
    /// key directory); without, it is the 72-byte single-key form every server accepts.
    public static func encodeRequest(destination: SocketAddress, transport: TunnelTransport = .stream, key: TunnelKey, keyName: KeyName? = nil, now: UInt64,
                                     nonce: Nonce, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let length = requestLength(keyName: keyName)
        precondition(buffer.count >= length, "tunnel request needs \(length) bytes")
        let request = ConnectRequest(destination: destination, transport: transport, keyID: key.id, keyName: keyName, timestamp: now, nonce: nonce,
                                     macHigh: 0, macLow: 0, unassigned: 0)
        writeAuthenticatedPart(request, into: buffer)
        let macOffset = request.macOffset
        let (high, low) = mac(key: key, over: UnsafeRawBufferPointer(rebasing: buffer[..<macOffset]))
        buffer.putBE64(high, at: macOffset)
        buffer.putBE64(low, at: macOffset + 8)
        return length
    }

    /// Writes bytes 0..<macOffset of a request: the exact bytes the MAC covers. The parser
    /// accepts only this layout (Connect, then the Key Name TLV if any, then Auth), so
    /// rebuilding from parsed fields reproduces what was sent.
    static func writeAuthenticatedPart(_ r: ConnectRequest, into b: UnsafeMutableRawBufferPointer) {
        b[0] = version
        b[1] = UInt8(requestLength(keyName: r.keyName) / 4)
        b.putBE16(r.unassigned, at: 2)

        var o = fixedHeaderLength
        let address = AddressBits(r.destination)
        b[o] = r.transport == .stream ? TLVType.connect : TLVType.udpConnect
        b[o + 1] = UInt8(ConnectTLV.length / 4)
        b.putBE16(r.destination.port, at: o + 2)
        b.putBE64(address.high, at: o + 4)
        b.putBE64(address.low, at: o + 12)

        o += ConnectTLV.length
        if let name = r.keyName {
            let length = KeyNameTLV.length(nameBytes: name.count)
            b[o] = TLVType.keyName
            b[o + 1] = UInt8(length / 4)
            b[o + 2] = UInt8(name.count)
            for i in KeyNameTLV.nameOffset..<length {
                let at = i - KeyNameTLV.nameOffset
                b[o + i] = at < name.count ? name[at] : 0
            }
            o += length
        }
        b[o] = TLVType.auth
        b[o + 1] = UInt8(AuthTLV.length / 4)
        b[o + 2] = AuthTLV.algorithmHMACSHA256_128
        b[o + 3] = 0
        b.putBE32(r.keyID, at: o + 4)
        b.putBE64(r.timestamp, at: o + 8)
        b.putBE64(r.nonce.high, at: o + 16)
        b.putBE64(r.nonce.low, at: o + 24)
    }
}
