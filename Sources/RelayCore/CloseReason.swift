#if canImport(Glibc)
import Glibc
#endif

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
