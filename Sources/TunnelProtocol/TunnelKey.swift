import Crypto

/// The pre-shared key of a gateway and its aggregation server.
/// @unchecked: swift-crypto 3.12 does not mark SymmetricKey Sendable; it is immutable here
/// (set once in init, only read by HMAC), so sharing it across workers is safe.
public struct TunnelKey: @unchecked Sendable {
    /// Shorter keys would make the 128-bit MAC weaker than it looks.
    public static let minimumLength = 32

    let symmetricKey: SymmetricKey
    /// First 4 bytes of SHA-256(key), big-endian: tells "another key" from "tampered".
    /// It reveals nothing useful about the key (a hash prefix).
    public let id: UInt32

    public init(bytes: [UInt8]) throws(TunnelKeyError) {
        guard bytes.count >= Self.minimumLength else {
            throw .tooShort(path: nil, bytes: bytes.count)
        }
        symmetricKey = SymmetricKey(data: bytes)
        let digest = Array(SHA256.hash(data: bytes))
        id = UInt32(digest[0]) << 24 | UInt32(digest[1]) << 16 | UInt32(digest[2]) << 8 | UInt32(digest[3])
    }

    /// The key id as 8 hex digits, for logs (never log the key).
    public var idString: String { hex32(id) }
}
