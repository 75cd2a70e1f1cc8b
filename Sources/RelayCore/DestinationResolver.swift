#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket
import SystemPackage

/// Why a connection is refused before any upstream connect.
struct Refusal: Error {
    let text: String
}

/// The host's own addresses, re-read every 2 s by the control thread (an address gained
/// later, by DHCP or IPv6 privacy extensions, is protected too): a transparent or redirected
/// connection whose original destination is the relay's own listener would otherwise
/// connect to itself forever.
/// Addresses are compared as bytes (port 0 here), never as text: the check runs for every
/// transparent or redirected connection.
struct LocalAddresses: Sendable, Equatable {
    let hosts: Set<SocketAddress>

    /// `hosts`: numeric literals ("192.0.2.1", "::1").
    init(hosts: Set<String>) {
        self.hosts = Set(hosts.compactMap { SocketAddress(host: $0, port: 0) })
    }

    /// The interfaces' addresses, and loopback and wildcard ones, which no interface lists.
    init(interfaceAddresses: [SocketAddress]) {
        let always = ["127.0.0.1", "::1", "0.0.0.0", "::"].compactMap { SocketAddress(host: $0, port: 0) }
        hosts = Set((always + interfaceAddresses).map(\.withoutPort))
    }

    /// True when `destination` would reach `listener` itself.
    func loops(_ destination: SocketAddress, into listener: SocketAddress) -> Bool {
        guard destination.port == listener.port else { return false }
        if destination == listener { return true }
        return listener.isWildcard && hosts.contains(destination.withoutPort)
    }
}

extension Worker {
    func resolveDestination(client: FileDescriptor, listener: ListenerSettings) -> Result<SocketAddress, Refusal> {
        let destination: SocketAddress
        switch listener.mode {
        case .forward(let upstream), .server(let upstream):
            if let literal = upstream.literal { return .success(literal) }
            guard let first = upstreamAddresses[upstream.description]?.first else {
                return .failure(Refusal(text: "upstream \(upstream) has not resolved to an address (yet): see the resolver's log lines"))
            }
            return .success(first)
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
