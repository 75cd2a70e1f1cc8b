import MPTCPSocket

extension TunnelHeader {
    /// Writes a request for `destination` into `buffer` (at least `requestLength` bytes) and
    /// returns the bytes written. `nonce` must be fresh for every request: use `Nonce.random()`.
    public static func encodeRequest(destination: SocketAddress, transport: TunnelTransport = .stream, key: TunnelKey, now: UInt64,
                                     nonce: Nonce, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        precondition(buffer.count >= requestLength, "tunnel request needs \(requestLength) bytes")
        let request = ConnectRequest(destination: destination, transport: transport, keyID: key.id, timestamp: now, nonce: nonce,
                                     macHigh: 0, macLow: 0, unassigned: 0)
        writeAuthenticatedPart(request, into: buffer)
        let (high, low) = mac(key: key, over: UnsafeRawBufferPointer(rebasing: buffer[..<AuthTLV.macOffset]))
        buffer.putBE64(high, at: AuthTLV.macOffset)
        buffer.putBE64(low, at: AuthTLV.macOffset + 8)
        return requestLength
    }

    /// Writes bytes 0..<macOffset of a request: the exact bytes the MAC covers. The parser
    /// accepts only this layout, so rebuilding from parsed fields reproduces what was sent.
    static func writeAuthenticatedPart(_ r: ConnectRequest, into b: UnsafeMutableRawBufferPointer) {
        b[0] = version
        b[1] = UInt8(requestLength / 4)
        b.putBE16(r.unassigned, at: 2)

        var o = fixedHeaderLength
        let address = AddressBits(r.destination)
        b[o] = r.transport == .stream ? TLVType.connect : TLVType.udpConnect
        b[o + 1] = UInt8(ConnectTLV.length / 4)
        b.putBE16(r.destination.port, at: o + 2)
        b.putBE64(address.high, at: o + 4)
        b.putBE64(address.low, at: o + 12)

        o += ConnectTLV.length
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
