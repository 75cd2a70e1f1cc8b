#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Logging
import MPTCPSocket
import RelayCore

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the relay in the foreground.",
        discussion: """
            Forward mode:      mptcp-relay run --listen 0.0.0.0:8080 --upstream 203.0.113.7:80
            Transparent mode:  mptcp-relay run --listen [::]:7000 --transparent   (nftables TPROXY)
            Redirect mode:     mptcp-relay run --listen [::]:7001 --redirect      (NAT REDIRECT)
            """)

    @Option(help: ArgumentHelp("Address to accept plain TCP on: HOST:PORT or [IPv6]:PORT.", valueName: "host:port"))
    var listen: SocketAddress

    @Option(help: ArgumentHelp("Fixed upstream (forward mode).", valueName: "host:port"))
    var upstream: SocketAddress?

    @Flag(help: "Intercepted by TPROXY: the upstream is each connection's original destination.")
    var transparent = false

    @Flag(help: "Intercepted by NAT REDIRECT: the upstream comes from SO_ORIGINAL_DST.")
    var redirect = false

    @Option(help: "Worker threads, each with its own io_uring (default: one per CPU).")
    var workers: Int?

    @Option(help: ArgumentHelp("Seconds to wait for the upstream connect.", valueName: "seconds"))
    var connectTimeout: Double = 10

    @Option(help: ArgumentHelp("Seconds without traffic before a connection is closed (0: never).", valueName: "seconds"))
    var idleTimeout: Double = 3600

    @Option(help: ArgumentHelp("Seconds open connections get to finish after SIGTERM/SIGINT.", valueName: "seconds"))
    var grace: Double = 30

    @Option(help: "Most simultaneous connections (accepting pauses at the limit).")
    var maxConnections: Int = 8192

    @Option(help: ArgumentHelp("Bytes per splice pipe.", valueName: "bytes"))
    var pipeSize: Int = 256 * 1024

    @Option(help: "How splice runs: inline (splice(2) from the event loop on ring readiness) or ring (IORING_OP_SPLICE).")
    var splice: SpliceEngine = .inline

    @Flag(help: "Open plain TCP upstream instead of MPTCP (for comparisons).")
    var noMptcp = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    func validate() throws {
        let modes = (upstream != nil ? 1 : 0) + (transparent ? 1 : 0) + (redirect ? 1 : 0)
        if modes == 0 { throw ValidationError("give --upstream HOST:PORT (forward), --transparent or --redirect") }
        if modes > 1 { throw ValidationError("--upstream, --transparent and --redirect exclude each other: pick one") }
        if let workers, workers < 1 || workers > 256 { throw ValidationError("--workers must be between 1 and 256") }
        if connectTimeout < 0 || idleTimeout < 0 || grace < 0 { throw ValidationError("timeouts cannot be negative") }
        if maxConnections < 1 { throw ValidationError("--max-connections must be at least 1") }
        if pipeSize < 4096 || pipeSize > 64 << 20 { throw ValidationError("--pipe-size must be between 4096 and 67108864 bytes") }
    }

    func settings() -> RelaySettings {
        let mode: ListenerMode
        if let upstream { mode = .forward(upstream: upstream) } else if transparent { mode = .transparent } else { mode = .redirect }
        var s = RelaySettings(listeners: [ListenerSettings(address: listen, mode: mode)])
        if let workers { s.workers = workers }
        s.connectTimeout = connectTimeout
        s.idleTimeout = idleTimeout
        s.gracePeriod = grace
        s.maxConnections = maxConnections
        s.pipeSize = pipeSize
        s.spliceEngine = splice
        s.upstreamMPTCP = !noMptcp
        return s
    }

    func run() throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "mptcp-relay")
        let relay = Relay(settings: settings(), logger: logger)
        do {
            try relay.start()
        } catch {
            logger.critical("\(error)")
            throw ExitCode(1)
        }
        if !MPTCP.isAvailable() && !noMptcp {
            logger.warning("this kernel or namespace refuses MPTCP sockets (net.mptcp.enabled=0?): upstreams will be plain TCP")
        }
        let status = relay.runUntilStopped()
        if status != 0 { throw ExitCode(status) }
    }
}
