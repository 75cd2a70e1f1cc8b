/// How a line waits in a LogSink shard, as bytes: a header, the line's text, then the bytes
/// of its record when it has one. The writer thread turns entries into lines, formatting the
/// timestamp and the record there, so the thread that logs only copies.
enum LogEntry {
    /// The `seconds` of a line written as given, without a timestamp.
    static let untimed = Int.min

    struct Header {
        /// Wall-clock seconds when the line was logged (the timestamp), or `untimed`.
        var seconds: Int
        var textCount: Int
        var recordCount: Int
        /// Whose formatter reads the record bytes (nil: a line of text only).
        var record: (any LogRecord.Type)?
    }

    /// Bytes an entry takes in a shard.
    static func size(text: Int, record: Int) -> Int {
        MemoryLayout<Header>.size + text + record
    }

    /// Appends an entry to `bytes`: its text (UTF-8), then `record`'s bytes read by `type`.
    static func append(to bytes: inout [UInt8], seconds: Int, text: UnsafeRawBufferPointer,
                       record: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                       type: (any LogRecord.Type)? = nil) {
        let header = Header(seconds: seconds, textCount: text.count, recordCount: record.count, record: type)
        withUnsafeBytes(of: header) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: text)
        bytes.append(contentsOf: record)
    }

    /// Writes every entry of `bytes` as a line (newline included) to `line`.
    static func writeLines(_ bytes: [UInt8], to line: inout LogLine, clock: inout LogTimestamp) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let header = raw.loadUnaligned(fromByteOffset: offset, as: Header.self)
                offset += MemoryLayout<Header>.size
                if header.seconds != untimed { clock.append(header.seconds, to: &line) }
                line.append(UnsafeRawBufferPointer(rebasing: raw[offset..<offset + header.textCount]))
                offset += header.textCount
                if let type = header.record { type.writeMessage(storedAt: raw.baseAddress! + offset, to: &line) }
                offset += header.recordCount
                line.append(byte: UInt8(ascii: "\n"))
            }
        }
    }
}
