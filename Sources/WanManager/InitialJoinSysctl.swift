#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging

/// `net.mptcp.allow_join_initial_addr_port` of this network namespace. At 0 the server sets
/// the C flag in its MP_CAPABLE (RFC 8684 §3.1): clients do not join the address they first
/// connected to (the balanced address, which may hash a join onto another server) and join
/// only the addresses it announces. Held at 0 while the plan advertises addresses; the value
/// found is put back when it stops advertising and on exit.
final class InitialJoinSysctl {
    static let path = "/proc/sys/net/mptcp/allow_join_initial_addr_port"
    /// The value found before it was first changed; nil while untouched.
    private var original: String?
    private var lastFailure: String?

    /// Sets it to 0 when `advertising`, restores the original otherwise.
    func sync(advertising: Bool, logger: Logger) {
        if advertising {
            guard let now = Self.read() else { return fail("cannot read \(Self.path) (a kernel without MPTCP?)", logger) }
            guard now != "0" else { return }
            if original == nil { original = now }
            if let problem = Self.write("0") { return fail("cannot set \(Self.path) to 0: \(problem): clients may join the balanced address", logger) }
            logger.notice("wan: net.mptcp.allow_join_initial_addr_port = 0 (C flag: clients join only the advertised addresses)")
        } else {
            restore(logger: logger)
        }
    }

    /// Puts the value found back, if it was changed.
    func restore(logger: Logger) {
        guard let value = original else { return }
        if let problem = Self.write(value) {
            logger.warning("wan: cannot restore \(Self.path) to \(value): \(problem)")
            return
        }
        original = nil
        logger.notice("wan: net.mptcp.allow_join_initial_addr_port restored to \(value)")
    }

    private func fail(_ line: String, _ logger: Logger) {
        if line != lastFailure { logger.warning("wan: \(line)") }
        lastFailure = line
    }

    /// A sysctl's value, trimmed (this one's, or `file` under /proc/sys); nil when unreadable.
    static func read(_ file: String = path) -> String? {
        let fd = open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var buf = [UInt8](repeating: 0, count: 32)
        let n = Glibc.read(fd, &buf, buf.count)
        guard n > 0 else { return nil }
        return String(decoding: buf[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// nil on success, else what went wrong.
    static func write(_ value: String) -> String? {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        let bytes = Array((value + "\n").utf8)
        guard Glibc.write(fd, bytes, bytes.count) == bytes.count else { return String(cString: strerror(errno)) }
        return nil
    }
}
