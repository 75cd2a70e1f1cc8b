#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Netlink
import SystemPackage

/// What one WAN is probed with in a round: built by the manager from the kernel's state.
struct ProbeJob: Sendable, Equatable {
    struct Probe: Sendable, Equatable {
        var target: ProbeTarget
        var address: IPAddress
        var source: IPAddress
        /// The gateway probed because no default target has answered yet.
        var fallback: Bool
        /// A TCP RST counts as an answer: true for targets the operator chose (a closed port
        /// is a fine target); false for the default targets, which listen, so a RST for them
        /// comes from something on the way (a modem, a captive portal) and proves nothing.
        var acceptReset = true
    }
    var wan: String
    var interface: String
    var probes: [Probe]
}

/// A round's outcome for one WAN.
struct ProbeResult: Sendable, Equatable {
    var wan: String
    var answered: [String] = []
    var fallbackAnswered: [String] = []
    var failed: [String] = []
    /// Probes this process could not even set up (out of descriptors or memory, no
    /// CAP_NET_RAW for a ping socket): they say nothing about the WAN, so a round of only
    /// these is not counted. A relay short of descriptors must not conclude that every WAN
    /// is dead and refuse every connection.
    var unable: [String] = []
    /// The quickest answer of the round, in milliseconds (the WAN's RTT as the dashboard shows it).
    var fastestMs: Double?

    /// The round's verdict: answered or not, and the detail for logs; nil when it says
    /// nothing (only probes that could not be set up, or a fallback answer that no longer
    /// counts).
    func verdict(defaultsAnswered: Bool) -> (answered: Bool, detail: String)? {
        if !answered.isEmpty { return (true, "answered: \(answered.joined(separator: ", "))") }
        if !defaultsAnswered && !fallbackAnswered.isEmpty {
            return (true, "answered by the gateway fallback (no default target has answered on any WAN yet): \(fallbackAnswered.joined(separator: ", "))")
        }
        guard !failed.isEmpty else { return nil }
        return (false, "no answer: \(failed.joined(separator: "; "))")
    }
}

/// Runs probe rounds on a thread of its own, every `interval`: every probe of every WAN at
/// once, each waited for up to `timeout`. Never blocks the manager's netlink loop.
final class WanProber: @unchecked Sendable {
    private let jobs: @Sendable () -> ([ProbeJob], HealthSettings)
    private let deliver: @Sendable ([ProbeResult]) -> Void
    /// Self-pipe: stop() and poke() end a round or a pause at once.
    private let wakeRead: Int32
    private let wakeWrite: Int32
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var stopping = false
    /// Settings changed since the current round began: the next one starts without a pause.
    private var poked = false
    private var sequence: UInt16 = 0
    private var thread: Thread?

    init(jobs: @escaping @Sendable () -> ([ProbeJob], HealthSettings), deliver: @escaping @Sendable ([ProbeResult]) -> Void) {
        self.jobs = jobs
        self.deliver = deliver
        var ends: [Int32] = [-1, -1]
        if pipe(&ends) == 0 {
            for fd in ends {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            }
        } else {
            ends = [-1, -1]
        }
        wakeRead = ends[0]
        wakeWrite = ends[1]
    }

    deinit {
        if wakeRead >= 0 { close(wakeRead) }
        if wakeWrite >= 0 { close(wakeWrite) }
    }

    /// New settings (a reload): the next round starts now, on the new interval.
    func poke() {
        lock.withLock { poked = true }
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)
    }

    func start() {
        thread = Thread.startBlockingSignals(name: "wan-prober") { [self] in
            loop()
            done.signal()
        }
    }

    func stop() {
        lock.withLock { stopping = true }
        var one: UInt8 = 1
        _ = write(wakeWrite, &one, 1)
        if thread != nil { done.wait() }
    }

    private func loop() {
        while !lock.withLock({ stopping }) {
            let started = DispatchTime.now().uptimeNanoseconds
            lock.withLock { poked = false }
            let (work, settings) = jobs()
            if settings.enabled && !work.isEmpty {
                sequence &+= 1
                let results = Self.round(work, timeout: settings.timeout, sequence: sequence, wake: wakeRead) { [self] in
                    lock.withLock { stopping }
                }
                if lock.withLock({ stopping }) { break }
                deliver(results)
            }
            let next = started + UInt64(settings.interval * 1e9)
            let now = DispatchTime.now().uptimeNanoseconds
            if next > now && !lock.withLock({ poked }) {
                var fd = pollfd(fd: wakeRead, events: Int16(POLLIN), revents: 0)
                _ = poll(&fd, 1, Int32(min(Double(Int32.max), Double(next - now) / 1e6)))
            }
            var sink = [UInt8](repeating: 0, count: 16)
            while read(wakeRead, &sink, 16) > 0 {}
        }
    }

    /// Starts every probe, then polls them together until each is decided or `timeout`
    /// passes, or `wake` becomes readable (stop: the round is abandoned).
    static func round(_ jobs: [ProbeJob], timeout: Double, sequence: UInt16, wake: Int32 = -1,
                      abandon: () -> Bool = { false }) -> [ProbeResult] {
        var results = jobs.map { ProbeResult(wan: $0.wan) }
        var open: [(job: Int, probe: ProbeJob.Probe, socket: ProbeSocket, started: UInt64)] = []
        for (j, job) in jobs.enumerated() {
            for probe in job.probes {
                let label = label(probe)
                do {
                    let socket = try ProbeSocket.start(probe.target, to: probe.address, from: probe.source,
                                                       interface: job.interface, sequence: sequence, acceptReset: probe.acceptReset)
                    open.append((j, probe, socket, DispatchTime.now().uptimeNanoseconds))
                } catch .local(let error) {
                    results[j].unable.append("\(label): \(error)")
                } catch {
                    results[j].failed.append("\(label): \(error)")
                }
            }
        }
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeout * 1e9)
        while !open.isEmpty {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now < deadline else { break }
            var fds = open.map { pollfd(fd: $0.socket.fd, events: $0.socket.events, revents: 0) }
            fds.append(pollfd(fd: wake, events: Int16(POLLIN), revents: 0))
            let n = poll(&fds, nfds_t(fds.count), Int32(max(1, (deadline - now) / 1_000_000)))
            guard n > 0 else { continue }
            if fds[open.count].revents != 0 {
                // A stop abandons the round; a reload's poke lets it finish.
                if abandon() { break }
                var sink = [UInt8](repeating: 0, count: 16)
                while read(wake, &sink, 16) > 0 {}
            }
            var still: [(job: Int, probe: ProbeJob.Probe, socket: ProbeSocket, started: UInt64)] = []
            for (i, entry) in open.enumerated() {
                guard fds[i].revents != 0, let outcome = entry.socket.outcome(fds[i].revents) else {
                    still.append(entry)
                    continue
                }
                entry.socket.close()
                let label = label(entry.probe)
                switch outcome {
                case .success:
                    let ms = Double(DispatchTime.now().uptimeNanoseconds - entry.started) / 1e6
                    let text = "\(label) in \(String(format: "%.1f", ms)) ms"
                    if entry.probe.fallback { results[entry.job].fallbackAnswered.append(text) } else { results[entry.job].answered.append(text) }
                    results[entry.job].fastestMs = min(results[entry.job].fastestMs ?? ms, ms)
                case .failure(let e):
                    results[entry.job].failed.append("\(label): \(e)")
                }
            }
            open = still
        }
        for entry in open {
            entry.socket.close()
            results[entry.job].failed.append("\(label(entry.probe)): no answer in \(String(format: "%g", timeout)) s")
        }
        return results
    }

    static func label(_ p: ProbeJob.Probe) -> String {
        switch p.target {
        case .tcp: return "tcp \(p.target)"
        case .icmp: return "ping \(p.address)"
        case .gateway: return "ping gateway \(p.address)"
        }
    }
}
