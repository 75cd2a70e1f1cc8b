/// UDP flows carried through the tunnel (`[udp]` in the config; docs/udp.md). The same
/// values serve both ends: the gateway that intercepts the LAN's datagrams and the server
/// that sends them on.
public struct DatagramSettings: Sendable, Equatable {
    /// Seconds without a datagram either way before a flow ends.
    public var idleTimeout: Double = 120
    /// Seconds for a flow that looks like a one-shot exchange (DNS, NTP: destination port
    /// 53, 123 or 5353, or no more than one datagram each way so far): such flows would
    /// otherwise hold a tunnel connection and two descriptors for the whole idle timeout.
    public var shortIdleTimeout: Double = 10
    /// Flows at once, in total and per LAN client address; past either, new flows'
    /// datagrams are dropped (and counted), existing flows carry on.
    public var maxFlows: Int = 4096
    public var maxFlowsPerClient: Int = 512
    /// Bound of each flow's queue toward the tunnel, in bytes and in age. A datagram
    /// protocol's congestion control must see loss, not queueing: past either bound the
    /// oldest datagrams are dropped. The age bound is what keeps added delay small.
    public var queueBytes: Int = 256 * 1024
    public var queueMilliseconds: Int = 25
    /// The tunnel socket's TCP_NOTSENT_LOWAT: how many not yet sent bytes the kernel may
    /// hold beyond what is in flight. Small, so datagrams wait (and age out) in the flow's
    /// queue, where their age is known, and not in the socket.
    public var socketUnsentBytes: Int = 32 * 1024

    public init() {}

    /// Destination ports whose flows get the short idle timeout from their first datagram.
    static let oneShotPorts: Set<UInt16> = [53, 123, 5353]
}
