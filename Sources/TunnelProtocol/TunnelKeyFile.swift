#if canImport(Glibc)
import Glibc
#endif

/// Why a key file was refused; each message names the file and what to do.
public enum TunnelKeyError: Error, Equatable, CustomStringConvertible {
    case cannotOpen(path: String, errno: Int32)
    case notRegularFile(path: String)
    case tooOpen(path: String, mode: UInt32)
    case tooLarge(path: String)
    case tooShort(path: String?, bytes: Int)
    case oddHex(path: String)
    case looksLikePassphrase(path: String)

    public var description: String {
        switch self {
        case .cannotOpen(let path, let e):
            return "cannot read key file \(path): \(String(cString: strerror(e)))"
        case .notRegularFile(let path):
            return "key file \(path) is not a regular file"
        case .tooOpen(let path, let mode):
            return "key file \(path) is accessible by group or others (mode \(String(mode & 0o777, radix: 8))): "
                + "run `chmod 600 \(path)`"
        case .tooLarge(let path):
            return "key file \(path) is larger than 64 KiB: it does not look like a key"
        case .tooShort(let path, let n):
            let what = path.map { "key file \($0)" } ?? "tunnel key"
            return "\(what) holds \(n) bytes of key material, at least \(TunnelKey.minimumLength) are needed: "
                + "create one with `openssl rand -hex 32 > FILE` or `head -c 32 /dev/urandom > FILE`"
        case .oddHex(let path):
            return "key file \(path) holds an odd number of hex digits"
        case .looksLikePassphrase(let path):
            return "key file \(path) holds text that is not hex: use random bytes or 64+ hex digits "
                + "(`openssl rand -hex 32 > \(path)`), not a passphrase"
        }
    }
}

extension TunnelKey {
    static let maximumFileSize = 64 * 1024

    /// Reads a key file: 64 or more hex digits (surrounding whitespace ignored), or raw bytes.
    /// Refuses files that group or others can read or write.
    public static func load(path: String) throws(TunnelKeyError) -> TunnelKey {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .cannotOpen(path: path, errno: errno) }
        defer { close(fd) }
        // fstat the descriptor we read, so the checked file is the file used.
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .cannotOpen(path: path, errno: errno) }
        guard st.st_mode & S_IFMT == S_IFREG else { throw .notRegularFile(path: path) }
        guard st.st_mode & 0o077 == 0 else { throw .tooOpen(path: path, mode: UInt32(st.st_mode)) }

        var content = [UInt8](repeating: 0, count: maximumFileSize + 1)
        var filled = 0
        while filled < content.count {
            let n = content.withUnsafeMutableBytes { read(fd, $0.baseAddress! + filled, $0.count - filled) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .cannotOpen(path: path, errno: errno)
            }
            if n == 0 { break }
            filled += n
        }
        guard filled <= maximumFileSize else { throw .tooLarge(path: path) }
        content.removeSubrange(filled...)
        let material = try keyMaterial(content, path: path)
        do {
            return try TunnelKey(bytes: material)
        } catch {
            throw .tooShort(path: path, bytes: material.count)
        }
    }

    /// Hex if the trimmed text is all hex digits, otherwise the raw bytes.
    static func keyMaterial(_ content: [UInt8], path: String) throws(TunnelKeyError) -> [UInt8] {
        let isSpace: (UInt8) -> Bool = { $0 == 0x20 || ($0 >= 0x09 && $0 <= 0x0d) }
        let start = content.firstIndex { !isSpace($0) } ?? content.endIndex
        let end = (content.lastIndex { !isSpace($0) }).map { $0 + 1 } ?? start
        let trimmed = content[start..<end]
        if !trimmed.isEmpty, trimmed.allSatisfy({ hexValue($0) != nil }) {
            guard trimmed.count % 2 == 0 else { throw .oddHex(path: path) }
            var out = [UInt8]()
            out.reserveCapacity(trimmed.count / 2)
            var i = trimmed.startIndex
            while i < trimmed.endIndex {
                out.append(hexValue(trimmed[i])! << 4 | hexValue(trimmed[i + 1])!)
                i += 2
            }
            guard out.count >= minimumLength else { throw .tooShort(path: path, bytes: out.count) }
            return out
        }
        // Printable text that is not hex is almost surely a typed passphrase: low entropy.
        // 32 random bytes are all printable with probability ~1e-14.
        if content.count >= minimumLength, content.allSatisfy({ ($0 >= 0x20 && $0 < 0x7f) || isSpace($0) }) {
            throw .looksLikePassphrase(path: path)
        }
        return content
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
