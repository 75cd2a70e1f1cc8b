#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Logging
import Netlink

/// Health probes: which WANs carry traffic although their link is up, what the reconciler
/// withdraws, and where the relay's new connections start. Runs on the manager's thread;
/// only the rounds themselves run on the prober's.
extension WanManager {
    /// WANs out of service by probes (their link is up): endpoints withdrawn.
    var probedDown: Set<String> { Set(health.filter { $0.value.state == .down }.map(\.key)) }

    /// What the WAN manager's reports say now (status API, metrics).
    public func uplinkReports() -> [UplinkReport] { lock.withLock { reports } }

    /// Where routed traffic goes now, per family; empty without `[routing] follow_service`.
    public func routingReports() -> [RoutingReport] { lock.withLock { self.routingReportsNow } }

    func healthSummary() -> String {
        let h = plan.health
        guard !plan.enabledWans.isEmpty else { return "" }
        guard h.enabled else { return "; health probes off" }
        return "; probes every \(String(format: "%g", h.interval)) s, out of service after \(h.downAfter) failed rounds (within \(String(format: "%g", h.detectionSeconds)) s), back after \(h.upAfter)"
    }

    func startProber() {
        let prober = WanProber(
            jobs: { [weak self] in
                guard let self else { return ([], HealthSettings()) }
                return self.lock.withLock { self.probeWork }
            },
            deliver: { [weak self] results in
                guard let self else { return }
                self.lock.withLock { self.pendingRounds.append(results) }
                self.wake()
            })
        self.prober = prober
        prober.start()
    }

    /// Folds in the rounds the prober finished; true when a WAN went in or out of service.
    func applyProbeRounds() -> Bool {
        let rounds = lock.withLock { () -> [[ProbeResult]] in defer { pendingRounds = [] }; return pendingRounds }
        guard !rounds.isEmpty else { return false }
        let probed = Set(lock.withLock { probeWork.0.map(\.wan) })
        var changed = false
        for round in rounds {
            for result in round where probed.contains(result.wan) {
                for problem in result.unable where !loggedOnce.contains(problem) {
                    logger.warning("wan: \(result.wan): cannot probe: \(problem) (a round of only such probes is not counted; ping targets need CAP_NET_RAW or net.ipv4.ping_group_range)")
                    loggedOnce.insert(problem)
                }
                if !result.answered.isEmpty, plan.wans.first(where: { $0.interface == result.wan })?.probes == nil {
                    if !defaultsAnswered { logger.info("wan: default probe targets answer: the gateway fallback no longer judges") }
                    defaultsAnswered = true
                }
                guard let (answered, detail) = result.verdict(defaultsAnswered: defaultsAnswered) else { continue }
                probeRTT[result.wan] = answered ? result.fastestMs : nil
                var verdict = health[result.wan] ?? WanHealth()
                let before = verdict.state
                let transition = verdict.record(answered: answered, detail: detail, settings: plan.health)
                health[result.wan] = verdict
                switch (before, transition) {
                case (_, .down?):
                    logger.warning("wan: \(result.wan) out of service: \(plan.health.downAfter) probe rounds in a row failed, link up (\(detail)); its MPTCP endpoints are withdrawn")
                    transitions[result.wan, default: 0] += 1
                    changed = true
                case (.down, .up?):
                    logger.notice("wan: \(result.wan) back in service: \(plan.health.upAfter) probe rounds in a row answered (\(detail)); its endpoints return")
                    transitions[result.wan, default: 0] += 1
                    changed = true
                case (.unknown, .up?):
                    logger.info("wan: \(result.wan) probes answer (\(detail))")
                default: break
                }
            }
        }
        publishReports(lastView)
        return changed
    }

    /// After each kernel read: the probe jobs for the WANs as they are now, the steering
    /// decision, and the reports.
    func refreshHealth(_ view: KernelView) {
        var jobs: [ProbeJob] = []
        for wan in plan.enabledWans where plan.health.enabled {
            guard let link = view.link(named: wan.interface), link.isUp else { continue }
            let fallback = wan.probes == nil && !defaultsAnswered
            let job = Self.job(for: wan, link: link, view, fallback: fallback)
            // Default targets that never answered anywhere and no gateway to judge by: a
            // verdict would only guess, and a wrong "down" refuses connections.
            if fallback && !job.probes.contains(where: \.fallback) { continue }
            if job.probes.isEmpty, let targets = wan.probes, !targets.isEmpty, !loggedOnce.contains("families:\(wan.interface)") {
                logger.warning("wan: \(wan.interface): none of its probe targets (\(targets.map(\.description).joined(separator: ", "))) is of an address family it has: it is not probed")
                loggedOnce.insert("families:\(wan.interface)")
            }
            if !job.probes.isEmpty { jobs.append(job) }
        }
        let probed = Set(jobs.map(\.wan))
        for (wan, verdict) in health where !probed.contains(wan) {
            var kept = verdict
            // Probes off for it: no verdict. Link down or no address: the verdict stands (a
            // dead modem that re-attaches must answer before it is back in service).
            let spec = plan.wans.first { $0.interface == wan }
            let probingOff = !plan.health.enabled || spec == nil || spec?.enabled == false || spec?.probes?.isEmpty == true
            if probingOff { kept.forget() } else { kept.pause() }
            health[wan] = kept
        }
        let previous = lock.withLock { () -> HealthSettings in defer { probeWork = (jobs, plan.health) }; return probeWork.1 }
        // A reload changed the timing: the prober starts its next round at once, on it.
        if previous != plan.health { prober?.poke() }

        // Fail open: when the probes judge every WAN that has a link dead, the judgement is
        // what is likelier wrong (a network that blocks the targets); acting on it would take
        // a working site offline. Routing and the relay then follow the main table.
        let linked = Set(plan.enabledWans.filter { view.link(named: $0.interface)?.isUp == true }.map(\.interface))
        let judged = probedDown.intersection(linked)
        let failingOpen = !linked.isEmpty && judged == linked
        if failingOpen != failOpen {
            failOpen = failingOpen
            if failingOpen {
                let why = linked.sorted().map { "\($0): \(health[$0]?.downReason ?? "?")" }.joined(separator: "; ")
                logger.error("wan: FAIL OPEN: the probes of every WAN with a link fail (\(why)); a probe target a network blocks must not take a working site offline, so the relay and routed traffic follow the main routing table and every endpoint stays, until some WAN answers again. Check the probe targets ([[wan]] probe)")
            } else {
                logger.notice("wan: fail open ends: \(linked.subtracting(judged).sorted().joined(separator: ", ")) answer\(linked.subtracting(judged).count == 1 ? "s" : "") again; WANs whose probes fail are out of service")
            }
        }
        outOfService = failingOpen ? [] : probedDown

        var service: [String: String?] = [:]
        for wan in plan.enabledWans {
            guard let link = view.link(named: wan.interface) else { service[wan.interface] = .some("no such interface"); continue }
            if !link.isUp { service[wan.interface] = .some("link down") } else if outOfService.contains(wan.interface), let h = health[wan.interface] {
                service[wan.interface] = .some("probes failing (\(h.downReason))")
            } else {
                service[wan.interface] = .some(nil)
            }
        }
        let choice = UplinkChoice.choose(plan, view, service: service)
        if choice != lastChoice {
            logSteering(choice, was: lastChoice ?? UplinkChoice(), view)
            lastChoice = choice
            onSteering?(choice)
        }
        publishReports(view)
    }

    /// One line per family whose decision changed: the relay's new connections and, with
    /// `[routing] follow_service`, routed traffic and the gateway's own.
    private func logSteering(_ now: UplinkChoice, was: UplinkChoice, _ view: KernelView) {
        let follows = plan.followsService
        for family in [IPAddress.Family.v4, .v6] where now.decision(family) != was.decision(family) {
            let name = family == .v4 ? "IPv4" : "IPv6"
            let date = Date().timeIntervalSince1970
            switch now.decision(family) {
            case .refuse(let why):
                logger.error("wan: \(why): new \(name) connections through the relay are reset until one recovers")
                if follows { noteRouting(family, via: nil, reason: "no WAN has a usable link", at: date) }
            case .bind(let source, let via):
                // The report says what routing does: no detour without a next hop to give it.
                let detour = follows && WanReconciler.detour(plan, view, family: family, via: via) != nil
                let routedToo = !follows ? "" : detour ? "; routed \(name) traffic and the gateway's own leave by \(via) too"
                    : "; routed \(name) traffic still follows the main table: \(via) has no \(name) gateway known (set gateway\(family == .v4 ? "" : "6") = \"...\" in its [[wan]])"
                logger.warning("wan: new \(name) connections start on \(via) (bound to \(source))\(routedToo): the main table's default route leads to a WAN out of service")
                if follows {
                    noteRouting(family, via: detour ? via : nil, reason: detour ? "the main table's default route leads to a WAN out of service"
                                : "no detour: \(via) has no \(name) gateway known", at: date)
                }
            case .mainTable:
                logger.notice("wan: new \(name) connections follow the main routing table again\(follows ? " (routed traffic too)" : "")")
                if follows { noteRouting(family, via: nil, reason: failOpen ? "fail open: every WAN's probes fail" : "the main table's default route leads to a WAN in service", at: date) }
            }
        }
    }

    private func noteRouting(_ family: IPAddress.Family, via: String?, reason: String, at date: Double) {
        if let was = routed[family], was.via == via, was.reason == reason { return }
        if routed[family] != nil { routeChanges[family, default: 0] += 1 }
        routed[family] = (via, reason, date)
    }

    /// The probes of one WAN whose link is up: each target of a family the WAN has an
    /// address of, from that address.
    static func job(for wan: WanSpec, link: Link, _ view: KernelView, fallback: Bool) -> ProbeJob {
        var sources: [IPAddress.Family: IPAddress] = [:]
        for a in view.addresses where a.ifindex == link.ifindex && a.isUsable {
            if let have = sources[a.address.family], have < a.address { continue }
            sources[a.address.family] = a.address
        }
        var probes: [ProbeJob.Probe] = []
        func gatewayProbes(fallback: Bool) {
            for family in [IPAddress.Family.v4, .v6] {
                guard let source = sources[family], let gateway = view.gateway(for: wan, ifindex: link.ifindex, family: family) else { continue }
                probes.append(.init(target: .gateway, address: gateway, source: source, fallback: fallback))
            }
        }
        for target in wan.probes ?? ProbeTarget.defaults {
            switch target {
            case .tcp(let address, _), .icmp(let address):
                guard let source = sources[address.family] else { continue }
                probes.append(.init(target: target, address: address, source: source, fallback: false, acceptReset: wan.probes != nil))
            case .gateway:
                gatewayProbes(fallback: false)
            }
        }
        if fallback && wan.probes == nil { gatewayProbes(fallback: true) }
        return ProbeJob(wan: wan.interface, interface: wan.interface, probes: probes)
    }

    func publishReports(_ view: KernelView) {
        let now = Date().timeIntervalSince1970
        let probed = Set(lock.withLock { probeWork.0.map(\.wan) })
        let next = plan.wans.map { wan -> UplinkReport in
            let link = view.link(named: wan.interface).map { $0.isUp ? "up" : "down" } ?? "absent"
            let verdict = health[wan.interface] ?? WanHealth()
            let probes = !probed.contains(wan.interface) ? "off" : verdict.state.rawValue
            let inService = wan.enabled && link == "up" && !outOfService.contains(wan.interface)
            var detail = verdict.lastResult
            if !wan.enabled { detail = "disabled in the config" } else if link != "up" { detail = link == "absent" ? "no such interface" : "link down" }
            else if probes == "off" {
                detail = !plan.health.enabled ? "probes off"
                    : wan.probes == nil ? "not probed: no default target has answered yet and it has no gateway to ping (set gateway = \"...\" or probe = [...])"
                    : "not probed: no target of its address families" }
            var report = UplinkReport(interface: wan.interface, link: link, probes: probes, inService: inService, detail: detail,
                                      since: since[wan.interface] ?? now, rounds: verdict.rounds, failedRounds: verdict.failures,
                                      transitions: transitions[wan.interface] ?? 0)
            report.flowsMoved = flowsMoved[wan.interface] ?? 0
            report.rttMs = probes == "off" ? nil : probeRTT[wan.interface]
            report.failOpen = failOpen && verdict.state == .down
            return report
        }
        let routing: [RoutingReport] = !plan.followsService ? [] : [IPAddress.Family.v4, .v6].map { family in
            let r = routed[family] ?? (nil, "the main table's default route leads to a WAN in service", now)
            // Failing open is a state of the WANs, not a change of route: say it while it lasts.
            let reason = r.via == nil && failOpen ? "fail open: every WAN's probes fail; the main table decides" : r.reason
            return RoutingReport(family: family == .v4 ? "IPv4" : "IPv6", via: r.via, reason: reason, since: r.since,
                                 changes: routeChanges[family] ?? 0)
        }
        let old = lock.withLock { reports }
        // `since`: the last time the WAN went in or out of service, for any reason (link or probes).
        var dated = next
        for i in dated.indices {
            let name = dated[i].interface
            if since[name] == nil || old.first(where: { $0.interface == name })?.inService != dated[i].inService { since[name] = now }
            dated[i].since = since[name] ?? now
        }
        let oldRouting = lock.withLock { () -> [RoutingReport] in
            defer { reports = dated; routingReportsNow = routing }
            return routingReportsNow
        }
        // The file is for a person running `mptcp-relay wan`: every change of state at once,
        // the counters at most every 5 s.
        let stateChanged = old.map { [$0.interface, $0.link, $0.probes, String($0.inService)] } != dated.map { [$0.interface, $0.link, $0.probes, String($0.inService)] }
            || oldRouting.map(\.via) != routing.map(\.via)
        guard stateChanged || now - reportsWrittenAt >= 5 else { return }
        reportsWrittenAt = now
        do { try reportFile.save(WanReportDocument(uplinks: dated, routing: routing)) } catch {
            if stateChanged { logger.debug("wan: cannot write \(reportFile.path): \(error)") }
        }
    }
}
