#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// One WAN manager per network namespace. Endpoints, rules and routes are the namespace's,
/// and the manager knows its own by a record file and a protocol tag that a second manager
/// would share: two would overwrite one record and delete each other's rules at teardown.
/// So the first takes an exclusive flock(2) on a file beside the record, and a second is
/// refused at start with the holder's pid. The kernel drops the lock when the holder exits,
/// SIGKILL included: a stale file never blocks a restart.
public struct WanOwnershipLock: Sendable {
    public struct Held: Error, CustomStringConvertible {
        public let path: String
        public let holder: Int32?
        public var description: String {
            "another mptcp-relay\(holder.map { " (pid \($0))" } ?? "") manages the WANs of this network namespace (lock \(path)): two managers would overwrite each other's endpoints, rules and routes. Run one relay with [[wan]] per namespace, or stop the other first"
        }
    }

    public let path: String

    /// The lock beside the endpoint record (one per namespace).
    public init(recordPath: String) { path = recordPath + ".lock" }

    /// Takes the lock for the rest of the process's life (its descriptor is never closed),
    /// and writes this process's pid into the file for the next one's message.
    public func acquire() throws -> Int32 {
        let directory = String(path[..<(path.lastIndex(of: "/") ?? path.startIndex)])
        if !directory.isEmpty { mkdir(directory, 0o755) }
        var fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        // A file a root run left (0644, root's) is still lockable read-only: flock needs no
        // write access; only the pid note is then skipped.
        if fd < 0 && errno == EACCES { fd = open(path, O_RDONLY | O_CLOEXEC) }
        guard fd >= 0 else { throw OpenError(path: path, code: errno) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = Self.readPid(fd)
            close(fd)
            throw Held(path: path, holder: holder)
        }
        ftruncate(fd, 0)
        let text = Array("\(getpid())\n".utf8)
        _ = text.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return fd
    }

    public struct OpenError: Error, CustomStringConvertible {
        public let path: String
        public let code: Int32
        public var description: String { "cannot open the WAN ownership lock \(path): \(String(cString: strerror(code)))" }
    }

    private static func readPid(_ fd: Int32) -> Int32? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, 0) }
        guard n > 0 else { return nil }
        return Int32(String(decoding: buffer[0..<n], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
