#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import Synchronization
import MPTCPSocket
import SystemPackage

/// What a reload changes in one worker: the new settings, and for every listener of the
/// new settings either a socket the worker already has or a new one. Sockets are named by
/// an id the control thread gives each bound address (the same in every worker), never by
/// a position in a worker's listener records, which a reload may add to.
struct ReloadPlan: Sendable {
    enum Socket: Sendable {
        case keep(id: Int)               // a socket the worker already has
        case open(id: Int, fd: Int32)    // a freshly bound socket
    }
    let settings: RelaySettings
    let listeners: [Socket]
}

/// The control thread's way into a worker: requests wait here and an eventfd write wakes the
/// ring. The lock is taken only on these rare control events, never on the data path.
final class WorkerMailbox: Sendable {
    struct Requests: Sendable {
        var stop = false
        var abort = false
        /// In order: each plan's `.keep` indices assume the ones before it were applied.
        var reloads: [ReloadPlan] = []
        /// The host's addresses changed (an interface gained or lost one).
        var localAddresses: LocalAddresses? = nil
        /// Upstream host names resolved anew ("name:port" -> addresses, in order).
        var upstreamAddresses: [String: [SocketAddress]]? = nil
        /// The WAN manager changed where upstream connections start.
        var steering: UplinkSteering? = nil
        /// The tunnel servers out of service now (TunnelServerProber).
        var serversOut: Set<SocketAddress>? = nil
        /// Tunnel server: key slots removed by a reload with `revoke = "now"`: their open
        /// connections are reset.
        var revokedKeys: [Int32] = []
        /// Accept again: the shared connection budget has room.
        var rearm = false
        /// The operator listener asks for a snapshot (answered at this wake, see Worker+Snapshot).
        var snapshots: [SnapshotRequest] = []
    }

    let eventFD: Int32
    private let pending = Mutex(Requests())

    init() throws(Errno) {
        let fd = cnet_eventfd()
        if fd < 0 { throw Errno(rawValue: errno) }
        eventFD = fd
    }

    deinit { close(eventFD) }

    func post(_ change: (inout Requests) -> Void) {
        pending.withLock { change(&$0) }
        var one: UInt64 = 1
        _ = write(eventFD, &one, 8)
    }

    func take() -> Requests {
        pending.withLock { r in
            let taken = r
            r = Requests()
            return taken
        }
    }
}
