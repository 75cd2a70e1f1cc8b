#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import Logging
import MPTCPSocket
import RelayLog
import SystemPackage
import URing

/// One event loop on one thread with its own ring, connections and pipes.
/// Nothing here is shared with other workers, so the data path takes no locks.
///
/// This file holds the state, the loop and the dispatch of completions; the rest is split
/// by concern: Worker+Accept (listeners, descriptor shortage), Worker+Control (mailbox,
/// reload, stop, the 1 s tick), Worker+Connection (a connection's life), Worker+Pump (the
/// splice data path), Worker+Tunnel (tunnel headers at both ends).
final class Worker {
    let index: Int
    var settings: RelaySettings
    let ring: Ring
    var logger: Logger
    /// Where close records go, formatted off the worker (nil: close lines go to `logger` as text).
    let closeLog: LogRecordWriter?
    var listeners: [WorkerListener]
    let table: ConnectionTable
    let pipes: PipePool
    let handshakeBuffers = HandshakeBuffers()
    let counters: WorkerCounters
    let mailbox: WorkerMailbox
    private let wakeBuffer: UnsafeMutablePointer<UInt64>
    let tickSpec: UnsafeMutablePointer<RingTimespec>
    let connectTimeoutSpec: UnsafeMutablePointer<RingTimespec>
    let backoffSpec: UnsafeMutablePointer<RingTimespec>
    /// How soon a Fast Open tunnel looks again for its reply while the kernel says the
    /// socket is not connected yet (Worker+Pump replyRead): 2, 4, ... 64 ms, so a connection
    /// that never connects costs a few dozen wake-ups, not thousands.
    let replyWaitSpecs: UnsafeMutablePointer<RingTimespec>
    static let replyWaitSteps = 6
    var backoffArmed = false
    var acceptPausedSince: Int64? = nil
    var lastPauseWarning = Int64.min / 2
    var pauseWarned = false
    var acceptCursor = 0
    /// Monotonic nanoseconds, read once per completion batch.
    var now: Int64 = 0
    var stopping = false
    var stopDeadline: Int64 = 0
    var sequence: UInt64 = 0
    let limits: SharedLimits
    var localAddresses: LocalAddresses
    /// Upstream host names and their addresses, from the control thread's resolver.
    var upstreamAddresses: [String: [SocketAddress]]
    /// Where upstream connections start while a WAN is out of service (UplinkSteering).
    var steering = UplinkSteering.none
    /// Tunnel servers the health pings took out of service (TunnelServerProber): new
    /// connections avoid them while another server is in service.
    var serversOut: Set<SocketAddress> = []
    let tunnelContext: TunnelContext
    var headerBudget: HeaderBudget
    /// The flags of every splice (DataPath.spliceFlags). A variable so that a test can make
    /// the kernel refuse splices for real (an unknown flag is EINVAL) and watch the copy path.
    var spliceFlags = DataPath.spliceFlags
    /// Tunnel clients refused by the pre-authentication limits since the last tick's log line.
    var headerRefusals = (source: 0, total: 0)

    init(_ launch: WorkerLaunch) throws(RingError) {
        let settings = launch.settings
        localAddresses = launch.localAddresses
        upstreamAddresses = launch.upstreamAddresses
        tunnelContext = launch.tunnelContext
        index = launch.index
        self.settings = settings
        mailbox = launch.mailbox
        counters = launch.counters
        logger = launch.logger
        closeLog = Self.closeLog(for: launch.logger)
        limits = launch.limits
        let capacity = settings.maxConnections
        headerBudget = HeaderBudget(total: Self.share(settings.effectiveMaxPendingHeaders, settings.workers),
                                    perSource: Self.share(settings.maxPendingPerSource, settings.workers))
        // Up to four operations per connection (a poll or splice per direction, a cancel per
        // socket) can complete at once, as in abortAll: the completion queue holds them all.
        ring = try Ring(entries: settings.ringEntries, completionEntries: UInt32(min(capacity * 4 + 4096, 1 << 20)))
        // Any worker may hold every connection of the process: the limit is shared
        // (SharedLimits), so a worker the kernel keeps hashing SYNs to never strands them.
        // The table makes its slots as connections come, so that costs nothing until used.
        table = ConnectionTable(capacity: capacity)
        pipes = PipePool(size: settings.pipeSize, keepIdle: 64, limits: launch.limits)
        let counters = launch.counters
        listeners = zip(settings.listeners, launch.listenerSockets).map { config, socket in
            WorkerListener(settings: config, socketID: socket.id, fd: socket.fd, counters: Self.registerCounters(config, counters))
        }
        wakeBuffer = .allocate(capacity: 1)
        tickSpec = .allocate(capacity: 1)
        tickSpec.initialize(to: RingTimespec(seconds: 1, nanoseconds: 0))
        connectTimeoutSpec = .allocate(capacity: 1)
        connectTimeoutSpec.initialize(to: RingTimespec(duration: settings.connectTimeout))
        backoffSpec = .allocate(capacity: 1)
        backoffSpec.initialize(to: RingTimespec(seconds: 0, nanoseconds: 100_000_000))
        replyWaitSpecs = .allocate(capacity: Self.replyWaitSteps)
        for i in 0..<Self.replyWaitSteps {
            (replyWaitSpecs + i).initialize(to: RingTimespec(seconds: 0, nanoseconds: 2_000_000 << i))
        }
    }

    deinit {
        // Closes queued on the ring (finish) go out before the ring does.
        try? ring.submitAndWait(0)
        ring.close()
        for l in listeners {
            if l.fd >= 0 { close(l.fd) }
            l.deallocate()
        }
        wakeBuffer.deallocate()
        tickSpec.deallocate()
        connectTimeoutSpec.deallocate()
        backoffSpec.deallocate()
        replyWaitSpecs.deallocate()
    }

    static func registerCounters(_ config: ListenerSettings, _ counters: WorkerCounters) -> ListenerCounters {
        counters.register(listener: config.address.description, mode: modeName(config))
    }

    /// `n` bytes read from direction `d`'s source: the connection's own count, and the live
    /// totals a scrape reads (per worker and per listener record; no lock, no allocation).
    @inline(__always) func countBytes(_ c: UnsafeMutablePointer<Connection>, _ d: Int, _ n: Int) {
        let bytes = UInt64(n)
        if d == 0 { c.pointee.up.bytes += bytes } else { c.pointee.down.bytes += bytes }
        counters.add(d == 0 ? .bytesUp : .bytesDown, bytes)
        listeners[c.pointee.listener].counters.addBytes(direction: d, bytes)
    }

    /// This worker's part of a process-wide limit (rounded up, at least 1).
    static func share(_ total: Int, _ workers: Int) -> Int { max(1, (total + workers - 1) / workers) }

    /// Runs until a stop command has been handled and every connection is gone; throws
    /// when the ring itself fails, which ends the process (see Relay.runUntilStopped).
    func run() throws(RingError) {
        refreshClock()
        armWake()
        ring.timeout(tickSpec, userData: OperationToken(.tick).raw)
        armAccepts()
        while !(stopping && table.active == 0) {
            try ring.submitAndWait(1)
            refreshClock()
            _ = ring.drainCompletions { userData, result, _ in
                self.dispatch(OperationToken(raw: userData), result)
            }
            if let failure = ring.failure { throw failure }
        }
        // The last connections' closes are queued on the ring: they go out now.
        try ring.submitAndWait(0)
        logger.debug("worker \(index) stopped")
    }

    private func refreshClock() {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
        now = Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    func armWake() {
        ring.read(mailbox.eventFD, into: wakeBuffer, length: 8, userData: OperationToken(.wake).raw)
    }

    private func dispatch(_ token: OperationToken, _ result: Int32) {
        guard let kind = token.kind else { return }
        switch kind {
        case .accept: acceptCompleted(listener: Int(token.index), result)
        case .acceptResume:
            backoffArmed = false
            armAccepts()
        case .connect, .connectTimeout, .pollIn, .pollOut, .spliceIn, .spliceOut, .replyWait:
            connectionOperationCompleted(kind, token, result)
        case .wake: wakeCompleted(result)
        case .tick: tick()
        case .cancel:
            // ENOENT: it had completed already; EALREADY: it is running and will complete
            // by itself (a closing slot's deadline covers one that never does).
            if result < 0 && result != -ENOENT && result != -EALREADY {
                logger.debug("worker \(index): cancel failed: \(errnoText(-result))")
            }
        case .detached:
            if result < 0 { logger.debug("worker \(index): close failed: \(errnoText(-result))") }
        }
    }
}
