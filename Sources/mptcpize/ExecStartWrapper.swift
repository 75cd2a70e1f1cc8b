#if canImport(Glibc)
import Glibc
#endif

/// `enable --seccomp`: a unit's program runs under the supervisor, which needs `mptcpize run
/// --seccomp` in front of its command line, so the drop-in resets ExecStart= and sets it again
/// with the wrapper. Only the unit files can tell what the command line is.
enum ExecStartWrapper {
    /// The unit's ExecStart= command lines as systemd would see them (an empty ExecStart= resets).
    static func commands(unitFiles: [String]) -> [String] {
        var commands: [String] = []
        for path in unitFiles {
            guard let text = try? readText(path) else { continue }
            for raw in text.split(separator: "\n") {
                let line = String(raw).trimmingCharacters(in: " \t")
                guard line.hasPrefix("ExecStart=") else { continue }
                let value = String(line.dropFirst("ExecStart=".count)).trimmingCharacters(in: " \t")
                if value.isEmpty { commands.removeAll() } else { commands.append(value) }
            }
        }
        return commands
    }

    /// The drop-in lines for `commands`, each wrapped; throws for what cannot be wrapped.
    static func lines(commands: [String], cli: String) throws -> [String] {
        guard !commands.isEmpty else {
            throw CLIError("no ExecStart= found for this unit; --seccomp needs its command line (give --unit-dir where the unit file is)")
        }
        var lines = ["ExecStart="]
        for command in commands {
            // systemd's prefixes (-, :, +, !, !!) stay in front; @ renames argv[0], which a wrapper cannot keep.
            let prefix = command.prefix(while: { "-:+!@".contains($0) })
            if prefix.contains("@") {
                throw CLIError("ExecStart=\(command) uses the @ prefix (argv[0] renamed), which --seccomp cannot wrap; use the preload (without --seccomp)")
            }
            lines.append("ExecStart=\(prefix)\(cli) run --seccomp \(command.dropFirst(prefix.count))")
        }
        return lines
    }

    private static func readText(_ path: String) throws -> String {
        guard let file = fopen(path, "r") else { throw CLIError("cannot read \(path)") }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&chunk, 1, chunk.count, file)
            if n <= 0 { break }
            bytes += chunk[0..<n]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
