#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket

/// Why a connection ended, for its log line and counters.
enum CloseReason: Equatable {
    case completed
    case idleTimeout
    case connectFailed(Int32)
    case connectTimeout
    case resetByClient(Int32)
    case resetByUpstream(Int32)
    case refused(String)
    case resources(Int32)
    case shutdown

    var text: String {
        switch self {
        case .completed: return "done"
        case .idleTimeout: return "idle timeout"
        case .connectFailed(let e): return "upstream connect failed: \(errnoText(e))"
        case .connectTimeout: return "upstream connect timed out"
        case .resetByClient(let e): return "client error: \(errnoText(e))"
        case .resetByUpstream(let e): return "upstream error: \(errnoText(e))"
        case .refused(let why): return "refused: \(why)"
        case .resources(let e): return "out of resources: \(errnoText(e))"
        case .shutdown: return "grace period over at shutdown"
        }
    }
}

func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }

/// One direction of a relayed connection: bytes from `source` go through `pipe` to `sink`.
struct Direction {
    var source: Int32 = -1
    var sink: Int32 = -1
    var pipe = SplicePipe.none
    /// Bytes sitting in the pipe, read from `source` but not yet written to `sink`.
    var inPipe = 0
    var bytes: UInt64 = 0
    /// An operation of this direction is in flight; at most one is.
    var busy = false
    /// The last read found the source empty: wait for readiness before reading again.
    var drained = false
    var sourceEOF = false
    /// EOF was passed on (shutdown(SHUT_WR) on the sink).
    var finished = false
    /// A handshake buffer (HandshakeBuffers index) or -1. Bytes [prefixStart, prefixEnd)
    /// go to the sink before any spliced byte: a header the relay adds, or bytes it read
    /// while looking for one.
    var buffer: Int32 = -1
    var prefixStart = 0
    var prefixEnd = 0
    /// Gateway side of a tunnel: the server's reply header must be read off the source
    /// before relaying; `bufferFill` bytes of it have arrived.
    var expectReply = false
    var bufferFill = 0
}

struct Connection {
    enum Phase { case free, readingHeader, connecting, relaying, closing }
    var phase = Phase.free
    var sequence: UInt64 = 0
    var listener: Int = 0
    var client: Int32 = -1
    var upstream: Int32 = -1
    var upstreamProtocol = StreamProtocol.tcp
    var status = MPTCPStatus.plainTCP
    /// Operations in flight that name this slot; the slot is reused only at zero.
    var pending: Int32 = 0
    var openedAt: Int64 = 0
    var lastActive: Int64 = 0
    var reason = CloseReason.completed
    var resetOnClose = false
    /// Subflows of the MPTCP side, read when the first direction ends (before shutdowns
    /// start closing them); 0 when not read.
    var subflows = 0
    var peer = sockaddr_storage()
    var target = sockaddr_storage()
    var targetLength: UInt32 = 0
    var nextFree: Int32 = -1
    /// Tunnel: where the client wants to go (the header's Connect TLV, or the intercepted
    /// original destination on the gateway).
    var destination = sockaddr_storage()
    var up = Direction()    // client -> upstream
    var down = Direction()  // upstream -> client
}

/// A fixed slab of connection slots with a free list: no allocation per connection,
/// and stable addresses for the sockaddrs the kernel reads asynchronously.
final class ConnectionTable {
    let capacity: Int
    let slots: UnsafeMutablePointer<Connection>
    private var freeHead: Int32
    private(set) var active = 0

    init(capacity: Int) {
        self.capacity = capacity
        slots = .allocate(capacity: capacity)
        for i in 0..<capacity {
            var c = Connection()
            c.nextFree = i + 1 < capacity ? Int32(i + 1) : -1
            (slots + i).initialize(to: c)
        }
        freeHead = capacity > 0 ? 0 : -1
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    var isFull: Bool { freeHead < 0 }

    func allocate() -> Int32? {
        guard freeHead >= 0 else { return nil }
        let index = freeHead
        freeHead = slots[Int(index)].nextFree
        active += 1
        return index
    }

    func release(_ index: Int32) {
        var c = Connection()
        c.nextFree = freeHead
        slots[Int(index)] = c
        freeHead = index
        active -= 1
    }

    @inline(__always) subscript(_ index: Int32) -> UnsafeMutablePointer<Connection> { slots + Int(index) }
}
