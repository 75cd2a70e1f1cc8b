/// The 64-bit `user_data` of every submitted operation: which step of which connection
/// (or listener) it belongs to.
/// Layout: kind (8 bits) | direction (8) | slot generation (16) | index (32).
/// The generation makes a completion that outlived its connection (the slot was reclaimed
/// and reused meanwhile) recognisable, so it never acts on the slot's new occupant.
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
    }

    var raw: UInt64

    init(_ kind: Kind, index: Int32 = 0, direction: Int = 0, generation: UInt16 = 0) {
        raw = UInt64(kind.rawValue) << 56 | UInt64(UInt8(direction)) << 48 | UInt64(generation) << 32
            | UInt64(UInt32(bitPattern: index))
    }

    init(raw: UInt64) { self.raw = raw }

    var kind: Kind? { Kind(rawValue: UInt8(truncatingIfNeeded: raw >> 56)) }
    var direction: Int { Int(UInt8(truncatingIfNeeded: raw >> 48)) }
    var generation: UInt16 { UInt16(truncatingIfNeeded: raw >> 32) }
    var index: Int32 { Int32(bitPattern: UInt32(truncatingIfNeeded: raw)) }
}
