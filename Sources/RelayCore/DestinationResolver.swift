#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket
import SystemPackage

/// Why a connection is refused before any upstream connect.
struct Refusal: Error {
    let text: String
}

/// The host's own addresses, taken at start: a transparent or redirected connection whose
/// original destination is the relay's own listener would otherwise connect to itself forever.
struct LocalAddresses: Sendable {
    let hosts: Set<String>

    static func current() -> LocalAddresses {
        LocalAddresses(hosts: Set(["127.0.0.1", "::1", "0.0.0.0", "::"] + Socket.interfaceAddresses().map(\.host)))
    }

    /// True when `destination` would reach `listener` itself.
    func loops(_ destination: SocketAddress, into listener: SocketAddress) -> Bool {
        guard destination.port == listener.port else { return false }
        if destination.host == listener.host { return true }
        return listener.isWildcard && hosts.contains(destination.host)
    }
}

extension Worker {
    func resolveDestination(client: FileDescriptor, listener: ListenerSettings) -> Result<SocketAddress, Refusal> {
        let destination: SocketAddress
        switch listener.mode {
        case .forward(let upstream), .server(let upstream):
            return .success(upstream)
        case .tunnelServer:
            return .failure(Refusal(text: "tunnel destinations come from the header"))
        case .transparent:
            guard let local = try? Socket.localAddress(client) else {
                return .failure(Refusal(text: "no local address on the intercepted socket"))
            }
            destination = local
        case .redirect:
            let family = (try? Socket.localAddress(client))??.family ?? listener.address.family
            do {
                guard let original = try Socket.originalDestination(client, family: family) else {
                    return .failure(Refusal(text: "SO_ORIGINAL_DST gave no IPv4/IPv6 address"))
                }
                destination = original
            } catch {
                return .failure(Refusal(text: "no original destination (\(errnoText(error.rawValue))): was this connection redirected by NAT?"))
            }
        }
        if localAddresses.loops(destination, into: listener.address) {
            return .failure(Refusal(text: "original destination \(destination) is this relay's own listener (loop)"))
        }
        return .success(destination)
    }
}
