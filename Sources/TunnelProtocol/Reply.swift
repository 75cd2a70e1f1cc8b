/// Outcome of reading the server's reply at the gateway.
public enum ReplyParse: Sendable, Equatable {
    /// Hold at least `total` bytes, then parse again (4 until the length byte is known).
    case needMore(total: Int)
    /// The server connected; the first `consumed` bytes were the reply, the rest is data.
    case success(consumed: Int)
    /// The server refused or failed; close the client connection.
    case failure(ErrorCode, consumed: Int)
    /// Not a Convert reply: treat as a protocol failure.
    case invalid
}

extension TunnelHeader {
    /// Writes the server's reply: a bare fixed header for success (RFC 8803 semantics), or a
    /// fixed header and one Error TLV. Returns the bytes written (4 or 8).
    public static func encodeReply(error: ErrorCode?, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let length = error == nil ? fixedHeaderLength : fixedHeaderLength + 4
        precondition(buffer.count >= length, "tunnel reply needs \(length) bytes")
        buffer[0] = version
        buffer[1] = UInt8(length / 4)
        buffer.putBE16(0, at: 2)
        if let error {
            buffer[4] = TLVType.error
            buffer[5] = 1
            buffer[6] = error.rawValue
            // RFC 8803: Unsupported Version carries the versions the converter supports.
            buffer[7] = error == .unsupportedVersion ? version : 0
        }
        return length
    }

    /// Parses a reply incrementally. TLVs other than Error (an RFC 8803 converter may add
    /// Info or Supported TCP Extensions TLVs) are skipped; the first Error TLV decides.
    public static func parseReply(_ bytes: UnsafeRawBufferPointer) -> ReplyParse {
        guard bytes.count >= 1 else { return .needMore(total: fixedHeaderLength) }
        guard bytes[0] == version else { return .invalid }
        guard bytes.count >= 2 else { return .needMore(total: fixedHeaderLength) }
        let total = Int(bytes[1]) * 4
        guard total >= fixedHeaderLength else { return .invalid }
        guard bytes.count >= total else { return .needMore(total: total) }
        var error: ErrorCode?
        var offset = fixedHeaderLength
        while offset < total {
            let length = Int(bytes[offset + 1]) * 4
            guard length >= 4, length <= total - offset else { return .invalid }
            if bytes[offset] == TLVType.error, error == nil {
                error = ErrorCode(rawValue: bytes[offset + 2])
            }
            offset += length
        }
        if let error { return .failure(error, consumed: total) }
        return .success(consumed: total)
    }
}
