#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import Logging
import MPTCPSocket
import Synchronization
import SystemPackage
import TunnelProtocol

/// One aggregation server of a gateway as its health pings see it.
public struct TunnelServerReport: Sendable, Equatable {
    public var address: SocketAddress
    public var inService: Bool
    /// The last ping's outcome: "answered", "refused: Not Authorized (32)", "no answer ...".
    public var detail: String
    /// The last answered ping's round trip (connect, request, reply), in ms.
    public var rttMs: Double?
    /// Seconds since the epoch of the last change in or out of service (0: never changed).
    public var since: Double
    public var rounds: UInt64
    public var failedRounds: UInt64
    public var transitions: UInt64
}

/// A gateway's health checks of its aggregation servers, over the tunnel itself: every
/// second each server gets a ping (an authenticated request for TunnelHeader.pingDestination,
/// made with the listener's key and key id) and must answer success within 0.8 s. A TCP
/// connect alone would call a server "up" that has lost the gateway's key, or whose relay
/// refuses everything. Two failed pings in a row (dead, refusing, silent) take a server out
/// of service: within 3 s of its death (a ping at most 1 s after, the next 1 s later, plus
/// the 0.8 s wait when it is silent); the first answered ping puts it back.
///
/// Its own thread, blocking only in poll(2) on its own non-blocking sockets; verdicts reach
/// the workers through their mailboxes (`onChange`), never a lock on the data path. Only
/// listeners with two or more servers are probed: with one there is nowhere else to go.
public final class TunnelServerProber: @unchecked Sendable {
    public struct Target: Sendable, Equatable {
        public var address: SocketAddress
        public var key: TunnelKey
        public var keyName: KeyName?

        public static func == (a: Target, b: Target) -> Bool {
            a.address == b.address && a.key.id == b.key.id && a.keyName == b.keyName
        }
    }

    static let interval: Int64 = 1_000_000_000
    static let timeout: Int64 = 800_000_000
    static let fall = 2

    private struct Health {
        var target: Target
        var failures = 0
        var report: TunnelServerReport
    }

    private let state = Mutex<[Health]>([])
    private let stopping = Atomic<Bool>(false)
    private var thread: pthread_t?
    private let onChange: @Sendable (Set<SocketAddress>) -> Void
    private let logger: Logger

    public init(logger: Logger, onChange: @escaping @Sendable (Set<SocketAddress>) -> Void) {
        self.logger = logger
        self.onChange = onChange
    }

    /// The servers of every listener that has more than one, with that listener's key; a
    /// server named by two listeners is pinged once (with the first one's key).
    public static func targets(_ settings: RelaySettings, includingSingle: Bool = false) -> [Target] {
        var targets: [Target] = []
        for l in settings.listeners where l.tunnelsOut {
            guard let tunnel = l.tunnel, tunnel.servers.count > (includingSingle ? 0 : 1), let key = tunnel.key else { continue }
            for s in tunnel.servers where !targets.contains(where: { $0.address == s }) {
                targets.append(Target(address: s, key: key, keyName: tunnel.keyName))
            }
        }
        return targets
    }

    /// New targets (start, reload): servers still listed keep their state; the thread starts
    /// with the first target.
    public func update(_ targets: [Target]) {
        let out: Set<SocketAddress> = state.withLock { list in
            list = targets.map { t in
                if var kept = list.first(where: { $0.target.address == t.address }) {
                    kept.target = t
                    return kept
                }
                return Health(target: t, report: TunnelServerReport(address: t.address, inService: true, detail: "not probed yet",
                                                                     rttMs: nil, since: 0, rounds: 0, failedRounds: 0, transitions: 0))
            }
            return Set(list.filter { !$0.report.inService }.map(\.target.address))
        }
        onChange(out)
        if thread == nil && !targets.isEmpty { startThread() }
    }

    public func reports() -> [TunnelServerReport] { state.withLock { $0.map(\.report) } }

    public func stop() {
        stopping.store(true, ordering: .relaxed)
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    private func startThread() {
        switch RelayCore.startThread({ self.run() }) {
        case .success(let t):
            thread = t
        case .failure(let e):
            let rc = e.code
            logger.error("tunnel: cannot start the server health thread: \(String(cString: strerror(rc))); every server is taken as in service")
        }
    }

    private func run() {
        while !stopping.load(ordering: .relaxed) {
            let started = Self.monotonic()
            let targets = state.withLock { $0.map(\.target) }
            let outcomes = Self.ping(targets)
            record(targets, outcomes)
            // The rest of the interval, in short naps so that stop() is prompt.
            while !stopping.load(ordering: .relaxed) && Self.monotonic() - started < Self.interval {
                var nap = timespec(tv_sec: 0, tv_nsec: 50_000_000)
                nanosleep(&nap, nil)
            }
        }
    }

    public enum Outcome: Equatable, Sendable, CustomStringConvertible {
        case answered(rttNanoseconds: Int64)
        case refused(ErrorCode)
        case failed(String)

        public var description: String {
            switch self {
            case .answered(let rtt): return "answered in \(Double(rtt / 10_000) / 100) ms"
            case .refused(let code): return "refused: \(code)"
            case .failed(let why): return why
            }
        }
    }

    private func record(_ targets: [Target], _ outcomes: [Outcome]) {
        var changes: [String] = []
        let out: Set<SocketAddress>? = state.withLock { list in
            var changed = false
            for (t, outcome) in zip(targets, outcomes) {
                guard let i = list.firstIndex(where: { $0.target == t }) else { continue }
                var h = list[i]
                h.report.rounds += 1
                switch outcome {
                case .answered(let rtt):
                    h.failures = 0
                    h.report.rttMs = Double(rtt) / 1e6
                    h.report.detail = "answered"
                    if !h.report.inService {
                        h.report.inService = true
                        changes.append("tunnel server \(t.address) answers again: back in service")
                    }
                case .refused(let code):
                    h.failures += 1
                    h.report.failedRounds += 1
                    h.report.detail = "refused: \(code)"
                case .failed(let why):
                    h.failures += 1
                    h.report.failedRounds += 1
                    h.report.detail = why
                }
                // An answer reset the count, so only failures can get here.
                if h.report.inService && h.failures >= Self.fall {
                    h.report.inService = false
                    changes.append("tunnel server \(t.address) out of service: \(h.report.detail) (\(h.failures) pings in a row)")
                }
                if h.report.inService != list[i].report.inService {
                    changed = true
                    h.report.transitions += 1
                    h.report.since = Self.wallClock()
                }
                list[i] = h
            }
            return changed ? Set(list.filter { !$0.report.inService }.map(\.target.address)) : nil
        }
        for line in changes { logger.notice("\(line)") }
        if let out { onChange(out) }
    }

    // MARK: one round of pings

    private enum Stage { case connecting, reading, done }

    /// Pings every target at once and waits at most `timeout` for all of them.
    public static func ping(_ targets: [Target]) -> [Outcome] {
        var fds = [Int32](repeating: -1, count: targets.count)
        var stages = [Stage](repeating: .done, count: targets.count)
        var outcomes = [Outcome](repeating: .failed("not sent"), count: targets.count)
        var replies = [[UInt8]](repeating: [], count: targets.count)
        let started = monotonic()
        defer { for fd in fds where fd >= 0 { close(fd) } }
        for (i, t) in targets.enumerated() {
            do {
                let (fd, _) = try Socket.openStream(family: t.address.family, preferMPTCP: false)
                fds[i] = fd.rawValue
                var storage = sockaddr_storage()
                let length = t.address.write(to: &storage)
                let rc = withUnsafePointer(to: &storage) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd.rawValue, $0, length) } }
                if rc == 0 || errno == EINPROGRESS {
                    stages[i] = .connecting
                } else {
                    outcomes[i] = .failed("connect: \(String(cString: strerror(errno)))")
                }
            } catch {
                outcomes[i] = .failed("socket: \(error)")
            }
        }
        while stages.contains(where: { $0 != .done }) {
            let left = timeout - (monotonic() - started)
            if left <= 0 { break }
            var polls = stages.indices.filter { stages[$0] != .done }.map { i in
                pollfd(fd: fds[i], events: Int16(stages[i] == .connecting ? POLLOUT : POLLIN), revents: 0)
            }
            let waiting = stages.indices.filter { stages[$0] != .done }
            let n = poll(&polls, nfds_t(polls.count), Int32(max(1, left / 1_000_000)))
            if n < 0 && errno != EINTR { break }
            for (p, i) in zip(polls, waiting) where p.revents != 0 {
                switch stages[i] {
                case .connecting:
                    let soError = Socket.pendingError(FileDescriptor(rawValue: fds[i]))
                    guard soError == 0 else {
                        outcomes[i] = .failed("connect: \(String(cString: strerror(soError)))")
                        stages[i] = .done
                        continue
                    }
                    var request = [UInt8](repeating: 0, count: TunnelHeader.maximumRequestLength)
                    let length = request.withUnsafeMutableBytes {
                        TunnelHeader.encodeRequest(destination: TunnelHeader.pingDestination, key: targets[i].key, keyName: targets[i].keyName,
                                                   now: UInt64(time(nil)), nonce: .random(), into: $0)
                    }
                    let sent = send(fds[i], request, length, Int32(MSG_NOSIGNAL))
                    if sent == length {
                        stages[i] = .reading
                    } else {
                        outcomes[i] = .failed("send: \(String(cString: strerror(errno)))")
                        stages[i] = .done
                    }
                case .reading:
                    var chunk = [UInt8](repeating: 0, count: 64)
                    let got = recv(fds[i], &chunk, chunk.count, Int32(MSG_DONTWAIT))
                    if got < 0 && (errno == EAGAIN || errno == EINTR) { continue }
                    if got <= 0 {
                        outcomes[i] = .failed(got == 0 ? "closed without answering" : "read: \(String(cString: strerror(errno)))")
                        stages[i] = .done
                        continue
                    }
                    replies[i] += chunk[..<got]
                    switch replies[i].withUnsafeBytes({ TunnelHeader.parseReply($0) }) {
                    case .needMore: continue
                    case .success: outcomes[i] = .answered(rttNanoseconds: monotonic() - started)
                    case .failure(let code, _): outcomes[i] = .refused(code)
                    case .invalid: outcomes[i] = .failed("answered something that is not a tunnel reply")
                    }
                    stages[i] = .done
                case .done: break
                }
            }
        }
        for i in stages.indices where stages[i] != .done {
            outcomes[i] = .failed(stages[i] == .connecting ? "no connection within \(Double(timeout) / 1e9) s" : "no answer within \(Double(timeout) / 1e9) s")
        }
        return outcomes
    }

    /// CLOCK_MONOTONIC at full resolution (the workers' precise clock).
    static func monotonic() -> Int64 { Worker.preciseNanoseconds() }

    static func wallClock() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }
}
