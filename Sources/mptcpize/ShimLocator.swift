#if canImport(Glibc)
import Glibc
#endif

/// Finds libmptcpize.so: $MPTCPIZE_LIB, else beside this executable (the SwiftPM build folder),
/// else ../lib/ (installed layout: PREFIX/bin/mptcpize + PREFIX/lib/libmptcpize.so),
/// else ../lib/mptcpize/ (the Debian package's private library directory).
enum ShimLocator {
    static let fileName = "libmptcpize.so"

    static func candidates() -> [String] {
        var dir = executablePath().map(dirname) ?? "."
        if dir.isEmpty { dir = "." }
        return ["\(dir)/\(fileName)", "\(dir)/../lib/\(fileName)", "\(dir)/../lib/mptcpize/\(fileName)"]
    }

    static func locate() throws -> String {
        if let override = getenv("MPTCPIZE_LIB").map({ String(cString: $0) }), !override.isEmpty {
            guard access(override, R_OK) == 0 else {
                throw CLIError("MPTCPIZE_LIB=\(override) is not a readable file; unset it or point it at libmptcpize.so")
            }
            return absolute(override)
        }
        let tried = candidates()
        if let found = tried.first(where: { access($0, R_OK) == 0 }) {
            return absolute(found)
        }
        throw CLIError("""
            \(fileName) not found (looked at \(tried.joined(separator: ", "))).
            Build it with `swift build --product mptcpize`, install both files with \
            scripts/install-mptcpize.sh, or set MPTCPIZE_LIB to its path.
            """)
    }

    /// LD_PRELOAD needs an absolute path: the program may change directory before exec'ing others.
    static func absolute(_ path: String) -> String {
        guard let resolved = realpath(path, nil) else { return path }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    static func executablePath() -> String? {
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { return nil }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func dirname(_ path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }
}
