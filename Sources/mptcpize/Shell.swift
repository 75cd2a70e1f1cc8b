#if canImport(Glibc)
import Glibc
#endif

/// Runs fixed helper commands (ip, systemctl) and captures their combined output.
enum Shell {
    struct Result {
        let status: Int32
        let output: String
    }

    static func isInstalled(_ program: String) -> Bool {
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/sbin:/usr/bin:/sbin:/bin"
        return path.split(separator: ":").contains { access("\($0)/\(program)", X_OK) == 0 }
    }

    /// `command` is a constant written in this program, never user input.
    static func run(_ command: String) -> Result {
        guard let pipe = popen("\(command) 2>&1", "r") else {
            return Result(status: -1, output: String(cString: strerror(errno)))
        }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&chunk, 1, chunk.count, pipe)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        let raw = pclose(pipe)
        let status = (raw & 0x7f) == 0 ? (raw >> 8) & 0xff : -1  // WEXITSTATUS, or -1 if killed
        return Result(status: status, output: String(decoding: bytes, as: UTF8.self))
    }
}
