#if canImport(Glibc)
import Glibc
#endif
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
            let address = listener.address
            do {
                let fd = try Socket.listen(on: address, backlog: 1, reusePort: false,
                                           transparent: listener.mode == .transparent)
                _ = Glibc.close(fd.rawValue)
            } catch {
                let line = index < listenLines.count ? listenLines[index] : nil
                problems.append(ConfigError(file: path, line: line, message: Self.bindComplaint(address, error.rawValue)))
            }
        }
        return problems
    }

    static func bindComplaint(_ address: SocketAddress, _ code: Int32) -> String {
        let prefix = "cannot listen on \(address): "
        switch code {
        case EADDRINUSE:
            return prefix + "port in use by another socket (ss -ltnp 'sport = :\(address.port)' shows which process)"
        case EADDRNOTAVAIL:
            return prefix + "\(address.host) is not an address of this host (ip addr shows them; use 0.0.0.0 or [::] for all)"
        case EACCES:
            return prefix + "ports below 1024 need CAP_NET_BIND_SERVICE (the systemd unit grants it)"
        case EPERM:
            return prefix + "a transparent listener needs CAP_NET_ADMIN for IP_TRANSPARENT (run as root or via the systemd unit)"
        default:
            return prefix + String(cString: strerror(code))
        }
    }
}
