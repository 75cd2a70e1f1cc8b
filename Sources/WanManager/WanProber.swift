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
}

/// Runs probe rounds on a thread of its own, every `interval`: every probe of every WAN at
/// once, each waited for up to `timeout`. Never blocks the manager's netlink loop.
final class WanProber: @unchecked Sendable {
    private let jobs: @Sendable () -> ([ProbeJob], HealthSettings)
    private let deliver: @Sendable ([ProbeResult]) -> Void
    private let stopSignal = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    private let lock = NSLock()
    private var stopping = false
    private var sequence: UInt16 = 0
    private var thread: Thread?

    init(jobs: @escaping @Sendable () -> ([ProbeJob], HealthSettings), deliver: @escaping @Sendable ([ProbeResult]) -> Void) {
        self.jobs = jobs
        self.deliver = deliver
    }

    func start() {
        thread = Thread.startBlockingSignals(name: "wan-prober") { [self] in
            loop()
            done.signal()
        }
    }

    func stop() {
        lock.withLock { stopping = true }
        stopSignal.signal()
        if thread != nil { done.wait() }
    }

    private func loop() {
        while !lock.withLock({ stopping }) {
            let started = DispatchTime.now()
            let (work, settings) = jobs()
            if settings.enabled && !work.isEmpty {
                sequence &+= 1
                deliver(Self.round(work, timeout: settings.timeout, sequence: sequence))
            }
            let next = started + .nanoseconds(Int(settings.interval * 1e9))
            _ = stopSignal.wait(timeout: next)
        }
    }

    /// Starts every probe, then polls them together until each is decided or `timeout` passes.
    static func round(_ jobs: [ProbeJob], timeout: Double, sequence: UInt16) -> [ProbeResult] {
        var results = jobs.map { ProbeResult(wan: $0.wan) }
        var open: [(job: Int, probe: ProbeJob.Probe, socket: ProbeSocket, started: UInt64)] = []
        for (j, job) in jobs.enumerated() {
            for probe in job.probes {
                let label = label(probe)
                do {
                    let socket = try ProbeSocket.start(probe.target, to: probe.address, from: probe.source,
                                                       interface: job.interface, sequence: sequence)
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
            let n = poll(&fds, nfds_t(fds.count), Int32(max(1, (deadline - now) / 1_000_000)))
            guard n > 0 else { continue }
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
