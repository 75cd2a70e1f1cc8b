#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import Logging
import MPTCPSocket
import SystemPackage
import URing

/// A listening socket as one worker holds it (each worker has its own SO_REUSEPORT socket).
struct WorkerListener {
    var settings: ListenerSettings
    var fd: Int32
    var armed = false
    /// Where the kernel writes the peer address of the accept in flight.
    let peer: UnsafeMutablePointer<sockaddr_storage> = .allocate(capacity: 1)
    let peerLength: UnsafeMutablePointer<UInt32> = .allocate(capacity: 1)

    init(settings: ListenerSettings, fd: Int32) {
        self.settings = settings
        self.fd = fd
    }
}

/// One event loop on one thread with its own ring, connections and pipes.
/// Nothing here is shared with other workers, so the data path takes no locks.
final class Worker {
    let index: Int
    var settings: RelaySettings
    let ring: Ring
    var logger: Logger
    var listeners: [WorkerListener]
    let table: ConnectionTable
    let pipes: PipePool
    let handshakeBuffers = HandshakeBuffers()
    let counters: WorkerCounters
    let mailbox: WorkerMailbox
    private let wakeBuffer: UnsafeMutablePointer<UInt64>
    private let tickSpec: UnsafeMutablePointer<RingTimespec>
    let connectTimeoutSpec: UnsafeMutablePointer<RingTimespec>
    private let backoffSpec: UnsafeMutablePointer<RingTimespec>
    private var backoffArmed = false
    var acceptPausedSince: Int64? = nil
    private var lastPauseWarning = Int64.min / 2
    private var pauseWarned = false
    private var acceptCursor = 0
    /// Monotonic nanoseconds, read once per completion batch.
    var now: Int64 = 0
    var stopping = false
    private var stopDeadline: Int64 = 0
    var sequence: UInt64 = 0
    var maxConnections: Int
    let localAddresses: LocalAddresses
    let tunnelContext: TunnelContext

    init(_ launch: WorkerLaunch) throws(RingError) {
        let settings = launch.settings
        localAddresses = launch.localAddresses
        tunnelContext = launch.tunnelContext
        index = launch.index
        self.settings = settings
        mailbox = launch.mailbox
        counters = launch.counters
        logger = launch.logger
        maxConnections = max(1, (settings.maxConnections + settings.workers - 1) / settings.workers)
        // Up to three operations per connection (a poll or splice per direction, a cancel)
        // can complete at once, as in abortAll: the completion queue holds them all.
        ring = try Ring(entries: settings.ringEntries, completionEntries: UInt32(min(max(maxConnections * 4, 4096), 1 << 20)))
        table = ConnectionTable(capacity: maxConnections)
        pipes = PipePool(size: settings.pipeSize, keepIdle: 64)
        listeners = zip(settings.listeners, launch.listenerFDs).map { config, fd in WorkerListener(settings: config, fd: fd) }
        wakeBuffer = .allocate(capacity: 1)
        tickSpec = .allocate(capacity: 1)
        tickSpec.initialize(to: RingTimespec(seconds: 1, nanoseconds: 0))
        connectTimeoutSpec = .allocate(capacity: 1)
        connectTimeoutSpec.initialize(to: RingTimespec(duration: settings.connectTimeout))
        backoffSpec = .allocate(capacity: 1)
        backoffSpec.initialize(to: RingTimespec(seconds: 0, nanoseconds: 100_000_000))
    }

    deinit {
        ring.close()
        for l in listeners {
            if l.fd >= 0 { close(l.fd) }
            l.peer.deallocate()
            l.peerLength.deallocate()
        }
        wakeBuffer.deallocate()
        tickSpec.deallocate()
        connectTimeoutSpec.deallocate()
        backoffSpec.deallocate()
    }

    /// Runs until a stop command has been handled and every connection is gone.
    func run() {
        refreshClock()
        ring.read(mailbox.eventFD, into: wakeBuffer, length: 8, userData: OperationToken(.wake).raw)
        ring.timeout(tickSpec, userData: OperationToken(.tick).raw)
        armAccepts()
        while !(stopping && table.active == 0) {
            do {
                try ring.submitAndWait(1)
            } catch {
                logger.critical("io_uring_enter failed: \(error); worker \(index) exits")
                return
            }
            refreshClock()
            _ = ring.drainCompletions { userData, result, _ in
                self.dispatch(OperationToken(raw: userData), result)
            }
        }
        logger.debug("worker \(index) stopped")
    }

    private func refreshClock() {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
        now = Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    private func dispatch(_ token: OperationToken, _ result: Int32) {
        guard let kind = token.kind else { return }
        switch kind {
        case .accept: acceptCompleted(listener: Int(token.index), result)
        case .acceptResume:
            backoffArmed = false
            armAccepts()
        case .connect, .connectTimeout, .pollIn, .pollOut, .spliceIn, .spliceOut:
            connectionOperationCompleted(kind, slot: token.index, direction: token.direction, result)
        case .wake: wakeCompleted(result)
        case .tick: tick()
        case .cancel: break
        }
    }

    // MARK: - Control

    private func wakeCompleted(_ result: Int32) {
        let requests = mailbox.take()
        for plan in requests.reloads {
            if stopping {
                // Sockets bound for a reload that will never be applied.
                for case .open(let fd) in plan.listeners { close(fd) }
            } else {
                applyReload(plan)
            }
        }
        if requests.abort {
            beginStop(grace: 0)
        } else if requests.stop {
            beginStop(grace: settings.gracePeriod)
        }
        ring.read(mailbox.eventFD, into: wakeBuffer, length: 8, userData: OperationToken(.wake).raw)
    }

    /// Swaps in new settings; established connections keep running untouched. Listeners
    /// that disappeared stop accepting; indices of old listeners stay valid for accepts in flight.
    private func applyReload(_ plan: ReloadPlan) {
        var next: [WorkerListener] = []
        var kept = Set<Int>()
        for (config, socket) in zip(plan.settings.listeners, plan.listeners) {
            switch socket {
            case .keep(let i):
                listeners[i].settings = config
                kept.insert(i)
            case .open(let fd):
                next.append(WorkerListener(settings: config, fd: fd))
            }
        }
        for i in listeners.indices where !kept.contains(i) && listeners[i].fd >= 0 {
            if listeners[i].armed {
                ring.cancel(userData: OperationToken(.accept, index: Int32(i)).raw, userData: OperationToken(.cancel).raw)
            }
            close(listeners[i].fd)
            listeners[i].fd = -1
        }
        listeners.append(contentsOf: next)
        let capacity = table.capacity
        settings = plan.settings
        connectTimeoutSpec.pointee = RingTimespec(duration: settings.connectTimeout)
        maxConnections = min(capacity, max(1, (settings.maxConnections + settings.workers - 1) / settings.workers))
        armAccepts()
    }

    private func beginStop(grace: Double) {
        if !stopping {
            stopping = true
            for i in listeners.indices where listeners[i].fd >= 0 {
                if listeners[i].armed {
                    ring.cancel(userData: OperationToken(.accept, index: Int32(i)).raw, userData: OperationToken(.cancel).raw)
                }
                // The pending accept keeps its own file reference until the cancel lands.
                close(listeners[i].fd)
                listeners[i].fd = -1
            }
            stopDeadline = now + Int64(grace * 1e9)
        } else {
            stopDeadline = min(stopDeadline, now + Int64(grace * 1e9))
        }
        if grace == 0 { abortAll() }
    }

    private func tick() {
        ring.timeout(tickSpec, userData: OperationToken(.tick).raw)
        pipes.trim()
        if stopping && now >= stopDeadline {
            abortAll()
        }
        // A tunnel header must arrive within the connect timeout: a silent or slow client
        // cannot hold a slot (and its buffer) for longer.
        // With Fast Open the connect completes at once (the link timeout never fires), so the
        // gateway bounds the wait for the server's reply the same way.
        if settings.connectTimeout > 0 {
            let handshakeLimit = Int64(settings.connectTimeout * 1e9)
            for i in 0..<table.capacity where now - table.slots[i].openedAt > handshakeLimit {
                let c = table.slots + i
                if c.pointee.phase == .readingHeader {
                    rejectTunnel(Int32(i), code: TunnelCodec.malformed, reason: "no complete tunnel header within \(settings.connectTimeout) s")
                } else if c.pointee.phase == .relaying && c.pointee.down.expectReply {
                    beginClose(Int32(i), reason: .connectTimeout, reset: true)
                }
            }
        }
        if settings.idleTimeout > 0 {
            let limit = Int64(settings.idleTimeout * 1e9)
            for i in 0..<table.capacity {
                let c = table.slots + i
                if c.pointee.phase == .relaying && now - c.pointee.lastActive > limit {
                    // Bytes still held would be lost: a clean FIN would pass a truncated stream as whole.
                    let stuck = c.pointee.up.inPipe > 0 || c.pointee.down.inPipe > 0
                        || c.pointee.up.prefixEnd > c.pointee.up.prefixStart || c.pointee.down.prefixEnd > c.pointee.down.prefixStart
                    beginClose(Int32(i), reason: .idleTimeout, reset: stuck)
                }
            }
        }
    }

    private func abortAll() {
        for i in 0..<table.capacity {
            let phase = table.slots[i].phase
            if phase == .relaying || phase == .connecting || phase == .readingHeader {
                beginClose(Int32(i), reason: .shutdown, reset: true)
            }
        }
    }

    // MARK: - Accepting

    /// Arms one accept per listener unless paused by the connection limit or a descriptor shortage.
    func armAccepts() {
        guard !stopping, acceptPausedSince == nil || !backoffArmed, !listeners.isEmpty else { return }
        // Start one listener further each time, so that near the connection limit, where only
        // some listeners can have an accept armed, no listener is always the one left out.
        acceptCursor = (acceptCursor + 1) % listeners.count
        for step in listeners.indices {
            let i = (acceptCursor + step) % listeners.count
            guard !listeners[i].armed && listeners[i].fd >= 0 else { continue }
            if table.active + armedCount() >= maxConnections { break }
            listeners[i].peerLength.pointee = UInt32(MemoryLayout<sockaddr_storage>.size)
            ring.accept(listeners[i].fd, address: UnsafeMutableRawPointer(listeners[i].peer), length: listeners[i].peerLength,
                        userData: OperationToken(.accept, index: Int32(i)).raw)
            listeners[i].armed = true
        }
    }

    private func armedCount() -> Int { listeners.reduce(0) { $0 + ($1.armed ? 1 : 0) } }

    private func acceptCompleted(listener li: Int, _ result: Int32) {
        listeners[li].armed = false
        if stopping || listeners[li].fd < 0 {
            // Stopped or removed by a reload: the cancel landed, or a client slipped in just before.
            if result >= 0 { close(result) }
            return
        }
        if result >= 0 {
            startConnection(client: result, listener: li)
            armAccepts()
            return
        }
        let code = -result
        switch code {
        case EMFILE, ENFILE, ENOBUFS, ENOMEM:
            pauseAccepting(code)
        case EAGAIN, EINTR, ECONNABORTED, EPROTO, EPERM:
            armAccepts()
        default:
            // Unknown trouble: retry after the backoff instead of spinning on it.
            logger.error("accept on \(listeners[li].settings.address) failed: \(errnoText(code))")
            pauseAccepting(code)
        }
    }

    /// Stops accepting for a moment; the 100 ms backoff timer resumes it.
    func pauseAccepting(_ code: Int32) {
        if acceptPausedSince == nil {
            acceptPausedSince = now
            counters.add(.acceptPauses, 1)
            // Under a lasting shortage pauses come and go with every connection that gets
            // through: warn once per ten seconds, not once per pause.
            if now - lastPauseWarning > 10_000_000_000 {
                lastPauseWarning = now
                pauseWarned = true
                let hint = code == EMFILE || code == ENFILE ? "resuming when descriptors free up (raise LimitNOFILE / ulimit -n)" : "retrying every 100 ms"
                logger.warning("accept paused: \(errnoText(code)); \(hint)")
            }
        }
        if !backoffArmed {
            backoffArmed = true
            ring.timeout(backoffSpec, userData: OperationToken(.acceptResume).raw)
        }
    }

    /// A connection got through to its upstream: a descriptor shortage, if any, is over.
    /// (An accept alone proves little: the upstream socket() right after may still fail.)
    func shortageEnded() {
        guard let since = acceptPausedSince else { return }
        acceptPausedSince = nil
        if pauseWarned {
            pauseWarned = false
            logger.notice("accepting again after \(Double((now - since) / 1_000_000) / 1000) s of descriptor shortage")
        }
    }

    /// A slot came free: accept again if only the connection limit held accepting back.
    /// A descriptor shortage is left to the backoff timer, so that a connection reset for
    /// want of descriptors cannot re-arm accept at once (and be followed by the next one).
    func connectionSlotFreed() {
        armAccepts()
    }
}
