#if canImport(Glibc)
import Glibc
#endif

/// Go programs make their own sockets with raw syscalls, out of the preload's reach; Go's net
/// package uses MPTCP when GODEBUG has multipathtcp=1 (Go 1.21+; since Go 1.24 listeners use
/// it by default, dialers still do not). Added to the user's GODEBUG, never replacing their
/// other settings, and never overriding a multipathtcp they chose.
enum GoDebug {
    static let variable = "GODEBUG"
    static let setting = "multipathtcp=1"

    /// The GODEBUG to use given the current one.
    static func adding(to existing: String?) -> String {
        guard let existing, !existing.trimmingCharacters(in: " ").isEmpty else { return setting }
        let keys = existing.split(separator: ",").map { $0.split(separator: "=", maxSplits: 1).first.map { String($0).trimmingCharacters(in: " ") } ?? "" }
        if keys.contains("multipathtcp") { return existing }
        return existing + "," + setting
    }

    /// The GODEBUG a unit already sets (`Environment=GODEBUG=...` in the unit or its drop-ins,
    /// the last one winning as in systemd), ignoring mptcpize's own drop-in.
    static func unitValue(unitFiles: [String]) -> String? {
        var value: String?
        for path in unitFiles {
            guard let file = fopen(path, "r") else { continue }
            defer { fclose(file) }
            var buffer = [CChar](repeating: 0, count: 4096)
            while fgets(&buffer, Int32(buffer.count), file) != nil {
                let line = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
                    .trimmingCharacters(in: " \t\n")
                guard line.hasPrefix("Environment=") else { continue }
                // Environment="A=b" "GODEBUG=x=1,y=2" or Environment=GODEBUG=x=1
                for word in line.dropFirst("Environment=".count).split(separator: " ") {
                    let item = String(word).trimmingCharacters(in: "\"")
                    if item.hasPrefix("GODEBUG=") { value = String(item.dropFirst("GODEBUG=".count)) }
                }
            }
        }
        return value
    }
}
