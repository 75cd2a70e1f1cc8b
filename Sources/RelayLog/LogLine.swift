#if canImport(Glibc)
import Glibc
#endif

/// A log line built as UTF-8 bytes: numbers are written digit by digit and text is copied,
/// so once the buffer has grown, writing a line allocates nothing (no String, no printf).
public struct LogLine {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    public mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    public mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    public mutating func append(_ raw: UnsafeRawBufferPointer) {
        bytes.append(contentsOf: raw)
    }

    public mutating func append(byte: UInt8) {
        bytes.append(byte)
    }

    /// A NUL-terminated C string (strerror's answer, say).
    public mutating func append(cString: UnsafePointer<CChar>) {
        append(UnsafeRawBufferPointer(start: cString, count: strlen(cString)))
    }

    public mutating func append(decimal value: some BinaryInteger) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        var rest = UInt64(value.magnitude)
        let start = bytes.count
        repeat {
            bytes.append(UInt8(ascii: "0") + UInt8(rest % 10))
            rest /= 10
        } while rest > 0
        bytes[start...].reverse()
    }

    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
    }

    public var isEmpty: Bool { bytes.isEmpty }

    public var text: String { String(decoding: bytes, as: UTF8.self) }
}
