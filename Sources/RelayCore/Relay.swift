#if canImport(Glibc)
import Glibc
#endif
import Logging
import MPTCPSocket
import SystemPackage
import URing
import CNetLinux
import Synchronization
import TunnelProtocol

private let RLIMIT_NOFILE_VALUE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)

public enum RelayError: Error, CustomStringConvertible {
    case listen(SocketAddress, Errno)
    case eventfd(Errno)
    case thread(Int32)
    case workerSetup(String)

    public var description: String {
        switch self {
        case .listen(let address, let e):
            let prefix = "cannot listen on \(address): "
            switch e {
            case .addressInUse:
                return prefix + "port in use by another socket (ss -ltnp 'sport = :\(address.port)' shows which process)"
            case .addressNotAvailable:
                return prefix + "\(address.host) is not an address of this host (ip addr shows them; use 0.0.0.0 or [::] for all)"
            case .permissionDenied:
                return prefix + "ports below 1024 need CAP_NET_BIND_SERVICE (the systemd unit grants it)"
            case .notPermitted:
                return prefix + "a transparent listener needs CAP_NET_ADMIN for IP_TRANSPARENT (run as root or via the systemd unit)"
            default:
                return prefix + String(cString: strerror(e.rawValue))
            }
        case .eventfd(let e): return "eventfd failed: \(e)"
        case .thread(let code): return "cannot start worker thread: \(errnoText(code))"
        case .workerSetup(let why): return why
        }
    }
}

/// Everything one worker is given, and how it fared. The worker is built inside its own
/// thread, because a single-issuer ring belongs to the thread that creates it.
final class WorkerLaunch: @unchecked Sendable {
    enum State: Int {
        case starting, running, setupFailed, failed, stopped
    }

    let index: Int
    let settings: RelaySettings
    let listenerSockets: [(id: Int, fd: Int32)]
    let mailbox: WorkerMailbox
    let counters: WorkerCounters
    let localAddresses: LocalAddresses
    let upstreamAddresses: [String: [SocketAddress]]
    let tunnelContext: TunnelContext
    let limits: SharedLimits
    let logger: Logger
    private let stateValue = Atomic<Int>(State.starting.rawValue)
    /// Written before `state` leaves `.starting` or `.running`, read after.
    private(set) var failure = ""

    init(index: Int, settings: RelaySettings, listenerSockets: [(id: Int, fd: Int32)], mailbox: WorkerMailbox, counters: WorkerCounters,
         localAddresses: LocalAddresses, upstreamAddresses: [String: [SocketAddress]], tunnelContext: TunnelContext, limits: SharedLimits, logger: Logger) {
        self.index = index
        self.settings = settings
        self.listenerSockets = listenerSockets
        self.mailbox = mailbox
        self.counters = counters
        self.localAddresses = localAddresses
        self.upstreamAddresses = upstreamAddresses
        self.tunnelContext = tunnelContext
        self.limits = limits
        self.logger = logger
    }

    var state: State { State(rawValue: stateValue.load(ordering: .acquiring))! }

    private func set(_ state: State) { stateValue.store(state.rawValue, ordering: .releasing) }

    func run() {
        let worker: Worker
        do {
            worker = try Worker(self)
        } catch {
            failure = "worker \(index): io_uring setup failed: \(error): \(RingFeatures.whyRefused(error.code))"
            for socket in listenerSockets { close(socket.fd) }
            set(.setupFailed)
            return
        }
        set(.running)
        do {
            try worker.run()
            set(.stopped)
        } catch {
            failure = "worker \(index): io_uring failed: \(error); its connections are lost"
            set(.failed)
        }
    }
}

/// The relay process: binds listeners (one SO_REUSEPORT socket per worker, so the kernel
/// spreads connections without a shared accept queue), runs one worker thread each, and
/// turns SIGTERM/SIGINT into a graceful stop.
public final class Relay {
    public private(set) var settings: RelaySettings
    public let counters: [WorkerCounters]
    private let logger: Logger
    private var threads: [pthread_t] = []
    /// Internal, not private: Relay+Snapshot posts snapshot requests through them.
    var mailboxes: [WorkerMailbox] = []
    private var joined: [Bool] = []
    private var launches: [WorkerLaunch] = []
    /// The bound listener sockets by id (the same id in every worker), so a reload can name
    /// the ones to keep.
    private var listenerSockets: [(id: Int, settings: ListenerSettings)] = []
    private var nextSocketID = 0
    private var localAddresses = LocalAddresses(interfaceAddresses: [])
    private var tunnelContext = TunnelContext(serverAddresses: [])
    private var resolver: UpstreamResolver?
    /// Gateways with several tunnel servers: their health pings (nil until one is configured).
    private var prober: TunnelServerProber?
    private var limits: SharedLimits?
    /// The mailboxes as other threads (resolver, WAN manager) see them, filled while workers start.
    let mailboxList = MailboxList()
    /// Where upstream connections start, as the WAN manager decides (Relay+Steering).
    public let uplinks: UplinkSteeringChannel
    /// UDP flows through the tunnel (gateway and server ends); nil when no listener needs it.
    public private(set) var datagrams: DatagramEngine?

    /// max_connections at start: the size of every worker's connection table.
    private let startCapacity: Int

    public init(settings: RelaySettings, logger: Logger) {
        self.settings = settings
        startCapacity = settings.maxConnections
        self.logger = logger
        uplinks = UplinkSteeringChannel(mailboxes: mailboxList)
        counters = (0..<settings.workers).map { _ in WorkerCounters() }
    }

    /// The signals the control loop handles; blocked in every thread so only `sigtimedwait` sees them.
    private static var controlSignals: sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        sigaddset(&set, SIGHUP)
        return set
    }

    /// Binds every listener and starts the workers; returns once every worker's ring is up
    /// (so readiness is announced only then), or throws when one cannot set up.
    public func start() throws(RelayError) {
        signal(SIGPIPE, SIG_IGN)  // a write to a reset socket must fail with EPIPE, not kill us
        var set = Self.controlSignals
        pthread_sigmask(SIG_BLOCK, &set, nil)
        checkDescriptorLimit()

        let perWorker = try bindListeners(settings.listeners)
        let ids = settings.listeners.map { _ in takeSocketID() }
        listenerSockets = Array(zip(ids, settings.listeners))
        let interfaceAddresses = Socket.interfaceAddresses()
        localAddresses = LocalAddresses(interfaceAddresses: interfaceAddresses)
        // One account book for the workers' TCP connections and the engine's UDP flows.
        let accounts = TunnelKeyAccounts()
        if DatagramEngine.wanted(settings) {
            let engine = try DatagramEngine(settings: settings, steering: uplinks, accounts: accounts, logger: logger)
            try engine.start()
            datagrams = engine
        }
        tunnelContext = TunnelContext(serverAddresses: interfaceAddresses, datagrams: datagrams, accounts: accounts)
        let mailboxList = self.mailboxList
        let resolver = UpstreamResolver(logger: logger) { resolved in
            for m in mailboxList.all { m.post { $0.upstreamAddresses = resolved } }
        }
        self.resolver = resolver
        let upstreamAddresses = resolver.start(settings.listeners)
        let pipeLimit = settings.pipeMemory ?? SharedLimits.defaultPipeByteLimit()
        let limits = SharedLimits(maxConnections: settings.maxConnections, pipeByteLimit: pipeLimit) {
            for m in mailboxList.all { m.post { $0.rearm = true } }
        }
        self.limits = limits
        for i in 0..<settings.workers {
            let mailbox: WorkerMailbox
            do { mailbox = try WorkerMailbox() } catch { throw .eventfd(error) }
            mailboxes.append(mailbox)
            mailboxList.append(mailbox)
            // After the append: a steer() from now on reaches this mailbox too.
            uplinks.postCurrent(to: mailbox)
            let sockets = zip(ids, perWorker[i]).map { (id: $0, fd: $1) }
            let launch = WorkerLaunch(index: i, settings: settings, listenerSockets: sockets, mailbox: mailbox,
                                      counters: counters[i], localAddresses: localAddresses, upstreamAddresses: upstreamAddresses,
                                      tunnelContext: tunnelContext, limits: limits, logger: logger)
            launches.append(launch)
            switch startThread({ launch.run() }) {
            case .success(let thread):
                threads.append(thread)
            case .failure(let e):
                launches.removeLast()
                stopStarted()
                throw .thread(e.code)
            }
            joined.append(false)
        }
        // Each worker builds its ring first thing; a refusal (io_uring disabled, seccomp,
        // memlock) is known within milliseconds.
        while launches.contains(where: { $0.state == .starting }) {
            var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
            nanosleep(&pause, nil)
        }
        if let failed = launches.first(where: { $0.state == .setupFailed }) {
            stopStarted()
            throw .workerSetup(failed.failure)
        }
        _ = tunnelContext.accounts.install(Self.keyrings(settings))
        updateProber(settings)
        for l in settings.listeners {
            logger.notice("listening on \(l.address): \(l.mode); \(settings.workers) worker(s), splice=\(settings.spliceEngine.rawValue)")
        }
    }

    /// Every tunnel-server listener's keys: the set the running config holds.
    private static func keyrings(_ settings: RelaySettings) -> [TunnelKeyring] {
        settings.listeners.compactMap { $0.mode == .tunnelServer ? $0.tunnel?.keyring : nil }
    }

    /// Starts, updates or idles the tunnel servers' health pings for `settings`.
    private func updateProber(_ settings: RelaySettings) {
        let targets = TunnelServerProber.targets(settings)
        if prober == nil && targets.isEmpty { return }
        if prober == nil {
            let mailboxList = self.mailboxList
            let engine = datagrams
            prober = TunnelServerProber(logger: logger) { out in
                for m in mailboxList.all { m.post { $0.serversOut = out } }
                engine?.serversOut.withLock { $0 = out }
            }
        }
        prober?.update(targets)
    }

    /// Each aggregation server of a gateway, as its health pings see it (empty: none probed).
    public func tunnelServerReports() -> [TunnelServerReport] { prober?.reports() ?? [] }

    /// A tunnel server's keys: open connections and totals per key label.
    public func tunnelKeyReports() -> [TunnelKeyReport] { tunnelContext.accounts.reports() }

    /// The mailboxes as the resolver thread sees them (filled while workers start).
    final class MailboxList: @unchecked Sendable {
        private let list = Mutex<[WorkerMailbox]>([])
        func append(_ m: WorkerMailbox) { list.withLock { $0.append(m) } }
        var all: [WorkerMailbox] { list.withLock { $0 } }
    }

    private func takeSocketID() -> Int {
        defer { nextSocketID += 1 }
        return nextSocketID
    }

    /// Stops workers that did start (after another failed) and waits for them.
    private func stopStarted() {
        resolver?.stop()
        datagrams?.stop()
        requestStop(immediately: true)
        for i in threads.indices where !joined[i] {
            pthread_join(threads[i], nil)
            joined[i] = true
        }
    }

    /// Raises the soft descriptor limit to the hard one, and says at start when even that
    /// cannot hold `maxConnections` (two sockets each, two pipes more while bytes move).
    private func checkDescriptorLimit() {
        var limit = rlimit()
        guard getrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0 else { return }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(RLIMIT_NOFILE_VALUE, &raised) == 0 { limit = raised }
        }
        let available = Int(clamping: limit.rlim_cur)
        let needed = settings.maxConnections * 2 + 64
        if available < needed {
            logger.warning("descriptor limit \(available) is below what max_connections = \(settings.maxConnections) needs (about \(needed), and up to \(settings.maxConnections * 6) while every connection moves bytes): accepting will pause at about \((available - 64) / 2) connections; raise LimitNOFILE (systemd) or ulimit -n, or lower max_connections")
        }
    }

    /// Binds `listener`'s address once without SO_REUSEPORT and closes it at once, so that a
    /// port already held (even by another SO_REUSEPORT group) is an error, not silently
    /// shared. Used before binding the workers' sockets, and by `mptcp-relay check`.
    public static func probe(_ listener: ListenerSettings) throws(RelayError) {
        do {
            let fd = try Socket.listen(on: listener.address, backlog: 1, reusePort: false,
                                       transparent: listener.mode == .transparent, preferMPTCP: listener.mode.acceptsMPTCP)
            try? fd.close()
        } catch {
            throw .listen(listener.address, error)
        }
    }

    /// For each worker, one socket per listener, each address probed first (but those in
    /// `ownAddresses`: held by this relay's own sockets that a reload is about to close; the
    /// new sockets join their SO_REUSEPORT group, and take over once the old ones close).
    private func bindListeners(_ wanted: [ListenerSettings], ownAddresses: Set<SocketAddress> = []) throws(RelayError) -> [[Int32]] {
        var perWorker: [[Int32]] = Array(repeating: [], count: settings.workers)
        for l in wanted {
            do throws(RelayError) {
                if !ownAddresses.contains(l.address) { try Self.probe(l) }
                for w in 0..<settings.workers {
                    let fd: FileDescriptor
                    do {
                        fd = try Socket.listen(on: l.address, reusePort: true, transparent: l.mode == .transparent, preferMPTCP: l.mode.acceptsMPTCP)
                    } catch {
                        throw .listen(l.address, error)
                    }
                    // Accepted sockets inherit TCP_NODELAY from the listener (TCP and MPTCP
                    // alike): one setsockopt per listener instead of one per connection.
                    try? Socket.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
                    if l.mode == .tunnelServer {
                        // Gateways send their header in the SYN; accept it there (TCP_FASTOPEN queue).
                        try? Socket.setOption(fd, level: Int32(IPPROTO_TCP), name: CNET_TCP_FASTOPEN, value: 256)
                    }
                    perWorker[w].append(fd.rawValue)
                }
            } catch {
                for fds in perWorker { for fd in fds { close(fd) } }
                throw error
            }
        }
        return perWorker
    }

    /// Stops accepting and lets connections finish within the grace period, or resets them now.
    public func requestStop(immediately: Bool = false) {
        for m in mailboxes { m.post { immediately ? ($0.abort = true) : ($0.stop = true) } }
    }

    /// Applies new settings without touching established connections: listeners whose
    /// address and socket kind are unchanged keep their sockets, new ones are bound first
    /// (so a bad new listener leaves the running config as it was), removed ones close.
    public func reload(_ next: RelaySettings) throws(RelayError) {
        var next = next
        if next.workers != settings.workers {
            logger.notice("reload: the worker count (\(settings.workers) -> \(next.workers)) changes only on restart")
            next.workers = settings.workers
        }
        func sameSocket(_ a: ListenerSettings, _ b: ListenerSettings) -> Bool {
            a.address == b.address && (a.mode == .transparent) == (b.mode == .transparent) && a.mode.acceptsMPTCP == b.mode.acceptsMPTCP
        }
        var keptIDs: [Int?] = []
        var fresh: [ListenerSettings] = []
        var kept = Set<Int>()
        for l in next.listeners {
            if let s = listenerSockets.first(where: { !kept.contains($0.id) && sameSocket($0.settings, l) }) {
                kept.insert(s.id)
                keptIDs.append(s.id)
            } else {
                keptIDs.append(nil)
                fresh.append(l)
            }
        }
        // A listener whose mode changes on the same address (forward -> server, say) needs a
        // socket of another kind; the one it replaces is ours, not "another socket" in the way.
        let closing = Set(listenerSockets.filter { !kept.contains($0.id) }.map(\.settings.address))
        let opened = try bindListeners(fresh, ownAddresses: closing)
        let freshIDs = fresh.map { _ in takeSocketID() }
        for (w, mailbox) in mailboxes.enumerated() {
            var freshIndex = 0
            let sockets: [ReloadPlan.Socket] = keptIDs.map { id in
                if let id { return .keep(id: id) }
                defer { freshIndex += 1 }
                return .open(id: freshIDs[freshIndex], fd: opened[w][freshIndex])
            }
            let workerPlan = ReloadPlan(settings: next, listeners: sockets)
            mailbox.post { $0.reloads.append(workerPlan) }
        }
        let removed = listenerSockets.count - kept.count
        var freshIndex = 0
        listenerSockets = zip(keptIDs, next.listeners).map { id, l in
            if let id { return (id, l) }
            defer { freshIndex += 1 }
            return (freshIDs[freshIndex], l)
        }
        for (name, changed) in [
            ("pipe_size", next.pipeSize != settings.pipeSize), ("pipe_memory", next.pipeMemory != settings.pipeMemory),
            ("max_pending_headers", next.effectiveMaxPendingHeaders != settings.effectiveMaxPendingHeaders),
            ("max_pending_per_source", next.maxPendingPerSource != settings.maxPendingPerSource),
        ] where changed {
            logger.notice("reload: \(name) changes on restart")
        }
        let udpBefore = settings.listeners.filter(\.carriesUDP).map(\.address)
        let udpAfter = next.listeners.filter(\.carriesUDP).map(\.address)
        if udpBefore != udpAfter || (datagrams == nil && DatagramEngine.wanted(next)) {
            logger.notice("reload: UDP interception (listeners with udp = true, or a first tunnel-server listener's UDP flows) changes on restart")
        }
        datagrams?.reload(next)
        // After the comparison above: it reads the settings being replaced.
        settings = next
        // Worker tables were sized at start: a reload can lower the limit, not raise it.
        limits?.connectionLimit.store(min(next.maxConnections, startCapacity), ordering: .relaxed)
        if next.maxConnections > startCapacity {
            logger.notice("reload: max_connections above \(startCapacity) takes effect on restart")
        }
        for m in mailboxes { m.post { $0.rearm = true } }
        // Keys: a removed one is refused from now on (the new listener records no longer hold
        // it, and the accounts refuse it to a header still read under an old record); with
        // revoke = "now" its open connections are reset too. Other keys are untouched.
        let revoked = tunnelContext.accounts.install(Self.keyrings(next))
        if !revoked.isEmpty && next.listeners.contains(where: { $0.mode == .tunnelServer && $0.tunnel?.revokeNow == true }) {
            for m in mailboxes { m.post { $0.revokedKeys = revoked } }
            datagrams?.revoke(revoked)
            logger.notice("reload: revoke = \"now\": resetting the open connections of \(revoked.count) removed key(s)")
        }
        updateProber(next)
        resolver?.update(next.listeners)
        logger.notice("reloaded: \(next.listeners.count) listener(s): \(kept.count) kept, \(fresh.count) new, \(removed) closed")
    }

    /// Control loop for the main thread: handles signals until every worker has exited.
    /// `onReload` runs on SIGHUP. Returns the process exit status.
    public func runUntilStopped(onReload: (() -> Void)? = nil, onStopping: (() -> Void)? = nil) -> Int32 {
        var set = Self.controlSignals
        var stops = 0
        var status: Int32 = 0
        var addressesCheckedAt = Self.monotonicSeconds()
        // The control signals are blocked in every thread the relay starts, but a thread some
        // library starts on its own may not block them, and the kernel may hand it a signal
        // (when this thread is busy, say with a reload). There a SIGHUP's default action
        // would end the process: a handler that only records it makes it wait for this loop.
        for sig in [SIGTERM, SIGINT, SIGHUP] { _ = cnet_record_signal(sig) }
        func handle(_ sig: Int32) {
            if sig == SIGTERM || sig == SIGINT {
                stops += 1
                if stops == 1 {
                    onStopping?()
                    logger.notice("received \(sig == SIGTERM ? "SIGTERM" : "SIGINT"): no new connections, open ones get \(settings.gracePeriod) s (signal again to reset them now)")
                    requestStop()
                } else {
                    logger.notice("second stop signal: resetting open connections")
                    requestStop(immediately: true)
                }
            } else if sig == SIGHUP {
                if stops > 0 || joined.contains(true) {
                    // Workers that stopped read no mailbox: sockets bound for them would listen unserved.
                    logger.notice("SIGHUP ignored: the relay is stopping")
                } else if let onReload { onReload() } else { logger.notice("SIGHUP: nothing to reload (no config file)") }
            }
        }
        while true {
            var wait = timespec(tv_sec: 0, tv_nsec: 200_000_000)
            handle(sigtimedwait(&set, nil, &wait))
            let recorded = cnet_take_recorded_signals()
            for sig in [SIGTERM, SIGINT, SIGHUP] where recorded & (1 << UInt32(sig)) != 0 {
                logger.debug("signal \(sig) was delivered to another thread: handled here")
                handle(sig)
            }
            for i in threads.indices where !joined[i] {
                guard cnet_thread_tryjoin(threads[i]) == 0 else { continue }
                joined[i] = true
                if launches[i].state == .failed && status == 0 {
                    // A worker without its ring cannot serve: stop the rest and exit non-zero,
                    // so a supervisor (systemd Restart=on-failure) starts the relay again.
                    logger.critical("\(launches[i].failure); stopping the relay")
                    status = 1
                    onStopping?()
                    requestStop(immediately: true)
                }
            }
            if !joined.isEmpty && joined.allSatisfy({ $0 }) { break }
            if Self.monotonicSeconds() - addressesCheckedAt >= 2 {
                addressesCheckedAt = Self.monotonicSeconds()
                refreshLocalAddresses()
            }
        }
        resolver?.stop()
        datagrams?.stop()
        prober?.stop()
        logger.notice("stopped: \(total(.accepted)) connections accepted, \(total(.bytesUp) + total(.bytesDown)) bytes relayed")
        return status
    }

    /// Re-reads the host's addresses; when they changed, the loop guard and the tunnel
    /// server's own-address denial follow (getifaddrs every 2 s is cheap next to a netlink
    /// subscription, and needs nothing from the workers' rings).
    private func refreshLocalAddresses() {
        let interfaceAddresses = Socket.interfaceAddresses()
        let current = LocalAddresses(interfaceAddresses: interfaceAddresses)
        guard current != localAddresses else { return }
        localAddresses = current
        tunnelContext.update(serverAddresses: interfaceAddresses)
        for m in mailboxes { m.post { $0.localAddresses = current } }
        logger.debug("host addresses changed: \(current.hosts.count) address(es)")
    }

    private static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    public func total(_ name: WorkerCounters.Name) -> UInt64 {
        counters.reduce(0) { $0 + $1.value(name) }
    }
}
