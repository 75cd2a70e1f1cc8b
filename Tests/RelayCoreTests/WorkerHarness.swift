#if canImport(Glibc)
import Glibc
#endif
import Logging
import MPTCPSocket
import Synchronization
import SystemPackage
import Testing
@testable import RelayCore

/// A worker built for a test: its own ring and real loopback sockets, but no thread and no
/// loop of its own. The test calls the worker's entry points (startConnection, completions,
/// tick) itself, one batch of completions at a time, and can stand in for the kernel by
/// handing the worker a completion it makes up.
final class WorkerUnderTest {
    let worker: Worker
    let log = CapturedLog()

    init(_ listeners: [ListenerSettings], _ configure: (inout RelaySettings) -> Void = { _ in }) throws {
        var settings = RelaySettings(listeners: listeners)
        settings.workers = 1
        settings.maxConnections = 4
        settings.ringEntries = 64
        configure(&settings)
        let limits = SharedLimits(maxConnections: settings.maxConnections, pipeByteLimit: Int.max) {}
        let log = self.log
        var logger = Logger(label: "worker-under-test") { _ in CapturingLogHandler(log: log) }
        logger.logLevel = .debug
        let launch = WorkerLaunch(index: 0, settings: settings, listenerSockets: listeners.indices.map { (id: $0, fd: -1) },
                                  mailbox: try WorkerMailbox(), counters: WorkerCounters(),
                                  localAddresses: LocalAddresses(hosts: ["127.0.0.1", "::1"]), upstreamAddresses: [:],
                                  tunnelContext: TunnelContext(serverAddresses: []), limits: limits, logger: logger)
        worker = try Worker(launch)
        worker.now = Self.monotonic()
    }

    static func monotonic() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC_COARSE, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// Accepts `client` as the worker's loop would, under listener record `listener`.
    func accept(_ pair: LoopbackPair, listener: Int = 0) {
        var peer = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        withUnsafeMutablePointer(to: &peer) { _ = getpeername(pair.accepted, UnsafeMutableRawPointer($0).assumingMemoryBound(to: sockaddr.self), &length) }
        worker.startConnection(client: pair.accepted, listener: listener, peer: peer)
        pair.handedOver = true
    }

    /// Completions the kernel delivered that the worker must not see (a test standing in
    /// for a lost one).
    var dropping: ((OperationToken) -> Bool)? = nil

    /// Submits what the worker prepared and hands it one batch of completions, as its loop
    /// does (a 1 s timer bounds the wait). `fault` may replace a completion's result.
    func turn(fault: ((OperationToken, Int32) -> Int32?)? = nil) throws {
        worker.ring.timeout(worker.tickSpec, userData: OperationToken(.tick).raw)
        try worker.ring.submitAndWait(1)
        worker.now = Self.monotonic()
        _ = worker.ring.drainCompletions { userData, result, _ in
            let token = OperationToken(raw: userData)
            guard let kind = token.kind, OperationToken.namesConnection(kind), dropping?(token) != true else { return }
            worker.connectionOperationCompleted(kind, token, fault?(token, result) ?? result)
        }
    }

    /// A client through `front`, accepted, with its upstream connect completed.
    func connectedClient(through front: LoopbackListener) throws -> LoopbackPair {
        let pair = try LoopbackPair(to: front)
        accept(pair)
        try turn(until: { slot0.pointee.phase != .connecting })
        return pair
    }

    /// Turns until `done` holds (at most `limit` turns).
    func turn(until done: () -> Bool, limit: Int = 50) throws {
        var n = 0
        while !done() && n < limit {
            try turn()
            n += 1
        }
    }

    var slot0: UnsafeMutablePointer<Connection> { worker.table[0] }
}

/// A log handler that keeps the lines (the close line says how a connection ended).
final class CapturedLog: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

struct CapturingLogHandler: LogHandler {
    let log: CapturedLog
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(level: Logger.Level, message: Logger.Message, metadata: Logger.Metadata?, source: String, file: String, function: String, line: UInt) {
        log.append("\(level) \(message)")
    }
}

/// A TCP listener on 127.0.0.1 (a free port) standing in for an upstream or a tunnel server.
final class LoopbackListener {
    let fd: Int32
    let address: SocketAddress

    init(mptcp: Bool = false) throws {
        let listener = try Socket.listen(on: SocketAddress(host: "127.0.0.1", port: 0)!, backlog: 16, reusePort: false, preferMPTCP: mptcp)
        fd = listener.rawValue
        address = try #require(try Socket.localAddress(listener))
    }

    deinit { close(fd) }

    /// The connection waiting in the backlog, or nil (nonblocking).
    func accept() -> Int32? {
        let s = Glibc.accept(fd, nil, nil)
        return s >= 0 ? s : nil
    }
}

/// A connected loopback pair: `client` is the test's end, `accepted` the relay's.
final class LoopbackPair {
    private(set) var client: Int32
    let accepted: Int32
    /// The worker owns `accepted` once it has been handed over.
    var handedOver = false

    init(to listener: LoopbackListener) throws {
        let client = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.client = client
        let rc = listener.address.withSockaddr { Glibc.connect(client, $0, $1) }
        try #require(rc == 0, "connect: \(errno)")
        var accepted: Int32 = -1
        for _ in 0..<100 {
            if let s = listener.accept() { accepted = s; break }
            usleep(10_000)
        }
        try #require(accepted >= 0)
        self.accepted = accepted
        _ = fcntl(accepted, F_SETFL, fcntl(accepted, F_GETFL) | O_NONBLOCK)
    }

    deinit {
        if client >= 0 { close(client) }
        if !handedOver { close(accepted) }
    }

    /// Closes the test's end with a reset (SO_LINGER 0).
    func resetClient() {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(client, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        close(client)
        client = -1
    }
}

/// Reads what `fd` holds now (nonblocking): the bytes, and how the stream stands after them.
enum StreamEnd: Equatable { case open, fin, reset }

func drain(_ fd: Int32, into bytes: inout [UInt8]) -> StreamEnd {
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = recv(fd, &chunk, chunk.count, Int32(MSG_DONTWAIT))
        if n > 0 { bytes += chunk[0..<n]; continue }
        if n == 0 { return .fin }
        return errno == EAGAIN ? .open : .reset
    }
}
