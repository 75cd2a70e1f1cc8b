import TOMLKit
import RelayCore

/// What every reader of one file shares: its name for messages and where its keys are.
struct ParseContext {
    var origin: String
    var lines: SourceLines
    /// Relative `key_file` paths are taken from here (the config file's directory).
    var baseDirectory: String
}

/// One TOML table being read into settings: typed getters whose errors name the line of
/// the key at fault, and a check that nothing unknown is left.
struct TableReader {
    let table: TOMLTable
    let scope: SourceLines.Scope
    let context: ParseContext

    /// How messages name this table: "at the top level", "in [interception]", ...
    var title: String {
        switch scope {
        case .root: return "at the top level"
        case .table(let name): return "in [\(name)]"
        case .item(let name, _): return "in [[\(name)]]"
        }
    }

    func has(_ key: String) -> Bool { table.contains(key: key) }

    func line(of key: String) -> Int? { context.lines.line(of: key, in: scope) }

    /// An error on the line of `key` (or of the table's header when key is nil).
    func error(_ key: String?, _ message: String) -> ConfigError {
        let place = key.flatMap { self.line(of: $0) } ?? context.lines.header(of: scope)
        return ConfigError(file: context.origin, line: place, message: message)
    }

    /// Unknown keys are errors: a typo must not silently become a default. Reports the
    /// first one in file order, with the closest known key as a suggestion.
    func rejectUnknownKeys(allowed: [String]) throws(ConfigError) {
        let unknown = table.keys.filter { !allowed.contains($0) }
        guard let first = unknown.min(by: { (line(of: $0) ?? .max) < (line(of: $1) ?? .max) }) else { return }
        var message = "unknown key '\(first)' \(title)"
        if let guess = closestKey(to: first, among: allowed) {
            message += " (did you mean '\(guess)'?)"
        } else {
            message += " (known keys: \(allowed.joined(separator: ", ")))"
        }
        throw error(first, message)
    }

    func string(_ key: String) throws(ConfigError) -> String? {
        guard let value = table[key] else { return nil }
        guard let s = value.string else { throw typeError(key, value, expected: "a string in quotes") }
        return s
    }

    /// A string that must be one of `choices`.
    func choice(_ key: String, _ choices: [String]) throws(ConfigError) -> String? {
        guard let s = try string(key) else { return nil }
        guard choices.contains(s) else {
            let list = choices.map { "\"\($0)\"" }.joined(separator: ", ")
            throw error(key, "\(key) = \"\(s)\" is not one of \(list)")
        }
        return s
    }

    func integer(_ key: String, in range: ClosedRange<Int>, unit: String = "") throws(ConfigError) -> Int? {
        guard let value = table[key] else { return nil }
        guard let n = value.int else { throw typeError(key, value, expected: "a whole number") }
        guard range.contains(n) else {
            throw error(key, "\(key) = \(n) is out of range: use \(range.lowerBound) to \(range.upperBound)\(unit)")
        }
        return n
    }

    /// Seconds as an integer or a float; never negative.
    func seconds(_ key: String, zeroMeans: String? = nil) throws(ConfigError) -> Double? {
        guard let value = table[key] else { return nil }
        let seconds: Double
        if let n = value.int { seconds = Double(n) } else if let d = value.double { seconds = d } else {
            throw typeError(key, value, expected: "a number of seconds")
        }
        guard seconds >= 0, seconds.isFinite else {
            var message = "\(key) = \(value.int.map(String.init) ?? String(seconds)) cannot be negative: give seconds, 0 or more"
            if let zeroMeans { message += " (0 \(zeroMeans))" }
            throw error(key, message)
        }
        if let problem = RelaySettings.checkSeconds(seconds) {
            throw error(key, "\(key) = \(value.int.map(String.init) ?? String(seconds)) \(problem)")
        }
        return seconds
    }

    func bool(_ key: String) throws(ConfigError) -> Bool? {
        guard let value = table[key] else { return nil }
        guard let b = value.bool else { throw typeError(key, value, expected: "true or false (no quotes)") }
        return b
    }

    /// An array of strings, each with the line it sits on (arrays may span lines).
    func strings(_ key: String) throws(ConfigError) -> [(text: String, line: Int?)]? {
        guard let value = table[key] else { return nil }
        guard let array = value.array else { throw typeError(key, value, expected: "an array of strings, like [\"a\", \"b\"]") }
        var result: [(text: String, line: Int?)] = []
        for element in array {
            guard let s = element.string else {
                throw error(key, "every element of '\(key)' must be a string in quotes, not \(Self.kind(element.type))")
            }
            result.append((s, context.lines.line(containing: "\"\(s)\"", after: key, in: scope)))
        }
        return result
    }

    /// An error on one element of an array read by `strings`.
    func error(at line: Int?, _ message: String) -> ConfigError {
        ConfigError(file: context.origin, line: line ?? context.lines.header(of: scope), message: message)
    }

    private func typeError(_ key: String, _ value: TOMLValueConvertible, expected: String) -> ConfigError {
        error(key, "'\(key)' \(title) must be \(expected), not \(Self.kind(value.type))")
    }

    static func kind(_ type: TOMLType) -> String {
        switch type {
        case .string: return "a string"
        case .int: return "an integer"
        case .double: return "a float"
        case .bool: return "a boolean"
        case .array: return "an array"
        case .table: return "a table"
        case .date, .time, .dateTime: return "a date/time"
        }
    }
}

/// The allowed key nearest to a misspelt one, if it is near enough to be a typo.
func closestKey(to word: String, among candidates: [String]) -> String? {
    let scored = candidates.map { ($0, editDistance(word.lowercased(), $0)) }
    guard let best = scored.min(by: { $0.1 < $1.1 }) else { return nil }
    return best.1 <= max(1, min(3, best.0.count / 3)) ? best.0 : nil
}

/// Levenshtein distance (insertions, deletions, substitutions).
func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    if a.isEmpty || b.isEmpty { return max(a.count, b.count) }
    var previous = Array(0...b.count)
    var current = previous
    for i in 1...a.count {
        current[0] = i
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        swap(&previous, &current)
    }
    return previous[b.count]
}
