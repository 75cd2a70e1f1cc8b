#if canImport(Glibc)
import Glibc
#endif
import ArgumentParser
import Logging
import MPTCPSocket
import Netlink
import RelayAdmin
import RelayConfig
import RelayCore
import WanManager

extension RunCommand {
    /// The WAN manager of a config with `[[wan]]` tables, started; nil without any. It tells
    /// `relay` where new upstream connections start (health probes, issue 15).
    /// A kernel without the `mptcp_pm` family or a missing CAP_NET_ADMIN stops the start:
    /// the config asked for uplinks that cannot be managed.
    static func startWanManager(_ config: RelayConfigFile?, advertise: [AdvertisedAddress] = [], relay: Relay, logger: Logger) throws -> WanManager? {
        // `[server] advertise` (or --advertise) alone starts it too: the signal endpoints and the C flag.
        let plan = config?.wan ?? WanPlan(wans: [], advertise: advertise)
        guard !plan.wans.isEmpty || plan.advertises else { return nil }
        let record = OwnedEndpointRecord(path: OwnedEndpointRecord.defaultPath())
        do {
            // Held until the process exits: a second manager in this namespace is refused.
            _ = try WanOwnershipLock(recordPath: record.path).acquire()
        } catch {
            logger.critical("wan: \(error)")
            throw ExitCode(1)
        }
        do {
            let manager = try WanManager(plan: plan, record: record, logger: logger)
            let channel = relay.uplinks
            manager.onSteering = { choice in channel.steer(Self.steering(choice)) }
            manager.start()
            return manager
        } catch {
            logger.critical("wan: cannot manage the [[wan]] uplinks: netlink: \(error) (needs CAP_NET_ADMIN and a kernel with MPTCP)")
            throw ExitCode(1)
        }
    }

    /// The manager's reports as the status API carries them.
    static func uplinkSource(_ manager: WanManager) -> @Sendable () -> [StatusDocument.Uplink] {
        {
            manager.uplinkReports().map {
                var u = StatusDocument.Uplink(interface: $0.interface, link: $0.link, probes: $0.probes, inService: $0.inService,
                                      detail: $0.detail, since: $0.since, rounds: $0.rounds, failedRounds: $0.failedRounds,
                                      transitions: $0.transitions)
                u.flowsMoved = $0.flowsMoved
                u.failOpen = $0.failOpen
                u.rttMs = $0.rttMs
                return u
            }
        }
    }

    /// Where the manager sends routed traffic, as the status API carries it.
    static func routingSource(_ manager: WanManager) -> @Sendable () -> [StatusDocument.Routing] {
        {
            manager.routingReports().map {
                StatusDocument.Routing(family: $0.family, via: $0.via, reason: $0.reason, since: $0.since, changes: $0.changes)
            }
        }
    }

    /// The manager's decision in the relay's terms (socket addresses, raw prefixes).
    static func steering(_ choice: UplinkChoice) -> UplinkSteering {
        func decision(_ d: UplinkChoice.Decision) -> UplinkSteering.Decision {
            switch d {
            case .mainTable: return .mainTable
            case .refuse(let why): return .refuse(why)
            case .bind(let source, _): return .bind(source.socketAddress(port: 0))
            }
        }
        var s = UplinkSteering(v4: decision(choice.v4), v6: decision(choice.v6))
        for case .bind(_, let via) in [choice.v4, choice.v6] where s.via == nil { s.via = via }
        s.exempt = choice.exempt.map {
            UplinkSteering.Prefix(family: $0.address.family == .v4 ? AF_INET : AF_INET6, bytes: $0.address.bytes, length: $0.length)
        }
        return s
    }
}
