#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket

/// One UDP flow: a connected UDP socket on one side, one tunnel connection (MPTCP) on the
/// other. At the gateway the UDP socket faces the LAN client (bound transparently to the
/// address the client wrote to); at the server it faces the destination.
///
/// One tunnel connection per flow, not flows multiplexed over a few: a flow's datagrams
/// then never wait behind another flow's lost segment (head-of-line blocking is per flow),
/// each flow gets MPTCP's scheduler and congestion control to itself, and a flow's end
/// is a connection's end. The cost is a handshake per flow (one round trip before a DNS
/// answer) and three descriptors per flow at the gateway; both are measured in docs/udp.md.
final class DatagramFlow {
    enum Phase: String {
        /// The gateway's tunnel connect is in flight; datagrams queue.
        case connecting
        /// Datagrams move both ways (the gateway may still await the server's reply).
        case open
        /// The tunnel failed or was refused: datagrams of this flow are dropped until
        /// `heldUntil`, then the flow is forgotten and the next datagram dials again.
        case refused
    }

    let id: UInt64
    let generation: UInt32
    /// The LAN client (gateway) or the tunnel peer (server), and the flow's destination.
    let client: SocketAddress
    let destination: SocketAddress
    var datagramSocket: Int32
    var tunnel: Int32
    var tunnelProtocol: StreamProtocol = .mptcp
    var phase: Phase
    /// Gateway: the server's reply has not been read yet.
    var awaitingReply: Bool
    /// Bytes to write before any frame: the request header (gateway) or the reply (server).
    var prefix: [UInt8]
    var prefixSent = 0
    let toTunnel: DatagramQueue
    let fromTunnel = DatagramDeframer()
    /// The epoll events the tunnel socket is registered for.
    var tunnelEvents: UInt32 = 0
    var status: MPTCPStatus?
    let openedAt: Int64
    var lastActive: Int64
    var heldUntil: Int64 = 0
    var datagramsUp: UInt64 = 0
    var datagramsDown: UInt64 = 0
    var bytesUp: UInt64 = 0
    var bytesDown: UInt64 = 0
    var drops: UInt64 = 0
    /// Server: the per-key account this flow holds (released when it is forgotten); -1: none.
    var keySlot: Int32 = -1
    /// A flow to a one-shot service (DNS, NTP) gets the short idle timeout at once.
    let oneShotPort: Bool

    init(id: UInt64, generation: UInt32, client: SocketAddress, destination: SocketAddress, datagramSocket: Int32, tunnel: Int32,
         phase: Phase, awaitingReply: Bool, prefix: [UInt8], queueBytes: Int, now: Int64) {
        self.id = id
        self.generation = generation
        self.client = client
        self.destination = destination
        self.datagramSocket = datagramSocket
        self.tunnel = tunnel
        self.phase = phase
        self.awaitingReply = awaitingReply
        self.prefix = prefix
        toTunnel = DatagramQueue(byteLimit: queueBytes)
        openedAt = now
        lastActive = now
        oneShotPort = DatagramSettings.oneShotPorts.contains(destination.port)
    }

    /// Whether the short idle timeout applies: a one-shot port, or at most one datagram
    /// each way so far (a query and its answer).
    var looksOneShot: Bool { oneShotPort || (datagramsUp <= 1 && datagramsDown <= 1) }

    var hasOutput: Bool { prefixSent < prefix.count || !toTunnel.isEmpty }
}
