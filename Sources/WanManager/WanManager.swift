#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import Netlink
import SystemPackage

/// Keeps the kernel's MPTCP endpoints, limits, per-WAN rules and routes in step with the
/// config and the links, on its own thread (never a worker's ring): a rtnetlink event
/// (address, link, route) triggers a reconciliation at once; one runs every few seconds
/// anyway, so a missed event or a failed change is retried. On `stop()` everything it
/// created is removed.
public final class WanManager: @unchecked Sendable {
    let logger: Logger
    private let record: OwnedEndpointRecord
    let lock = NSLock()
    private var pendingPlan: WanPlan?
    private var stopping = false
    private(set) var plan: WanPlan
    private var owned: Set<OwnedEndpoint> = []
    /// Interfaces seen going down since the last reconciliation.
    private var seenDown: Set<Int32> = []
    /// The limits found at start, restored on stop.
    private var originalLimits: PathLimits?
    private var lastNotes: [String] = []
    /// The kernel state of the last reconciliation: subflow events are mapped to WANs with
    /// it (a dump per event would cost too much under connection churn).
    private(set) var lastView = KernelView()
    /// Changes that failed last time: a change the kernel keeps refusing (a flag this kernel
    /// lacks) is retried every pass but logged once.
    private var lastFailures: Set<String> = []
    /// The C flag of an advertising server (InitialJoinSysctl.swift).
    private let initialJoin = InitialJoinSysctl()
    /// `[routing] follow_service`: conntrack entries of flows NATed to a WAN that goes out of
    /// service are deleted with it; opened at the first need.
    private var conntrack: ConntrackClient?
    /// The flow pinning table (FlowPinning) as loaded; nil: none of ours. It starts unknown:
    /// a killed run may have left one.
    private var pinned: String? = WanManager.unknownPinning
    private static let unknownPinning = "(unknown: a previous run may have left it)"
    /// The marks `pinned` gives each WAN: a reload that changes them releases those WANs' flows.
    private var pinnedMarks: [String: UInt32] = [:]
    /// Since when (monotonic) each WAN's link has been down.
    private var linkDownSince: [String: Double] = [:]
    /// WANs out of service at the last reconciliation: a WAN new in it has its NATed flows released.
    private var releasedFor: Set<String> = []

    // Health probes (WanManager+Health): the verdicts live on the manager's thread; the
    // prober hands its rounds over through `pendingRounds`.
    var health: [String: WanHealth] = [:]
    var since: [String: Double] = [:]
    var transitions: [String: UInt64] = [:]
    /// Once any default target answered on any WAN, the gateway fallback no longer judges.
    var defaultsAnswered = false
    var pendingRounds: [[ProbeResult]] = []
    var probeWork: ([ProbeJob], HealthSettings) = ([], HealthSettings())
    var prober: WanProber?
    var lastChoice: UplinkChoice?
    /// WANs the relay and routing treat as out of service: those the probes judge dead,
    /// unless that is every WAN that has a link (fail open: FailOpen in WanManager+Health).
    var outOfService: Set<String> = []
    var failOpen = false
    /// The last round's quickest answer per WAN (ms); nil after a failed round.
    var probeRTT: [String: Double] = [:]
    /// NATed flows released from each WAN when it went out of service (conntrack entries deleted).
    var flowsMoved: [String: UInt64] = [:]
    /// Routed traffic per family: the WAN it is steered to (nil: the main table), since when, changes.
    var routed: [IPAddress.Family: (via: String?, reason: String, since: Double)] = [:]
    var routeChanges: [IPAddress.Family: UInt64] = [:]
    var reports: [UplinkReport] = []
    var routingReportsNow: [RoutingReport] = []
    var reportsWrittenAt = 0.0
    /// Warnings about probing (a probe that cannot start, a WAN with no target of its
    /// families) already logged: each is logged once.
    var loggedOnce: Set<String> = []
    let reportFile: UplinkReportFile
    /// Told where new upstream connections start, from the manager's thread (set before start).
    public var onSteering: (@Sendable (UplinkChoice) -> Void)?

    private let routing: RoutingClient
    private let pm: PathManagerClient
    private let events: RoutingEventSocket
    /// Subflow events; nil on a kernel without the group (then counts stay empty).
    private let subflowEvents: PathManagerEventSocket?
    private let subflows = SubflowTable()
    /// Self-pipe: stop() and update() wake the poll loop.
    private let wakeFD: Int32
    private let wakeWriteFD: Int32
    private var thread: Thread?
    private let done = DispatchSemaphore(value: 0)

    /// Seconds between reconciliations without events.
    static let period: Int32 = 5

    /// Opens the netlink sockets and records which endpoints are ours; nothing changes yet.
    public init(plan: WanPlan, record: OwnedEndpointRecord, reportFile: UplinkReportFile = UplinkReportFile(path: UplinkReportFile.defaultPath()),
                logger: Logger) throws(Errno) {
        self.plan = plan
        self.record = record
        self.reportFile = reportFile
        self.logger = logger
        routing = try RoutingClient()
        pm = try PathManagerClient()
        events = try RoutingEventSocket()
        do { subflowEvents = try PathManagerEventSocket() } catch {
            logger.warning("wan: cannot join mptcp_pm_events (\(error)): subflows are not tracked")
            subflowEvents = nil
        }
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw Errno(rawValue: errno) }
        for fd in ends {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        wakeFD = ends[0]
        wakeWriteFD = ends[1]
        owned = record.load()
    }

    deinit {
        close(wakeFD)
        close(wakeWriteFD)
    }

    /// First reconciliation on the caller's thread (so the log shows the WANs before
    /// "ready"), then the event thread.
    public func start() {
        originalLimits = try? pm.limits()
        logger.info("wan: managing \(plan.enabledWans.isEmpty ? "no WAN" : plan.enabledWans.map(\.interface).joined(separator: ", "))\(plan.advertises ? "; advertising \(plan.advertise.map(String.init(describing:)).joined(separator: ", "))" : "") (\(plan.limits))\(healthSummary())")
        reconcile()
        startProber()
        thread = Thread.startBlockingSignals(name: "wan-manager") { [self] in
            run()
            done.signal()
        }
    }

    /// SIGHUP: the next reconciliation uses `plan` (a WAN gone from it loses its endpoints,
    /// rules and routes).
    public func update(_ plan: WanPlan) {
        lock.withLock { pendingPlan = plan }
        wake()
    }

    /// Removes everything it created, restores the limits it found, and returns once done.
    public func stop() {
        prober?.stop()
        lock.withLock { stopping = true }
        wake()
        if thread != nil { done.wait() }
    }

    func wake() {
        var one: UInt8 = 1
        _ = write(wakeWriteFD, &one, 1)
    }

    private func run() {
        var fds = [pollfd(fd: events.fileDescriptor, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: subflowEvents?.fileDescriptor ?? -1, events: Int16(POLLIN), revents: 0)]
        var lastPass = Self.monotonicSeconds()
        while true {
            // Probe rounds wake the loop every second: the periodic pass keeps its own clock.
            let wait = max(0, Double(Self.period) - (Self.monotonicSeconds() - lastPass))
            let n = poll(&fds, 3, Int32(wait * 1000) + 1)
            if n < 0 && errno != EINTR {
                logger.error("wan: poll failed: \(String(describing: Errno(rawValue: errno)))")
                usleep(500_000)
            }
            if fds[1].revents != 0 {
                var sink = [UInt8](repeating: 0, count: 64)
                _ = read(wakeFD, &sink, 64)
            }
            if lock.withLock({ stopping }) { break }
            if fds[2].revents != 0 { drainSubflowEvents() }
            var due = Self.monotonicSeconds() - lastPass >= Double(Self.period)
            if applyProbeRounds() { due = true }
            if let next = lock.withLock({ () -> WanPlan? in defer { pendingPlan = nil }; return pendingPlan }) {
                if next != plan { logger.notice("wan: config reloaded: \(next.enabledWans.map(\.interface).joined(separator: ", "))") }
                plan = next
                due = true
            }
            if fds[0].revents != 0 {
                // A change usually comes as a burst (link down flushes routes): take it whole.
                usleep(50_000)
                drainEvents()
                due = true
            }
            guard due else { continue }
            lastPass = Self.monotonicSeconds()
            reconcile()
        }
        teardown()
    }

    static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    private func drainEvents() {
        do {
            for event in try events.drain() {
                if case .link(let ifindex, let up, _) = event, !up { seenDown.insert(ifindex) }
            }
        } catch {
            logger.warning("wan: reading rtnetlink events failed: \(error)")
        }
    }

    /// Live subflows per WAN interface, from `mptcp_pm_events`.
    public func subflowsPerInterface() -> [String: Int] { subflows.perInterface() }

    private func drainSubflowEvents() {
        guard let subflowEvents else { return }
        let events: [PathManagerEvent]
        do { events = try subflowEvents.drain() } catch {
            logger.warning("wan: reading mptcp_pm_events failed: \(error)")
            return
        }
        let names = Dictionary(lastView.links.map { ($0.ifindex, $0.name) }, uniquingKeysWith: { a, _ in a })
        let addresses = lastView.addresses
        let wanNames = Set(plan.wans.map(\.interface))
        for event in events {
            // The kernel gives the interface for subflows; the initial one is found by address.
            let ifindex = event.ifindex != 0 ? event.ifindex : addresses.first { $0.address == event.source }?.ifindex ?? 0
            guard let name = names[ifindex], wanNames.contains(name) else {
                if event.kind == .closed || event.kind == .overrun { subflows.apply(event, interface: "") }
                continue
            }
            subflows.apply(event, interface: name)
            switch event.kind {
            case .established, .subflowEstablished:
                logger.debug("wan: subflow established over \(name): \(event.source.map(String.init(describing:)) ?? "?") -> \(event.destination.map(String.init(describing:)) ?? "?")\(event.backup ? " (backup)" : "")")
            case .subflowClosed:
                logger.debug("wan: subflow closed over \(name): \(event.source.map(String.init(describing:)) ?? "?") -> \(event.destination.map(String.init(describing:)) ?? "?")\(event.error != 0 ? " (error \(event.error))" : "")")
            default: break
            }
        }
    }

    private func reconcile() {
        let view: KernelView
        do { view = try KernelView.read(routing: routing, pm: pm) } catch {
            logger.error("wan: cannot read the kernel's state over netlink: \(error)")
            return
        }
        lastView = view
        initialJoin.sync(advertising: plan.advertises, logger: logger)
        let up = Set(view.links.filter(\.isUp).map(\.ifindex))
        let flapped = seenDown.intersection(up)
        seenDown = []
        refreshHealth(view)
        syncPinning(view)
        let result = WanReconciler.reconcile(plan, view, owned: owned, flapped: flapped, limits: plan.limits,
                                             outOfService: outOfService, steering: lastChoice ?? UplinkChoice())
        defer { releaseFlows(view) }
        if result.notes != lastNotes {
            for note in result.notes where !lastNotes.contains(note) { logger.warning("wan: \(note)") }
            lastNotes = result.notes
        }
        guard !result.actions.isEmpty else { return }
        // Record before adding: a kill between the add and the save must not orphan an endpoint.
        save(owned.union(result.owned))
        var failed: Set<OwnedEndpoint> = []
        var failures: Set<String> = []
        for action in result.actions {
            do {
                try apply(action)
                logger.notice("wan: \(action)")
            } catch {
                let line = "\(action) failed: \(error)"
                if !lastFailures.contains(line) { logger.warning("wan: \(line) (retried every \(Self.period) s, logged once)") }
                failures.insert(line)
                if case .addEndpoint(let e, _) = action { failed.insert(OwnedEndpoint(id: e.id, address: e.address)) }
            }
        }
        lastFailures = failures
        owned = result.owned.subtracting(failed)
        save(owned)
    }

    /// Loads the flow pinning table when routed traffic follows the WANs and its text (the
    /// WANs and their marks) changed since it was loaded; removes it when the feature is off
    /// (at start too: a table a killed run left behind must not keep marking flows).
    private func syncPinning(_ view: KernelView) {
        let want = plan.followsService ? FlowPinning.render(plan) : nil
        guard want != pinned else { return }
        if let want {
            if let problem = FlowPinning.install(want) {
                let line = "wan: cannot load the nftables table \(FlowPinning.table): \(problem): routed flows are not pinned to their WAN (a WAN back in service may take flows that moved away); retried every \(Self.period) s"
                if !loggedOnce.contains(line) { logger.warning("\(line)") }
                loggedOnce.insert(line)
                return
            }
            // A reload that moved WANs in the config renumbers their marks: flows pinned under
            // the old numbers would follow another WAN's rule with this one's source address.
            var marks: [String: UInt32] = [:]
            for wan in plan.enabledWans { marks[wan.interface] = plan.mark(of: wan.interface) }
            let renumbered = pinnedMarks.filter { marks[$0.key] != $0.value }.map(\.key)
            if !renumbered.isEmpty { release(renumbered, view, why: "its connection mark changed with the config") }
            pinnedMarks = marks
            warnStrictReversePath()
        } else {
            if let problem = FlowPinning.remove(), pinned != Self.unknownPinning {
                logger.warning("wan: cannot remove the nftables table \(FlowPinning.table): \(problem)")
            }
            pinnedMarks = [:]
        }
        pinned = want
    }

    /// Strict reverse-path filtering ignores packet marks unless src_valid_mark is set: the
    /// reply to a flow pinned to a WAN that the main table does not prefer would be dropped.
    private func warnStrictReversePath() {
        func value(_ dev: String, _ key: String) -> Int {
            InitialJoinSysctl.read("/proc/sys/net/ipv4/conf/\(dev)/\(key)").flatMap { Int($0) } ?? 0
        }
        for wan in plan.enabledWans.map(\.interface) {
            let strict = max(value("all", "rp_filter"), value(wan, "rp_filter")) == 1
            let marks = value("all", "src_valid_mark") == 1 || value(wan, "src_valid_mark") == 1
            let line = "wan: \(wan) has strict reverse-path filtering (rp_filter = 1) without src_valid_mark: replies to flows pinned to it are dropped while the main table prefers another WAN; run sysctl -w net.ipv4.conf.\(wan).src_valid_mark=1 (or use rp_filter = 2)"
            if strict && !marks && !loggedOnce.contains(line) {
                logger.warning("\(line)")
                loggedOnce.insert(line)
            }
        }
    }

    /// WANs that went out of service since the last pass (their routes and rules already
    /// changed): their NATed flows' conntrack entries go, so each flow's next packet is NATed
    /// afresh out of a WAN in service. Flows that moved away are never moved back
    /// (FlowPinning). A link that is down counts only once it has stayed down for the
    /// detection time: a carrier blip must not kill flows that would have survived it.
    private func releaseFlows(_ view: KernelView) {
        guard plan.followsService else { releasedFor = []; linkDownSince = [:]; return }
        let now = Self.monotonicSeconds()
        for wan in plan.enabledWans.map(\.interface) {
            if view.link(named: wan)?.isUp == false { linkDownSince[wan] = linkDownSince[wan] ?? now } else { linkDownSince[wan] = nil }
        }
        let longDown = Set(linkDownSince.filter { now - $0.value >= plan.health.detectionSeconds }.map(\.key))
        let out = outOfService.union(longDown)
        let newlyOut = out.subtracting(releasedFor)
        releasedFor = out
        // A link down for less than that is looked at again by a later pass (every 5 s at least).
        if !newlyOut.isEmpty { release(newlyOut.sorted(), view, why: "out of service") }
    }

    /// Deletes the conntrack entries of flows NATed to these WANs' addresses. A WAN whose
    /// deletion failed is tried again at the next pass.
    private func release(_ wans: [String], _ view: KernelView, why: String) {
        if conntrack == nil {
            do { conntrack = try ConntrackClient() } catch {
                logger.warning("wan: cannot open ctnetlink (\(error)): flows NATed to \(wans.joined(separator: ", ")) keep their conntrack entry until it expires")
                releasedFor.subtract(wans)
                return
            }
        }
        guard let conntrack else { return }
        for wan in wans {
            guard let link = view.link(named: wan) else { continue }
            let addresses = view.addresses.filter { $0.ifindex == link.ifindex && $0.scope == 0 }.map(\.address)
            do {
                let n = try conntrack.deleteSourceNATed(to: addresses)
                flowsMoved[wan, default: 0] += UInt64(n)
                logger.notice("wan: \(wan) \(why): \(n) NATed flow(s) released to start again on a WAN in service\(n == 0 ? " (none was NATed to it)" : "")")
            } catch {
                releasedFor.remove(wan)
                logger.warning("wan: \(wan) \(why): cannot delete its NATed flows' conntrack entries: \(error) (tried again at the next pass)")
            }
        }
    }

    private func apply(_ action: WanAction) throws(Errno) {
        switch action {
        case .setLimits(let l): try pm.setLimits(l)
        case .deleteEndpoint(let e):
            do { try pm.delete(id: e.id) } catch .noSuchFileOrDirectory {}
        case .addEndpoint(let e, _): try pm.add(e)
        case .setEndpointFlags(let e): try pm.setFlags(id: e.id, e.flags)
        case .deleteRule(let r):
            do { try routing.delete(r) } catch .noSuchFileOrDirectory {}
        case .addRule(let r):
            do { try routing.add(r) } catch .fileExists {}
        case .deleteRoute(let r):
            do { try routing.delete(r) } catch .noSuchProcess {}
        case .addRoute(let r): try routing.add(r)
        }
    }

    private func save(_ owned: Set<OwnedEndpoint>) {
        do { try record.save(owned) } catch {
            logger.warning("wan: cannot record owned endpoints in \(record.path): \(error) (after a crash they would be left behind)")
        }
    }

    private func teardown() {
        if pinned != nil, let problem = FlowPinning.remove() { logger.warning("wan: cleanup: cannot remove the nftables table \(FlowPinning.table): \(problem)") }
        let view: KernelView
        do { view = try KernelView.read(routing: routing, pm: pm) } catch {
            logger.error("wan: cannot read the kernel's state to clean up: \(error)")
            return
        }
        let empty = WanPlan(wans: [], paths: plan.paths)
        let result = WanReconciler.reconcile(empty, view, owned: owned, limits: originalLimits)
        for action in result.actions {
            do { try apply(action) } catch { logger.warning("wan: cleanup: \(action) failed: \(error)") }
        }
        record.remove()
        reportFile.remove()
        if lastChoice?.isActive == true { onSteering?(UplinkChoice()) }
        initialJoin.restore(logger: logger)
        logger.info("wan: removed \(result.actions.count) change(s) on exit")
    }
}
