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
        case .listen(let address, let e) where e == .addressInUse:
            return "cannot listen on \(address): address already in use (another mptcp-relay or service holds it)"
        case .listen(let address, let e) where e == .addressNotAvailable:
            return "cannot listen on \(address): no interface has this address"
        case .listen(let address, let e) where e == .permissionDenied || e == .notPermitted:
            return "cannot listen on \(address): permission denied (ports below 1024 and transparent listeners need CAP_NET_BIND_SERVICE / CAP_NET_ADMIN)"
        case .listen(let address, let e):
            return "cannot listen on \(address): \(e)"
        case .eventfd(let e): return "eventfd failed: \(e)"
        case .thread(let code): return "cannot start worker thread: \(errnoText(code))"
        }
    }
}

/// Everything a worker thread needs to build its loop inside the thread, because a
/// single-issuer ring belongs to the thread that creates it.
private final class WorkerLaunch: @unchecked Sendable {
    let index: Int
    let settings: RelaySettings
    let listenerFDs: [Int32]
    let wakeFD: Int32
    let counters: WorkerCounters
    let localAddresses: LocalAddresses
    let logger: Logger

    init(index: Int, settings: RelaySettings, listenerFDs: [Int32], wakeFD: Int32, counters: WorkerCounters, localAddresses: LocalAddresses, logger: Logger) {
        self.index = index
        self.settings = settings
        self.listenerFDs = listenerFDs
        self.wakeFD = wakeFD
        self.counters = counters
        self.localAddresses = localAddresses
        self.logger = logger
    }

    func run() {
        do {
            let worker = try Worker(index: index, settings: settings, listenerFDs: listenerFDs, wakeFD: wakeFD,
                                    counters: counters, localAddresses: localAddresses, logger: logger)
            worker.run()
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
    public let settings: RelaySettings
    public let counters: [WorkerCounters]
    private let logger: Logger
    private var threads: [pthread_t] = []
    private var wakeFDs: [Int32] = []
    private var joined: [Bool] = []

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

        let perWorker = try bindListeners()
        let localAddresses = LocalAddresses.current()
        for i in 0..<settings.workers {
            let wake = cnet_eventfd()
            if wake < 0 { throw .eventfd(Errno(rawValue: errno)) }
            wakeFDs.append(wake)
            var workerLogger = logger
            workerLogger[metadataKey: "worker"] = "\(i)"
            let launch = WorkerLaunch(index: i, settings: settings, listenerFDs: perWorker[i], wakeFD: wake,
                                      counters: counters[i], localAddresses: localAddresses, logger: logger)
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

    /// For each worker, one socket per listener. A probe bind without SO_REUSEPORT first,
    /// so a port already held (even by another SO_REUSEPORT group) is an error, not silently shared.
    private func bindListeners() throws(RelayError) -> [[Int32]] {
        var perWorker: [[Int32]] = Array(repeating: [], count: settings.workers)
        for l in settings.listeners {
            let transparent = l.mode == .transparent
            do {
                let probe = try Socket.listen(on: l.address, backlog: 1, reusePort: false, transparent: transparent)
                try? probe.close()
                for w in 0..<settings.workers {
                    perWorker[w].append(try Socket.listen(on: l.address, reusePort: true, transparent: transparent).rawValue)
                }
            } catch {
                for fds in perWorker { for fd in fds { close(fd) } }
                throw .listen(l.address, error)
            }
        }
        return perWorker
    }

    /// Asks every worker to stop: `.stop` keeps connections for the grace period, `.abort` resets them.
    func send(_ command: WorkerCommand) {
        for fd in wakeFDs {
            var value = command.rawValue
            _ = write(fd, &value, 8)
        }
    }

    /// Stops accepting and lets connections finish within the grace period.
    public func requestStop(immediately: Bool = false) { send(immediately ? .abort : .stop) }

    /// Control loop for the main thread: handles signals until every worker has exited.
    /// `onReload` runs on SIGHUP. Returns the process exit status.
    public func runUntilStopped(onReload: (() -> Void)? = nil) -> Int32 {
        var set = Self.controlSignals
        var stops = 0
        while true {
            var wait = timespec(tv_sec: 0, tv_nsec: 200_000_000)
            let sig = sigtimedwait(&set, nil, &wait)
            if sig == SIGTERM || sig == SIGINT {
                stops += 1
                if stops == 1 {
                    logger.notice("received \(sig == SIGTERM ? "SIGTERM" : "SIGINT"): no new connections, open ones get \(settings.gracePeriod) s (signal again to reset them now)")
                    send(.stop)
                } else {
                    logger.notice("second stop signal: resetting open connections")
                    send(.abort)
                }
            } else if sig == SIGHUP {
                if let onReload { onReload() } else { logger.notice("SIGHUP: nothing to reload (no config file)") }
            }
            for i in threads.indices where !joined[i] {
                if cnet_thread_tryjoin(threads[i]) == 0 { joined[i] = true }
            }
            if !joined.isEmpty && joined.allSatisfy({ $0 }) { break }
        }
        for fd in wakeFDs { close(fd) }
        logger.notice("stopped: \(total(.accepted)) connections accepted, \(total(.bytesUp) + total(.bytesDown)) bytes relayed")
        return 0
    }

    public func total(_ name: WorkerCounters.Name) -> UInt64 {
        counters.reduce(0) { $0 + $1.value(name) }
    }
}
