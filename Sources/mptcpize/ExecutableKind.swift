#if canImport(Glibc)
import Glibc
#endif

/// Whether a program can be reached by LD_PRELOAD: only an ELF executable with an interpreter
/// (ld.so) loads preloads. A static one (no PT_INTERP, static-pie included) needs the supervisor.
enum ExecutableKind {
    /// The file execvp would run for `command`, or nil if none is found.
    static func resolve(_ command: String) -> String? {
        if command.contains("/") { return access(command, X_OK) == 0 ? command : nil }
        let path = getenv("PATH").map { String(cString: $0) } ?? "/usr/local/bin:/usr/bin:/bin"
        for dir in path.split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + command
            if access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// True for a 64- or 32-bit little-endian ELF file without PT_INTERP; false for anything
    /// else (dynamic ELF, scripts, unreadable files: the preload applies or exec reports why).
    static func isStaticELF(_ path: String) -> Bool {
        guard let file = fopen(path, "rb") else { return false }
        defer { fclose(file) }
        var header = [UInt8](repeating: 0, count: 64)
        guard fread(&header, 1, 64, file) >= 52, header[0...3] == [0x7f, 0x45, 0x4c, 0x46], header[5] == 1 else { return false }
        let is64 = header[4] == 2
        func le(_ bytes: ArraySlice<UInt8>) -> Int { bytes.reversed().reduce(0) { $0 << 8 | Int($1) } }
        let phoff = is64 ? le(header[32..<40]) : le(header[28..<32])
        let phentsize = is64 ? le(header[54..<56]) : le(header[42..<44])
        let phnum = is64 ? le(header[56..<58]) : le(header[44..<46])
        guard phentsize >= 4, phnum > 0, phnum < 4096, fseek(file, phoff, SEEK_SET) == 0 else { return false }
        var table = [UInt8](repeating: 0, count: phentsize * phnum)
        guard fread(&table, 1, table.count, file) == table.count else { return false }
        let ptInterp = 3
        for i in 0..<phnum where le(table[(i * phentsize)..<(i * phentsize + 4)]) == ptInterp { return false }
        return true
    }
}
