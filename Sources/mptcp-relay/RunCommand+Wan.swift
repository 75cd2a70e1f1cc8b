import ArgumentParser
import Logging
import RelayConfig
import WanManager

extension RunCommand {
    /// The WAN manager of a config with `[[wan]]` tables, started; nil without any.
    /// A kernel without the `mptcp_pm` family or a missing CAP_NET_ADMIN stops the start:
    /// the config asked for uplinks that cannot be managed.
    static func startWanManager(_ config: RelayConfigFile?, logger: Logger) throws -> WanManager? {
        guard let config, !config.wan.wans.isEmpty else { return nil }
        let record = OwnedEndpointRecord(path: OwnedEndpointRecord.defaultPath())
        do {
            let manager = try WanManager(plan: config.wan, record: record, logger: logger)
            manager.start()
            return manager
        } catch {
            logger.critical("wan: cannot manage the [[wan]] uplinks: netlink: \(error) (needs CAP_NET_ADMIN and a kernel with MPTCP)")
            throw ExitCode(1)
        }
    }
}
