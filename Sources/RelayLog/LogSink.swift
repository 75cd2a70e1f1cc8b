#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// Where log lines go without ever making a worker wait for the terminal, a pipe to
/// journald or a slow disk: writers append to one of a few bounded shards (a short lock,
/// a memcpy), and a writer thread of its own drains them to the descriptor. When the sink
/// stalls and a shard is full, lines are dropped and counted; once the sink takes bytes
/// again, one line says how many were lost.
///
/// Shards hold entries (LogEntry), not finished lines: the writer thread formats timestamps
/// (once per second) and records (LogRecord) as it drains, so a thread that logs copies
/// bytes and nothing more. A thread keeps to one shard, so its lines stay in their order.
public final class LogSink: @unchecked Sendable {
    struct Buffer {
        var bytes: [UInt8] = []
        var dropped = 0
    }

    final class Shard: Sendable {
        let buffer = Mutex(Buffer())
    }

    private let shards: [Shard]
    private let shardCapacity: Int
    private let fd: Int32
    private var thread: pthread_t?
    private let stopped = Atomic<Bool>(false)
    private let nextShard = Atomic<Int>(0)
    /// Lines dropped since the start (for tests and metrics).
    public let droppedTotal = Atomic<Int>(0)
    /// The writer thread's own: the buffer it swaps into a shard it drains, the lines it
    /// formats, and its timestamp of the current second.
    private var spare: [UInt8] = []
    private var out = LogLine(capacity: 1 << 16)
    private var clock = LogTimestamp()
    private let prefixes = Mutex<[[UInt8]]>([])

    /// `capacity`: bytes held at most while the sink is slow, split over `shards`.
    public init(fd: Int32 = STDERR_FILENO, capacity: Int = 1 << 20, shards count: Int = 8) {
        self.fd = fd
        shards = (0..<count).map { _ in Shard() }
        shardCapacity = max(4096, capacity / count)
        let box = Unmanaged.passRetained(self).toOpaque()
        var t = pthread_t()
        // The writer never takes a signal: the control thread waits for them with
        // sigtimedwait, and a SIGHUP delivered here would end the process.
        var all = sigset_t(), previous = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_SETMASK, &all, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        if pthread_create(&t, nil, { arg in
            let sink = Unmanaged<LogSink>.fromOpaque(arg!).takeRetainedValue()
            sink.drainLoop()
            return nil
        }, box) == 0 {
            thread = t
        } else {
            Unmanaged<LogSink>.fromOpaque(box).release()
        }
    }

    /// Each thread keeps to one shard, so workers rarely meet on a lock.
    private static let shardKey: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    private func shardIndex() -> Int {
        let key = Self.shardKey
        if let v = pthread_getspecific(key) { return (Int(bitPattern: v) - 1) % shards.count }
        let i = nextShard.wrappingAdd(1, ordering: .relaxed).oldValue
        pthread_setspecific(key, UnsafeRawPointer(bitPattern: i + 1))
        return i % shards.count
    }

    /// Appends one line as given (a newline is added); never blocks on the descriptor.
    public func write(_ line: String) {
        write(seconds: LogEntry.untimed, text: line)
    }

    /// A line the writer thread starts with the timestamp of `seconds`.
    func write(seconds: Int64, text: String) {
        var text = text
        text.withUTF8 { utf8 in
            store(LogEntry.size(text: utf8.count, record: 0)) {
                LogEntry.append(to: &$0, seconds: seconds, text: UnsafeRawBufferPointer(utf8))
            }
        }
    }

    /// A line the writer thread makes of a timestamp, the registered `prefix` and `record`'s message.
    func write<R: LogRecord>(_ record: R, prefix: Int32, seconds: Int64) {
        withUnsafeBytes(of: record) { bytes in
            store(LogEntry.size(text: 0, record: bytes.count)) {
                LogEntry.append(to: &$0, seconds: seconds, prefix: prefix, record: bytes, type: R.self)
            }
        }
    }

    /// Text that starts many lines (a record writer's " info label: [source] "), kept once:
    /// entries name it by the number returned (the same text, the same number).
    func register(prefix: [UInt8]) -> Int32 {
        prefixes.withLock { table in
            if let known = table.firstIndex(of: prefix) { return Int32(known) }
            table.append(prefix)
            return Int32(table.count - 1)
        }
    }

    /// Appends an entry of `size` bytes to this thread's shard, or counts it dropped when the shard is full.
    private func store(_ size: Int, _ append: (inout [UInt8]) -> Void) {
        let i = shardIndex()
        let stored = shards[i].buffer.withLock { shard -> Bool in
            guard shard.bytes.count + size <= shardCapacity else {
                shard.dropped += 1
                return false
            }
            append(&shard.bytes)
            return true
        }
        if !stored { droppedTotal.add(1, ordering: .relaxed) }
    }

    /// Set by the writer thread when its loop has ended.
    private let writerDone = Atomic<Bool>(false)

    /// Writes what is buffered now and stops the writer thread (at exit). Waits at most
    /// `timeout` seconds for a writer blocked on a stalled descriptor (a journal that stopped
    /// reading): the process must be able to exit; what was still buffered is then lost.
    public func close(timeout: Double = 2) {
        stopped.store(true, ordering: .releasing)
        guard let thread else { return }
        var waited = 0.0
        while !writerDone.load(ordering: .acquiring) && waited < timeout {
            var pause = timespec(tv_sec: 0, tv_nsec: 10_000_000)
            nanosleep(&pause, nil)
            waited += 0.01
        }
        self.thread = nil
        guard writerDone.load(ordering: .acquiring) else {
            pthread_detach(thread)
            return
        }
        pthread_join(thread, nil)
    }

    private func drainLoop() {
        while !stopped.load(ordering: .acquiring) {
            if !drainOnce() {
                var pause = timespec(tv_sec: 0, tv_nsec: 20_000_000)
                nanosleep(&pause, nil)
            }
        }
        // The last lines (the stop's own) are written here, on the writer thread, so that
        // `close` never blocks on a stalled descriptor: it waits for this with its timeout.
        drainOnce()
        writerDone.store(true, ordering: .releasing)
    }

    /// One pass over the shards; true when it wrote anything.
    @discardableResult
    private func drainOnce() -> Bool {
        var wrote = false
        for shard in shards {
            // The drained buffer and the spare trade places: neither is allocated again
            // (swapped, never copied, so each stays uniquely referenced).
            var entries: [UInt8] = []
            swap(&entries, &spare)
            let dropped = shard.buffer.withLock { s -> Int in
                swap(&s.bytes, &entries)
                defer { s.dropped = 0 }
                return s.dropped
            }
            if !entries.isEmpty {
                // Read after the shard: a prefix is registered before an entry names it.
                let prefixTable = prefixes.withLock { $0 }
                LogEntry.writeLines(entries, prefixes: prefixTable, to: &out, clock: &clock)
                entries.removeAll(keepingCapacity: true)
                writeAll(out.bytes)
                out.removeAll()
                wrote = true
            }
            spare = entries
            if dropped > 0 {
                // The sink took bytes again (the write above returned): say what was lost.
                writeAll(Array("log: \(dropped) line(s) dropped while the log output was not keeping up\n".utf8))
                wrote = true
            }
        }
        return wrote
    }

    /// Blocking write on the writer thread only: a stalled sink stalls nobody else.
    private func writeAll(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    if errno == EAGAIN {
                        var pollFD = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                        _ = poll(&pollFD, 1, 1000)
                        continue
                    }
                    return  // a closed or broken sink: nothing more to do with these bytes
                }
                offset += n
            }
        }
    }
}
