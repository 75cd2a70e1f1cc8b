/// The tunnel header: an RFC 8803 (0-RTT TCP Convert Protocol) message, version 1, with an
/// authentication TLV from the private-use range. Exact bytes: docs/tunnel-protocol.md.
///
/// Every function here is a pure codec: no I/O, no clocks, no allocation on the parse path.
public enum TunnelHeader {
    /// Convert Protocol version (RFC 8803 §4.1); the only one defined.
    public static let version: UInt8 = 1

    /// The fixed header: Version, Total Length (32-bit words), 16 unassigned bits.
    public static let fixedHeaderLength = 4

    /// The 8-bit Total Length counts 32-bit words, so no header can be longer than this.
    public static let maximumLength = 255 * 4

    /// Fixed header + Connect TLV (20 bytes) + Auth TLV (48 bytes).
    public static let requestLength = fixedHeaderLength + ConnectTLV.length + AuthTLV.length

    /// The longest reply this implementation writes (fixed header + one Error TLV).
    public static let maximumReplyLength = fixedHeaderLength + 4

    /// TLV types (IANA "Convert TLVs" registry).
    public enum TLVType {
        public static let connect: UInt8 = 10
        public static let error: UInt8 = 30
        /// Private Use range (192-255): no future IANA assignment can collide with it, and
        /// an RFC 8803 converter that does not know it reports Unsupported Message instead of
        /// misreading it. 192 is the first value of that range.
        public static let auth: UInt8 = 192
        /// A UDP flow: the Connect TLV's layout under a private-use type, so a server that
        /// predates UDP answers Unsupported Message instead of opening a TCP connection.
        public static let udpConnect: UInt8 = 193
    }

    enum ConnectTLV {
        /// Type, Length, Remote Peer Port (16), Remote Peer IP Address (128); no TCP options.
        static let length = 20
    }

    enum AuthTLV {
        /// Type, Length, Algorithm, Reserved, Key ID (32), Timestamp (64), Nonce (128), MAC (128).
        static let length = 48
        /// HMAC-SHA256 truncated to its first 128 bits (as RFC 4868 does for IPsec).
        static let algorithmHMACSHA256_128: UInt8 = 1
        static let macLength = 16
        /// Offset of the MAC inside a request: everything before it is authenticated.
        static let macOffset = TunnelHeader.requestLength - macLength
    }
}

extension UnsafeRawBufferPointer {
    @inline(__always) func be16(_ offset: Int) -> UInt16 {
        UInt16(self[offset]) << 8 | UInt16(self[offset + 1])
    }
    @inline(__always) func be32(_ offset: Int) -> UInt32 {
        UInt32(be16(offset)) << 16 | UInt32(be16(offset + 2))
    }
    @inline(__always) func be64(_ offset: Int) -> UInt64 {
        UInt64(be32(offset)) << 32 | UInt64(be32(offset + 4))
    }
}

extension UnsafeMutableRawBufferPointer {
    @inline(__always) func putBE16(_ value: UInt16, at offset: Int) {
        self[offset] = UInt8(truncatingIfNeeded: value >> 8)
        self[offset + 1] = UInt8(truncatingIfNeeded: value)
    }
    @inline(__always) func putBE32(_ value: UInt32, at offset: Int) {
        putBE16(UInt16(truncatingIfNeeded: value >> 16), at: offset)
        putBE16(UInt16(truncatingIfNeeded: value), at: offset + 2)
    }
    @inline(__always) func putBE64(_ value: UInt64, at offset: Int) {
        putBE32(UInt32(truncatingIfNeeded: value >> 32), at: offset)
        putBE32(UInt32(truncatingIfNeeded: value), at: offset + 4)
    }
}
