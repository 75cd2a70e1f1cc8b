/// How a line waits in a LogSink shard, as bytes: a header, the line's text, then the bytes
/// of its record when it has one. The writer thread turns entries into lines, formatting the
/// timestamp and the record there, so the thread that logs only copies. A record's entry
/// names its prefix (" info label: [source] ") by number instead of carrying it: entries
/// stay near the size of the text lines they replace, so as many fit in a shard.
enum LogEntry {
    /// The `seconds` of a line written as given, without a timestamp.
    static let untimed = Int64.min

    struct Header {
        /// Wall-clock seconds when the line was logged (the timestamp), or `untimed`.
        var seconds: Int64
        var textCount: UInt32
        var recordCount: UInt32
        /// Index of the line's prefix in the sink's table (LogSink.register), or -1.
        var prefix: Int32
        /// Whose formatter reads the record bytes (nil: a line of text only).
        var record: (any LogRecord.Type)?
    }

    /// Bytes an entry takes in a shard.
    static func size(text: Int, record: Int) -> Int {
        MemoryLayout<Header>.size + text + record
    }

    /// Appends an entry to `bytes`: its prefix, its text (UTF-8), then `record`'s bytes read by `type`.
    static func append(to bytes: inout [UInt8], seconds: Int64, prefix: Int32 = -1,
                       text: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                       record: UnsafeRawBufferPointer = UnsafeRawBufferPointer(start: nil, count: 0),
                       type: (any LogRecord.Type)? = nil) {
        let header = Header(seconds: seconds, textCount: UInt32(text.count), recordCount: UInt32(record.count), prefix: prefix, record: type)
        withUnsafeBytes(of: header) { bytes.append(contentsOf: $0) }
        bytes.append(contentsOf: text)
        bytes.append(contentsOf: record)
    }

    /// Writes every entry of `bytes` as a line (newline included) to `line`.
    static func writeLines(_ bytes: [UInt8], prefixes: [[UInt8]], to line: inout LogLine, clock: inout LogTimestamp) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let header = raw.loadUnaligned(fromByteOffset: offset, as: Header.self)
                offset += MemoryLayout<Header>.size
                if header.seconds != untimed { clock.append(Int(header.seconds), to: &line) }
                if header.prefix >= 0 { prefixes[Int(header.prefix)].withUnsafeBytes { line.append($0) } }
                line.append(UnsafeRawBufferPointer(rebasing: raw[offset..<offset + Int(header.textCount)]))
                offset += Int(header.textCount)
                if let type = header.record { type.writeMessage(storedAt: raw.baseAddress! + offset, to: &line) }
                offset += Int(header.recordCount)
                line.append(byte: UInt8(ascii: "\n"))
            }
        }
    }
}
