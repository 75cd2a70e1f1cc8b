import MPTCPSocket

extension DestinationPolicy {
    /// Every IPv4/IPv6 address on this host's interfaces, to deny as destinations when the
    /// server listens on a wildcard address.
    public static func localAddresses() -> [SocketAddress] { Socket.interfaceAddresses() }
}
