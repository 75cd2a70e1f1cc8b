import ArgumentParser
import Logging
import RelayConfig
import WanManager

extension RunCommand {
    /// The WAN manager of a config with `[[wan]]` tables, started; nil without any.
    /// A kernel without the `mptcp_pm` family or a missing CAP_NET_ADMIN stops the start:
    /// the config asked for uplinks that cannot be managed.
    static func startWanManager(_ config: RelayConfigFile?, advertise: [AdvertisedAddress] = [], logger: Logger) throws -> WanManager? {
        // `[server] advertise` (or --advertise) alone starts it too: the signal endpoints and the C flag.
        let plan = config?.wan ?? WanPlan(wans: [], advertise: advertise)
        guard !plan.wans.isEmpty || plan.advertises else { return nil }
        let record = OwnedEndpointRecord(path: OwnedEndpointRecord.defaultPath())
        do {
            let manager = try WanManager(plan: plan, record: record, logger: logger)
            manager.start()
            return manager
        } catch {
            logger.critical("wan: cannot manage the [[wan]] uplinks: netlink: \(error) (needs CAP_NET_ADMIN and a kernel with MPTCP)")
            throw ExitCode(1)
        }
    }
}
