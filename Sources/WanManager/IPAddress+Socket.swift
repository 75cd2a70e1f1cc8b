import MPTCPSocket
import Netlink

extension IPAddress {
    /// The address with a port, as the socket wrappers take it.
    public func socketAddress(port: UInt16) -> SocketAddress {
        // Netlink's bytes are always a well-formed address of their family.
        SocketAddress(host: description, port: port)!
    }
}
