#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Process-wide budgets every worker draws from, so that no connection waits while another
/// worker has room (the kernel hashes each SYN to one worker's SO_REUSEPORT socket), and
/// pipe memory stays within what the kernel will grant. Atomics only: touched once per
/// connection and once per pipe created, never per byte.
final class SharedLimits: Sendable {
    /// Open connections across all workers, and the limit (max_connections; a reload may lower it).
    let connections = Atomic<Int>(0)
    let connectionLimit: Atomic<Int>
    /// Bytes of pipe buffer held by all pools (in use and idle), and the cap.
    let pipeBytes = Atomic<Int>(0)
    let pipeByteLimit: Int
    /// One warning per process when the kernel grants a smaller pipe than asked.
    let pipeShortfallWarned = Atomic<Bool>(false)
    /// One warning per process when splice is refused and directions copy instead.
    let spliceRefusedWarned = Atomic<Bool>(false)
    /// Wakes the other workers when a slot frees up at the limit (they stopped arming accepts).
    private let wakeAll: @Sendable () -> Void

    init(maxConnections: Int, pipeByteLimit: Int, wakeAll: @escaping @Sendable () -> Void) {
        connectionLimit = Atomic(maxConnections)
        self.pipeByteLimit = pipeByteLimit
        self.wakeAll = wakeAll
    }

    var atConnectionLimit: Bool { connections.load(ordering: .relaxed) >= connectionLimit.load(ordering: .relaxed) }

    func connectionOpened() { connections.add(1, ordering: .relaxed) }

    func connectionClosed() {
        let before = connections.subtract(1, ordering: .relaxed).oldValue
        if before >= connectionLimit.load(ordering: .relaxed) { wakeAll() }
    }

    /// Reserves `bytes` of pipe memory; false when that would pass the cap.
    func reservePipe(_ bytes: Int) -> Bool {
        let after = pipeBytes.add(bytes, ordering: .relaxed).newValue
        if after > pipeByteLimit {
            pipeBytes.subtract(bytes, ordering: .relaxed)
            return false
        }
        return true
    }

    func releasePipe(_ bytes: Int) { pipeBytes.subtract(bytes, ordering: .relaxed) }

    /// The default pipe-memory cap: what the kernel lets this user have. Without
    /// CAP_SYS_RESOURCE (the systemd unit's unprivileged user), pipes past
    /// fs.pipe-user-pages-soft silently shrink to one or two pages; keep a quarter of it
    /// for everything else the user runs.
    static func defaultPipeByteLimit() -> Int {
        if geteuid() == 0 { return Int.max }
        guard let pages = readInteger("/proc/sys/fs/pipe-user-pages-soft"), pages > 0 else { return Int.max }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE))) * 3 / 4
    }

    private static func readInteger(_ path: String) -> Int? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var line = [CChar](repeating: 0, count: 64)
        guard fgets(&line, Int32(line.count), f) != nil else { return nil }
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return Int(String(text.filter(\.isNumber)))
    }
}
