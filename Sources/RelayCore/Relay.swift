#if canImport(Glibc)
import Glibc
#endif
import Logging
import MPTCPSocket
import SystemPackage
import URing
import CNetLinux

public enum RelayError: Error, CustomStringConvertible {
    case listen(SocketAddress, Errno)
    case eventfd(Errno)
    case thread(Int32)

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
        }
    }
}

/// Everything one worker is given. The worker is built inside its own thread, because a
/// single-issuer ring belongs to the thread that creates it.
final class WorkerLaunch: @unchecked Sendable {
    let index: Int
    let settings: RelaySettings
    let listenerFDs: [Int32]
    let mailbox: WorkerMailbox
    let counters: WorkerCounters
    let localAddresses: LocalAddresses
    let tunnelContext: TunnelContext
    let logger: Logger

    init(index: Int, settings: RelaySettings, listenerFDs: [Int32], mailbox: WorkerMailbox, counters: WorkerCounters,
         localAddresses: LocalAddresses, tunnelContext: TunnelContext, logger: Logger) {
        self.index = index
        self.settings = settings
        self.listenerFDs = listenerFDs
        self.mailbox = mailbox
        self.counters = counters
        self.localAddresses = localAddresses
        self.tunnelContext = tunnelContext
        self.logger = logger
    }

    func run() {
        do {
            try Worker(self).run()
        } catch {
            logger.critical("worker \(index): io_uring setup failed: \(error) (is io_uring disabled by sysctl kernel.io_uring_disabled or seccomp?)")
            for fd in listenerFDs { close(fd) }
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
    private var mailboxes: [WorkerMailbox] = []
    private var joined: [Bool] = []
    /// Mirrors each worker's listener array (nil where a reload removed one), so a reload
    /// can name the sockets to keep by index.
    private var listenerSlots: [ListenerSettings?] = []

    public init(settings: RelaySettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
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

    /// Binds every listener and starts the workers.
    public func start() throws(RelayError) {
        signal(SIGPIPE, SIG_IGN)  // a write to a reset socket must fail with EPIPE, not kill us
        var set = Self.controlSignals
        pthread_sigmask(SIG_BLOCK, &set, nil)

        let perWorker = try bindListeners(settings.listeners)
        listenerSlots = settings.listeners
        let localAddresses = LocalAddresses.current()
        let tunnelContext = TunnelContext(serverAddresses: Socket.interfaceAddresses())
        for i in 0..<settings.workers {
            let mailbox: WorkerMailbox
            do { mailbox = try WorkerMailbox() } catch { throw .eventfd(error) }
            mailboxes.append(mailbox)
            let launch = WorkerLaunch(index: i, settings: settings, listenerFDs: perWorker[i], mailbox: mailbox,
                                      counters: counters[i], localAddresses: localAddresses, tunnelContext: tunnelContext, logger: logger)
            var thread = pthread_t()
            let box = Unmanaged.passRetained(launch).toOpaque()
            let rc = pthread_create(&thread, nil, { arg in
                let launch = Unmanaged<WorkerLaunch>.fromOpaque(arg!).takeRetainedValue()
                launch.run()
                return nil
            }, box)
            if rc != 0 { throw .thread(rc) }
            threads.append(thread)
            joined.append(false)
        }
        for l in settings.listeners {
            logger.notice("listening on \(l.address): \(l.mode); \(settings.workers) worker(s), splice=\(settings.spliceEngine.rawValue)")
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

    /// For each worker, one socket per listener, each address probed first.
    private func bindListeners(_ wanted: [ListenerSettings]) throws(RelayError) -> [[Int32]] {
        var perWorker: [[Int32]] = Array(repeating: [], count: settings.workers)
        for l in wanted {
            do throws(RelayError) {
                try Self.probe(l)
                for w in 0..<settings.workers {
                    let fd: FileDescriptor
                    do {
                        fd = try Socket.listen(on: l.address, reusePort: true, transparent: l.mode == .transparent, preferMPTCP: l.mode.acceptsMPTCP)
                    } catch {
                        throw .listen(l.address, error)
                    }
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
        var plan: [ReloadPlan.Socket?] = []
        var fresh: [ListenerSettings] = []
        var kept = Set<Int>()
        for l in next.listeners {
            if let i = listenerSlots.indices.first(where: { !kept.contains($0) && listenerSlots[$0].map { sameSocket($0, l) } == true }) {
                kept.insert(i)
                plan.append(.keep(i))
            } else {
                plan.append(nil)
                fresh.append(l)
            }
        }
        let opened = try bindListeners(fresh)
        for (w, mailbox) in mailboxes.enumerated() {
            var freshIndex = 0
            let sockets: [ReloadPlan.Socket] = plan.map { entry in
                if let entry { return entry }
                defer { freshIndex += 1 }
                return .open(opened[w][freshIndex])
            }
            let workerPlan = ReloadPlan(settings: next, listeners: sockets)
            mailbox.post { $0.reloads.append(workerPlan) }
        }
        let removed = listenerSlots.compactMap { $0 }.count - kept.count
        listenerSlots = listenerSlots.indices.map { i in
            guard kept.contains(i), let p = plan.firstIndex(where: { if case .keep(i) = $0 { return true } else { return false } }) else { return nil }
            return next.listeners[p]
        } + fresh
        settings = next
        logger.notice("reloaded: \(next.listeners.count) listener(s): \(kept.count) kept, \(fresh.count) new, \(removed) closed")
    }

    /// Control loop for the main thread: handles signals until every worker has exited.
    /// `onReload` runs on SIGHUP. Returns the process exit status.
    public func runUntilStopped(onReload: (() -> Void)? = nil, onStopping: (() -> Void)? = nil) -> Int32 {
        var set = Self.controlSignals
        var stops = 0
        while true {
            var wait = timespec(tv_sec: 0, tv_nsec: 200_000_000)
            let sig = sigtimedwait(&set, nil, &wait)
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
                if let onReload { onReload() } else { logger.notice("SIGHUP: nothing to reload (no config file)") }
            }
            for i in threads.indices where !joined[i] {
                if cnet_thread_tryjoin(threads[i]) == 0 { joined[i] = true }
            }
            if !joined.isEmpty && joined.allSatisfy({ $0 }) { break }
        }
        logger.notice("stopped: \(total(.accepted)) connections accepted, \(total(.bytesUp) + total(.bytesDown)) bytes relayed")
        return 0
    }

    public func total(_ name: WorkerCounters.Name) -> UInt64 {
        counters.reduce(0) { $0 + $1.value(name) }
    }
}
