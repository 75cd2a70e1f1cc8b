/// A log message kept as a fixed-size value (numbers, addresses, enums) until the log's
/// writer thread turns it into text: the thread that logs only copies bytes, so a busy
/// worker pays neither the formatting nor the allocations of a line.
public protocol LogRecord: BitwiseCopyable {
    /// The message: what follows "TIMESTAMP LEVEL LABEL: [SOURCE] " in the line.
    func writeMessage(to line: inout LogLine)
}

extension LogRecord {
    /// The record stored at `raw` (any alignment), written as a message: how the writer
    /// thread reaches the record's own formatter from bytes and a type.
    static func writeMessage(storedAt raw: UnsafeRawPointer, to line: inout LogLine) {
        raw.loadUnaligned(as: Self.self).writeMessage(to: &line)
    }
}
