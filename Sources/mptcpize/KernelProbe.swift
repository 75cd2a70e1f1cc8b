#if canImport(Glibc)
import Glibc
#endif

/// What this kernel, in this network namespace, says about MPTCP.
enum KernelProbe {
    static let sysctlDirectory = "/proc/sys/net/mptcp"
    static let ipprotoMPTCP: Int32 = 262

    static func readSysctl(_ name: String) -> String? {
        guard let file = fopen("\(sysctlDirectory)/\(name)", "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 256)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
        let bytes = buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }
        return String(decoding: bytes, as: UTF8.self).trimmingCharacters(in: " \n")
    }

    /// nil when the socket was created (and closed again), else the reason the kernel gave.
    static func probe(family: Int32) -> String? {
        let fd = socket(family, Int32(SOCK_STREAM.rawValue), ipprotoMPTCP)
        if fd >= 0 {
            close(fd)
            return nil
        }
        return String(cString: strerror(errno))
    }

    /// Whether seccomp can hand syscalls to a supervisor (what `run --seccomp` needs).
    static func seccompUserNotification() -> Bool? {
        guard let file = fopen("/proc/sys/kernel/seccomp/actions_avail", "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 512)
        guard fgets(&buffer, Int32(buffer.count), file) != nil else { return nil }
        let text = String(decoding: buffer.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return text.split(whereSeparator: { $0 == " " || $0 == "\n" }).contains("user_notif")
    }

    /// Whether the kernel has a function named `symbol` (/proc/kallsyms), e.g. the
    /// update_socket_protocol hook a BPF fmod_ret program would attach to (Linux 6.6+).
    static func hasKernelFunction(_ symbol: String) -> Bool? {
        guard let file = fopen("/proc/kallsyms", "r") else { return nil }
        defer { fclose(file) }
        var buffer = [CChar](repeating: 0, count: 512)
        let suffix = Array((" " + symbol).utf8)
        while fgets(&buffer, Int32(buffer.count), file) != nil {
            let line = buffer.prefix(while: { $0 != 0 && $0 != 10 && $0 != 9 }).map { UInt8(bitPattern: $0) }
            if line.count >= suffix.count && Array(line.suffix(suffix.count)) == suffix { return true }
        }
        return false
    }

    /// "kernel" or "userspace": newer kernels name it, older ones number it.
    static func pathManager() -> String? {
        if let name = readSysctl("path_manager") { return name }
        switch readSysctl("pm_type") {
        case "0": return "kernel"
        case "1": return "userspace"
        case let other?: return "type \(other)"
        case nil: return nil
        }
    }
}

extension String {
    func trimmingCharacters(in set: String) -> String {
        var s = Substring(self)
        while let c = s.first, set.contains(c) { s.removeFirst() }
        while let c = s.last, set.contains(c) { s.removeLast() }
        return String(s)
    }
}
