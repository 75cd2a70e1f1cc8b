#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import SystemPackage

/// A pipe used as the in-kernel buffer of one relay direction.
struct SplicePipe {
    var readEnd: Int32
    var writeEnd: Int32
    /// Bytes the kernel granted (F_SETPIPE_SZ may give less than asked).
    var capacity: Int
    static let none = SplicePipe(readEnd: -1, writeEnd: -1, capacity: 0)
    var isValid: Bool { readEnd >= 0 }
}

/// Pipes are taken only while bytes are in flight and returned when empty, so an idle
/// connection holds none; a few empty ones are kept for reuse to save pipe2+fcntl calls,
/// and trimmed on the worker's tick so they do not outlive the traffic.
final class PipePool {
    private var idle: [SplicePipe]
    private let keepIdle: Int
    let size: Int
    private(set) var inUse = 0
    private let limits: SharedLimits?

    init(size: Int, keepIdle: Int, limits: SharedLimits? = nil) {
        self.size = size
        self.keepIdle = keepIdle
        self.limits = limits
        idle = []
        idle.reserveCapacity(keepIdle)
    }

    deinit {
        for p in idle { destroy(p) }
    }

    /// An empty pipe, or why not: the errno of pipe2 (EMFILE/ENFILE when descriptors run
    /// out), or ENOBUFS when the pipe-memory cap is reached. Either way the caller's
    /// direction copies instead.
    func take() throws(Errno) -> SplicePipe {
        if let p = idle.popLast() { inUse += 1; return p }
        if let limits, !limits.reservePipe(size) { throw Errno.noBufferSpace }
        var fds: (Int32, Int32) = (-1, -1)
        let rc = withUnsafeMutableBytes(of: &fds) { cnet_pipe_nonblocking($0.baseAddress!.assumingMemoryBound(to: Int32.self)) }
        if rc != 0 {
            let error = Errno(rawValue: errno)
            limits?.releasePipe(size)
            throw error
        }
        // The kernel may grant less than asked (fs.pipe-max-size, per-user limits); any size works.
        var granted = Int(cnet_set_pipe_size(fds.0, Int32(size)))
        if granted <= 0 { granted = Int(cnet_get_pipe_size(fds.0)) }
        granted = max(granted, 4096)
        limits?.releasePipe(size - granted)
        inUse += 1
        return SplicePipe(readEnd: fds.0, writeEnd: fds.1, capacity: granted)
    }

    private func destroy(_ p: SplicePipe) {
        close(p.readEnd)
        close(p.writeEnd)
        limits?.releasePipe(p.capacity)
    }

    /// Returns a pipe. One that may still hold bytes is closed, never reused: its
    /// leftovers would leak into another connection.
    func give(_ pipe: SplicePipe, empty: Bool) {
        guard pipe.isValid else { return }
        inUse -= 1
        if empty && idle.count < keepIdle {
            idle.append(pipe)
        } else {
            destroy(pipe)
        }
    }

    var idleCount: Int { idle.count }

    /// Closes spare pipes beyond as many as are in use now: a burst's pipes stay for the
    /// next burst, and once traffic stops every pipe is gone by the next trim.
    func trim() {
        while idle.count > inUse, let p = idle.popLast() {
            destroy(p)
        }
    }
}
