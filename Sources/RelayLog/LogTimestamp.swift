#if canImport(Glibc)
import Glibc
#endif

/// The timestamp that starts a log line (local time, "%Y-%m-%dT%H:%M:%S%z"), formatted
/// once per second by the writer thread that owns it, not once per line.
struct LogTimestamp {
    private var second = Int.min
    private var text: [UInt8] = []

    /// Wall-clock seconds now: what a line records when it is logged.
    static func now() -> Int64 { Int64(time(nil)) }

    mutating func append(_ seconds: Int, to line: inout LogLine) {
        if seconds != second {
            second = seconds
            text = Self.format(seconds)
        }
        text.withUnsafeBytes { line.append($0) }
    }

    static func format(_ seconds: Int) -> [UInt8] {
        var t = time_t(seconds)
        var parts = tm()
        localtime_r(&t, &parts)
        var buffer = [Int8](repeating: 0, count: 32)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%S%z", &parts)
        return buffer[0..<n].map { UInt8(bitPattern: $0) }
    }
}
