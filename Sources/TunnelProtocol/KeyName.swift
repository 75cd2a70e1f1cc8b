/// A gateway's key id as the config and the wire name it: the file name of its key on the
/// server without ".key" (`site-berlin` for keys/site-berlin.key). 1-32 bytes of letters,
/// digits, '.', '_' and '-', not starting with '.' (so never a hidden file, "." or "..").
/// Stored inline (four words, BitwiseCopyable) so that parsing a header and looking a key
/// up allocate nothing, and a log record carries it by copy.
public struct KeyName: Hashable, Sendable, CustomStringConvertible, Comparable, BitwiseCopyable {
    public static let maximumLength = 32

    private var w0: UInt64 = 0, w1: UInt64 = 0, w2: UInt64 = 0, w3: UInt64 = 0
    /// Bytes of the name (1...maximumLength).
    public private(set) var count: Int = 0

    /// Nil when `text` is not a valid key id (see the type's rule).
    public init?(_ text: String) {
        let bytes = Array(text.utf8)
        guard let name = bytes.withUnsafeBytes({ KeyName(validating: $0) }) else { return nil }
        self = name
    }

    /// Reads and checks a name from raw bytes (the Key Name TLV); nil when any byte breaks the rule.
    init?(validating bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= 1, bytes.count <= Self.maximumLength, bytes[0] != UInt8(ascii: ".") else { return nil }
        for i in 0..<bytes.count {
            guard Self.allowed(bytes[i]) else { return nil }
            set(i, bytes[i])
        }
        count = bytes.count
    }

    static func allowed(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
             UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }

    /// Why `text` is not a valid key id, for config messages; nil when it is.
    public static func problem(_ text: String) -> String? {
        if text.isEmpty { return "a key id cannot be empty" }
        if text.utf8.count > maximumLength { return "a key id has at most \(maximumLength) characters (\"\(text)\" has \(text.utf8.count))" }
        if text.hasPrefix(".") { return "a key id cannot start with '.'" }
        if KeyName(text) == nil { return "a key id has only letters, digits, '.', '_' and '-' (\"\(text)\" has others)" }
        return nil
    }

    public subscript(i: Int) -> UInt8 {
        let word: UInt64
        switch i >> 3 {
        case 0: word = w0
        case 1: word = w1
        case 2: word = w2
        default: word = w3
        }
        return UInt8(truncatingIfNeeded: word >> UInt64((i & 7) * 8))
    }

    private mutating func set(_ i: Int, _ byte: UInt8) {
        let bits = UInt64(byte) << UInt64((i & 7) * 8)
        switch i >> 3 {
        case 0: w0 |= bits
        case 1: w1 |= bits
        case 2: w2 |= bits
        default: w3 |= bits
        }
    }

    public var description: String {
        String(decoding: (0..<count).map { self[$0] }, as: UTF8.self)
    }

    public static func < (a: KeyName, b: KeyName) -> Bool { a.description < b.description }
}
