/// Finds the line a key sits on. TOMLKit 0.6.0 reports source positions only for syntax
/// errors, not for keys or values, so once toml++ has parsed the text this scans it for
/// table headers and `key =` lines. It never decides what the document means (toml++ did
/// that); a key it cannot place (inline tables, odd quoting) falls back to its table's
/// header line.
struct SourceLines {
    /// Where a key lives: the top level, a `[table]`, or the n-th `[[array]]` item.
    enum Scope: Hashable {
        case root
        case table(String)
        case item(String, Int)
    }

    private(set) var lines: [Substring] = []
    private var headers: [Scope: Int] = [:]
    private var keys: [Scope: [String: Int]] = [:]
    private var scopeEnds: [Scope: Int] = [:]

    init(text: String) {
        lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        var scope = Scope.root
        var itemCounts: [String: Int] = [:]
        var openString: String?  // delimiter of a multi-line string still open
        for (index, raw) in lines.enumerated() {
            let number = index + 1
            scopeEnds[scope] = number
            let line = raw.drop { $0 == " " || $0 == "\t" }
            if let delimiter = openString {
                if Self.count(of: delimiter, in: line) % 2 == 1 { openString = nil }
                continue
            }
            if line.hasPrefix("[[") || line.hasPrefix("[") {
                let isArray = line.hasPrefix("[[")
                guard let path = Self.headerPath(line, array: isArray), let head = path.first else { continue }
                if path.count == 1 {
                    if isArray {
                        let n = itemCounts[head, default: 0]
                        itemCounts[head] = n + 1
                        scope = .item(head, n)
                    } else {
                        scope = .table(head)
                    }
                    headers[scope] = number
                    record(head, line: number, in: .root)
                } else {
                    // [parent.child]: a sub-table of the current item, or of a table.
                    if let n = itemCounts[head] { scope = .item(head, n - 1) } else { scope = .table(head) }
                    record(path[1], line: number, in: scope)
                    if headers[scope] == nil { headers[scope] = number }
                }
                scopeEnds[scope] = number
                continue
            }
            guard let key = Self.keyName(line) else { continue }
            record(key, line: number, in: scope)
            for delimiter in ["\"\"\"", "'''"] where Self.count(of: delimiter, in: line) % 2 == 1 {
                openString = delimiter
            }
        }
    }

    /// Line of `key` in `scope`; when the key cannot be placed, its scope's header.
    func line(of key: String, in scope: Scope) -> Int? {
        keys[scope]?[key] ?? header(of: scope)
    }

    /// Line of the `[table]` / `[[array]]` header opening `scope` (nil at the top level).
    func header(of scope: Scope) -> Int? {
        if scope == .root { return keys[.root].flatMap { $0.values.min() } ?? 1 }
        return headers[scope]
    }

    /// First line at or after the line of `key` that contains `needle`, within the key's
    /// scope: places one element of a multi-line array.
    func line(containing needle: String, after key: String, in scope: Scope) -> Int? {
        guard let start = line(of: key, in: scope) else { return nil }
        let end = min(scopeEnds[scope] ?? lines.count, lines.count)
        guard start <= end else { return start }
        for number in start...end where lines[number - 1].contains(needle) { return number }
        return start
    }

    private mutating func record(_ key: String, line: Int, in scope: Scope) {
        if keys[scope]?[key] == nil { keys[scope, default: [:]][key] = line }
    }

    /// `[a.b]` -> ["a", "b"]; nil when the line is not a header.
    private static func headerPath(_ line: Substring, array: Bool) -> [String]? {
        let open = array ? "[[" : "["
        let close = array ? "]]" : "]"
        var body = line.dropFirst(open.count)
        guard let end = body.firstRange(of: close) else { return nil }
        let rest = body[end.upperBound...].drop { $0 == " " || $0 == "\t" }
        guard rest.isEmpty || rest.hasPrefix("#") else { return nil }
        body = body[..<end.lowerBound]
        let parts = body.split(separator: ".").map { unquote($0) }
        return parts.contains { $0.isEmpty } ? nil : parts
    }

    /// The first component of the key on a `key = value` line.
    private static func keyName(_ line: Substring) -> String? {
        guard let first = line.first, first != "#" else { return nil }
        if first == "\"" || first == "'" {
            guard let close = line.dropFirst().firstIndex(of: first) else { return nil }
            return String(line[line.index(after: line.startIndex)..<close])
        }
        let name = line.prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" }
        guard !name.isEmpty else { return nil }
        let after = line[name.endIndex...].drop { $0 == " " || $0 == "\t" }
        guard after.hasPrefix("=") || after.hasPrefix(".") else { return nil }
        return String(name)
    }

    private static func unquote(_ part: Substring) -> String {
        let trimmed = part.trimmingSpaces
        if trimmed.count >= 2, let q = trimmed.first, q == "\"" || q == "'", trimmed.last == q {
            return String(trimmed.dropFirst().dropLast())
        }
        return String(trimmed)
    }

    private static func count(of needle: String, in text: Substring) -> Int {
        var n = 0
        var rest = text[...]
        while let r = rest.firstRange(of: needle) {
            n += 1
            rest = rest[r.upperBound...]
        }
        return n
    }
}

extension StringProtocol {
    /// Without leading and trailing spaces and tabs.
    var trimmingSpaces: Substring {
        let isBlank: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\r" }
        guard let first = firstIndex(where: { !isBlank($0) }), let last = lastIndex(where: { !isBlank($0) }) else { return "" }
        return Substring(self[first...last])
    }
}
