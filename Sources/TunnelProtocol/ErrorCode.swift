/// A Convert Protocol error code (IANA "Convert Errors" registry, RFC 8803 §4.2.8).
/// A struct, not an enum, because a reply may carry codes this build does not know.
public struct ErrorCode: Error, RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    // Message validation and processing errors (0-31).
    public static let unsupportedVersion = ErrorCode(rawValue: 0)
    public static let malformedMessage = ErrorCode(rawValue: 1)
    public static let unsupportedMessage = ErrorCode(rawValue: 2)
    public static let missingCookie = ErrorCode(rawValue: 3)
    // Client-side errors (32-63).
    public static let notAuthorized = ErrorCode(rawValue: 32)
    public static let unsupportedTCPOption = ErrorCode(rawValue: 33)
    // Converter-side errors (64-95).
    public static let resourceExceeded = ErrorCode(rawValue: 64)
    public static let networkFailure = ErrorCode(rawValue: 65)
    // Errors caused by the destination server (96-127).
    public static let connectionReset = ErrorCode(rawValue: 96)
    public static let destinationUnreachable = ErrorCode(rawValue: 97)

    public var name: String? {
        switch rawValue {
        case 0: return "Unsupported Version"
        case 1: return "Malformed Message"
        case 2: return "Unsupported Message"
        case 3: return "Missing Cookie"
        case 32: return "Not Authorized"
        case 33: return "Unsupported TCP Option"
        case 64: return "Resource Exceeded"
        case 65: return "Network Failure"
        case 96: return "Connection Reset"
        case 97: return "Destination Unreachable"
        default: return nil
        }
    }

    public var description: String {
        if let name { return "\(name) (\(rawValue))" }
        return "error code \(rawValue)"
    }
}

/// Why the server turned a syntactically valid request down: the wire code the client gets,
/// and the precise reason, which only goes to the server's log.
public struct Rejection: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Reason: Equatable, Sendable {
        /// The key id is not the server's: the client holds another key (or none).
        case unknownKey(id: UInt32)
        /// The request names a key the server does not hold (never had, or removed).
        case unknownKeyName(KeyName)
        /// The named key is at its limit of open connections.
        case keyAtLimit(KeyName, limit: Int)
        /// Right key id, wrong MAC: tampered, or a key whose id collides.
        case badMAC
        /// Timestamp further in the past than the window; `by` seconds beyond it.
        case timestampTooOld(by: UInt64)
        case timestampInFuture(by: UInt64)
        /// The nonce was already used within the window.
        case replayed
        /// The replay cache holds `capacity` unexpired nonces: refusing is the only safe answer.
        case replayCacheFull(capacity: Int)
        case destinationDenied(String)
    }

    public let code: ErrorCode
    public let reason: Reason

    public init(_ code: ErrorCode, _ reason: Reason) {
        self.code = code
        self.reason = reason
    }

    public var description: String {
        switch reason {
        case .unknownKey(let id):
            return "unknown key id \(hex32(id)) (client uses a different key file)"
        case .unknownKeyName(let name):
            return "unknown key id \"\(name)\" (no such key on this server, or it was removed)"
        case .keyAtLimit(let name, let limit):
            return "key \"\(name)\" holds its limit of \(limit) open connection(s)"
        case .badMAC: return "bad MAC (tampered header or wrong key)"
        case .timestampTooOld(let s): return "timestamp \(s) s older than the window allows (check the client's clock)"
        case .timestampInFuture(let s): return "timestamp \(s) s further ahead than the window allows (check the clocks)"
        case .replayed: return "replayed header (nonce already seen)"
        case .replayCacheFull(let c): return "replay cache full (\(c) nonces within the window): too many new connections"
        case .destinationDenied(let why): return "destination denied: \(why)"
        }
    }
}

func hex32(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 8 - s.count) + s
}
