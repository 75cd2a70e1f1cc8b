/// The 64-bit `user_data` of every submitted operation: which step of which connection
/// (or listener) it belongs to.
/// Layout: kind (6 bits) | direction (2) | slot generation (32) | index (24).
/// The generation makes a completion that outlived its connection (the slot was reclaimed
/// meanwhile) recognisable. 32 bits: a slot reused 1,000 times a second wraps in 50 days,
/// not in 65 s as 16 bits did; and a reclaimed slot is not reused before its stray
/// completions are in (ConnectionTable.release and strayCompleted), so a wrap alone can never mislead the guard.
struct OperationToken: Equatable {
    enum Kind: UInt8 {
        case accept = 1        // index: listener record
        case acceptResume      // backoff timer after EMFILE/ENFILE
        case connect           // index: connection
        case connectTimeout
        case pollIn            // index: connection, direction
        case pollOut
        case spliceIn
        case spliceOut
        case wake              // eventfd read: a command from the control thread
        case tick              // periodic timer: idle sweep, grace deadline
        case cancel            // completions of cancel requests
        case replyWait         // index: connection, direction: look again for a tunnel reply (Fast Open, before the SYN-ACK)
        case detached          // a close nothing waits for (its slot may be reused already)
    }

    var raw: UInt64

    /// Connection slots and listener records a token can name.
    static let indexLimit = 1 << 24

    init(_ kind: Kind, index: Int32 = 0, direction: Int = 0, generation: UInt32 = 0) {
        raw = UInt64(kind.rawValue & 0x3f) << 58 | UInt64(direction & 0x3) << 56 | UInt64(generation) << 24
            | UInt64(UInt32(bitPattern: index) & 0xff_ffff)
    }

    init(raw: UInt64) { self.raw = raw }

    /// Kinds whose completion belongs to a connection slot (Worker.connectionOperationCompleted),
    /// for code that hands completions over without Worker.dispatch (the test harness).
    /// Exhaustive on purpose, as Worker.dispatch is: a new kind must say where it goes.
    static func namesConnection(_ kind: Kind) -> Bool {
        switch kind {
        case .connect, .connectTimeout, .pollIn, .pollOut, .spliceIn, .spliceOut, .replyWait: return true
        case .accept, .acceptResume, .wake, .tick, .cancel, .detached: return false
        }
    }

    var kind: Kind? { Kind(rawValue: UInt8(truncatingIfNeeded: raw >> 58)) }
    var direction: Int { Int(truncatingIfNeeded: (raw >> 56) & 0x3) }
    var generation: UInt32 { UInt32(truncatingIfNeeded: raw >> 24) }
    var index: Int32 { Int32(truncatingIfNeeded: raw & 0xff_ffff) }
}
