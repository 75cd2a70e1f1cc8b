import Logging

/// A swift-log handler that formats like StreamLogHandler (timestamp, level, label,
/// metadata, message) and hands the line to a `LogSink`, never to the descriptor itself.
/// The timestamp is the sink's to write (from the second the line was logged).
public struct BufferedLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let sink: LogSink

    public init(label: String, sink: LogSink) {
        self.label = label
        self.sink = sink
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(level: Logger.Level, message: Logger.Message, metadata explicit: Logger.Metadata?,
                    source: String, file: String, function: String, line: UInt) {
        let merged = explicit.map { metadata.merging($0) { $1 } } ?? metadata
        sink.write(seconds: LogTimestamp.now(), text: Self.prefix(level, label, merged, source) + message.description)
    }

    /// What a line holds between its timestamp and its message.
    static func prefix(_ level: Logger.Level, _ label: String, _ metadata: Logger.Metadata, _ source: String) -> String {
        var text = " \(level) \(label):"
        if !metadata.isEmpty {
            text += " " + metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        }
        return text + " [\(source)] "
    }

    /// For one kind of line logged often (a connection's close line): records under this
    /// handler's level, label and metadata, formatted on the sink's writer thread. `source`
    /// stands for the module swift-log would name.
    public func recordWriter(source: String) -> LogRecordWriter {
        LogRecordWriter(sink: sink, logLevel: logLevel,
                        prefixes: Logger.Level.allCases.map { sink.register(prefix: Array(Self.prefix($0, label, metadata, source).utf8)) })
    }
}

/// Hands records (LogRecord) to a LogSink as lines of its handler's format.
public struct LogRecordWriter: Sendable {
    let sink: LogSink
    /// The handler's level when the writer was made: records below it are not logged.
    public let logLevel: Logger.Level
    /// The sink's numbers of the text before the message, by level (Logger.Level.allCases order).
    let prefixes: [Int32]

    public func write<R: LogRecord>(_ record: R, level: Logger.Level) {
        guard level >= logLevel else { return }
        sink.write(record, prefix: prefixes[Self.index(level)], seconds: LogTimestamp.now())
    }

    /// The level's place in `allCases`, without the array `allCases` builds on each call.
    static func index(_ level: Logger.Level) -> Int {
        switch level {
        case .trace: return 0
        case .debug: return 1
        case .info: return 2
        case .notice: return 3
        case .warning: return 4
        case .error: return 5
        case .critical: return 6
        }
    }
}
