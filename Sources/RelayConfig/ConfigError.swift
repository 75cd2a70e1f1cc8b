/// A problem with a config file, printed as one line: `FILE:LINE: what is wrong and what to do`.
public struct ConfigError: Error, Equatable, CustomStringConvertible {
    /// The file as the user named it (or the origin given to `parse`).
    public var file: String
    /// 1-based line the problem is on; nil when it concerns the whole file (unreadable, empty).
    public var line: Int?
    /// What is wrong and what to do, without the location.
    public var message: String

    public init(file: String, line: Int?, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String {
        let oneLine = message.split(whereSeparator: \.isNewline).joined(separator: " ")
        if let line { return "\(file):\(line): \(oneLine)" }
        return "\(file): \(oneLine)"
    }
}
