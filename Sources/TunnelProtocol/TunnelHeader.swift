#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket

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

    /// Fixed header + Connect TLV (20 bytes) + Auth TLV (48 bytes): a request without a Key
    /// Name TLV (the single-key form, and every request before key names existed).
    public static let requestLength = fixedHeaderLength + ConnectTLV.length + AuthTLV.length

    /// A request's length with the Key Name TLV of `keyName`, when it names one.
    public static func requestLength(keyName: KeyName?) -> Int {
        requestLength + (keyName.map { KeyNameTLV.length(nameBytes: $0.count) } ?? 0)
    }

    /// The longest request this implementation writes (a 32-byte key name).
    public static let maximumRequestLength = requestLength + KeyNameTLV.length(nameBytes: KeyName.maximumLength)

    /// The destination of a ping: a request that asks the server to connect nowhere, only to
    /// answer, so a gateway learns over the tunnel itself that the server is up and takes its
    /// key. [::]:0 is what no real request can name (port 0 is always denied).
    public static let pingDestination = SocketAddress.v6(sockaddr_in6())

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
        /// Private use too: the name of the gateway's key (docs/tunnel-protocol.md). 193 is
        /// taken by the UDP Connect TLV.
        public static let keyName: UInt8 = 194
    }

    enum KeyNameTLV {
        /// Type, Length, Name Length (bytes), the name, zero padding to a whole word.
        static func length(nameBytes: Int) -> Int { (3 + nameBytes + 3) / 4 * 4 }
        static let nameOffset = 3
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
