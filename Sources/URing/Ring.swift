#if canImport(Glibc)
import Glibc
#endif
import CURing

/// `struct __kernel_timespec`, owned by the caller for timeouts.
public struct RingTimespec {
    public var seconds: Int64
    public var nanoseconds: Int64
    public init(seconds: Int64, nanoseconds: Int64) { self.seconds = seconds; self.nanoseconds = nanoseconds }
    public init(duration: Double) {
        seconds = Int64(duration)
        nanoseconds = Int64((duration - Double(seconds)) * 1e9)
    }
}

/// An error code returned by the ring itself (not by an operation).
public struct RingError: Error, CustomStringConvertible {
    public let code: Int32
    public init(code: Int32) { self.code = code }
    public var description: String { String(cString: strerror(code)) }
}

/// One io_uring instance, owned and driven by a single thread.
///
/// The ring knows nothing of relaying: callers prepare operations tagged with an opaque
/// 64-bit `userData` and receive `(userData, result, flags)` back in batches. Memory
/// handed to an operation (addresses, timespecs, buffers) must stay valid until the
/// operation completes; the caller owns it. A full submission queue is flushed, never
/// reported, so preparing an operation cannot fail.
public final class Ring {
    private var ring: OpaquePointer?
    private let batch: UnsafeMutablePointer<curing_completion>
    private let batchCapacity: UInt32
    /// Setup flags the kernel accepted (for diagnostics).
    public let setupFlags: UInt32

    /// io_uring_queue_init_params. Tries the single-issuer, deferred-task-run setup first
    /// (fewer interruptions for a ring owned by one thread, Linux 6.1+), then plainer ones.
    /// Must be called on the thread that will drive the ring, and every later call (the
    /// deinit too) made there: the ring's descriptor is registered with that thread
    /// (IORING_REGISTER_RING_FDS), and another thread's io_uring_enter would fail.
    /// `completionEntries` sizes the completion queue (0: the kernel's default, twice
    /// `entries`); a loop with many operations in flight wants room for all of them.
    public init(entries: UInt32, completionEntries: UInt32 = 0) throws(RingError) {
        let candidates: [UInt32] = [curing_flag_single_issuer_defer_taskrun(), curing_flag_coop_taskrun(), 0]
        var accepted: UInt32 = 0
        var error: Int32 = 0
        guard let r = candidates.withUnsafeBufferPointer({ curing_create(entries, completionEntries, $0.baseAddress, Int32($0.count), &accepted, &error) }) else {
            throw RingError(code: error)
        }
        ring = r
        setupFlags = accepted
        batchCapacity = max(entries * 2, min(completionEntries, 4096))
        batch = .allocate(capacity: Int(batchCapacity))
    }

    deinit {
        close()
        batch.deallocate()
    }

    /// Tears the ring down now (io_uring_queue_exit): the kernel cancels what is pending and
    /// writes no more into memory the caller handed to operations. Later calls do nothing.
    public func close() {
        if let r = ring { curing_destroy(r) }
        ring = nil
    }

    /// IORING_OP_ACCEPT (one shot); the socket it returns is nonblocking and close-on-exec.
    public func accept(_ fd: Int32, address: UnsafeMutableRawPointer?, length: UnsafeMutablePointer<UInt32>?, userData: UInt64) {
        curing_prep_accept(ring!, fd, address, length, Int32(SOCK_NONBLOCK.rawValue | SOCK_CLOEXEC.rawValue), userData)
    }

    /// IORING_OP_CONNECT, linked to IORING_OP_LINK_TIMEOUT when `timeout` is given, so a
    /// silent peer cannot hold the connection longer than that.
    public func connect(_ fd: Int32, address: UnsafeRawPointer, length: UInt32, userData: UInt64,
                        timeout: UnsafeMutablePointer<RingTimespec>?, timeoutUserData: UInt64) {
        curing_prep_connect(ring!, fd, address, length, userData, timeout.map { UnsafeMutableRawPointer($0) }, timeoutUserData)
    }

    /// IORING_OP_POLL_ADD, one shot: completes with the ready `poll(2)` events.
    public func poll(_ fd: Int32, events: UInt32, userData: UInt64) {
        curing_prep_poll(ring!, fd, events, userData)
    }

    /// IORING_OP_SPLICE between two descriptors without offsets.
    public func splice(from input: Int32, to output: Int32, length: UInt32, flags: UInt32, userData: UInt64) {
        curing_prep_splice(ring!, input, output, length, flags, userData)
    }

    /// IORING_OP_READ.
    public func read(_ fd: Int32, into buffer: UnsafeMutableRawPointer, length: UInt32, userData: UInt64) {
        curing_prep_read(ring!, fd, buffer, length, userData)
    }

    /// IORING_OP_TIMEOUT relative to now; completes with -ETIME when it fires.
    public func timeout(_ spec: UnsafeMutablePointer<RingTimespec>, userData: UInt64) {
        curing_prep_timeout(ring!, spec, userData)
    }

    /// IORING_OP_CLOSE (5.6): the descriptor is closed when the queue is next submitted, in
    /// the same system call as the loop's other operations.
    public func close(_ fd: Int32, userData: UInt64) {
        curing_prep_close(ring!, fd, userData)
    }

    /// IORING_OP_ASYNC_CANCEL of every operation whose file is `fd` (Linux 5.19+).
    public func cancelAll(on fd: Int32, userData: UInt64) {
        curing_prep_cancel_fd(ring!, fd, userData)
    }

    /// IORING_OP_ASYNC_CANCEL of the operation tagged `target`.
    public func cancel(userData target: UInt64, userData: UInt64) {
        curing_prep_cancel(ring!, target, userData)
    }

    /// io_uring_submit_and_wait: submits what is queued and waits for `count` completions.
    /// EINTR, EAGAIN, EBUSY and ETIME are transient here, not errors.
    /// Set once preparing an operation could not get a submission entry because flushing the
    /// queue kept failing: operations prepared since are lost, and the ring's owner must
    /// give up (the relay exits non-zero so a supervisor restarts it).
    public var failure: RingError? {
        guard let r = ring else { return nil }
        let code = curing_error(r)
        return code == 0 ? nil : RingError(code: code)
    }

    public func submitAndWait(_ count: UInt32) throws(RingError) {
        let rc = curing_submit_and_wait(ring!, count)
        if rc < 0 && rc != -EINTR && rc != -EAGAIN && rc != -EBUSY && rc != -ETIME {
            throw RingError(code: -rc)
        }
    }

    /// Hands every ready completion to `body`, in batches.
    @inline(__always)
    public func drainCompletions(_ body: (_ userData: UInt64, _ result: Int32, _ flags: UInt32) -> Void) -> Int {
        var total = 0
        while true {
            let n = Int(curing_reap(ring!, batch, batchCapacity))
            if n == 0 { return total }
            for i in 0..<n {
                let c = batch[i]
                body(c.user_data, c.res, c.flags)
            }
            total += n
        }
    }
}
