import MPTCPSocket
import RelayCore

extension RelayConfigFile {
    /// Binds every listen address once, without SO_REUSEPORT so a port another process
    /// (or a running relay) listens on is reported, and closes it at once. Transparent and
    /// redirect listeners also get IP_TRANSPARENT, which needs CAP_NET_ADMIN or CAP_NET_RAW.
    /// Addresses in `ignoring` are skipped (a running relay's own ports during a reload check).
    public func probeListeners(ignoring: [SocketAddress] = []) -> [ConfigError] {
        var problems: [ConfigError] = []
        for (index, listener) in settings.listeners.enumerated() where !ignoring.contains(listener.address) {
            do {
                try Relay.probe(listener)
            } catch {
                let line = index < listenLines.count ? listenLines[index] : nil
                problems.append(ConfigError(file: path, line: line, message: error.description))
            }
        }
        return problems
    }
}
