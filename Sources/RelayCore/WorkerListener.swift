#if canImport(Glibc)
import Glibc
#endif

/// A listening socket as one worker holds it (each worker has its own SO_REUSEPORT socket),
/// under one set of listener settings.
///
/// A record's settings never change: connections name the record they were accepted under,
/// so a reload that changes a kept listener's settings makes a new record that takes the
/// socket over (`successor`), and connections already accepted finish as they began.
struct WorkerListener {
    private(set) var settings: ListenerSettings
    /// Names the bound socket across workers and reloads (see ReloadPlan).
    private(set) var socketID: Int
    /// The socket, or -1 once closed or handed to a successor record.
    var fd: Int32
    /// The record that took this one's socket over at a reload; an accept that was in
    /// flight on this record then belongs to it.
    var successor: Int?
    var armed = false
    /// Connections accepted under this record that are still open.
    var connections = 0
    /// Bytes and connection events under this record, live (/metrics).
    private(set) var counters: ListenerCounters
    /// Where the kernel writes the peer address of the accept in flight.
    let peer: UnsafeMutablePointer<sockaddr_storage> = .allocate(capacity: 1)
    let peerLength: UnsafeMutablePointer<UInt32> = .allocate(capacity: 1)

    init(settings: ListenerSettings, socketID: Int, fd: Int32, counters: ListenerCounters) {
        self.settings = settings
        self.socketID = socketID
        self.fd = fd
        self.counters = counters
    }

    var isLive: Bool { fd >= 0 }

    /// A retired record nothing refers to any more can hold a new listener.
    var isReusable: Bool { fd < 0 && !armed && connections == 0 }

    mutating func reuse(settings: ListenerSettings, socketID: Int, fd: Int32, counters: ListenerCounters) {
        self.settings = settings
        self.counters = counters
        self.socketID = socketID
        self.fd = fd
        successor = nil
        armed = false
        connections = 0
    }

    func deallocate() {
        peer.deallocate()
        peerLength.deallocate()
    }
}
