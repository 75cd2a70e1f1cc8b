#if canImport(Glibc)
import Glibc
#endif
import RelayLog

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

    /// The reason without the text of a refusal: fixed size, so a close record can carry it.
    var cause: CloseCause {
        switch self {
        case .completed: return .completed
        case .idleTimeout: return .idleTimeout
        case .connectFailed(let e): return .connectFailed(e)
        case .connectTimeout: return .connectTimeout
        case .resetByClient(let e): return .resetByClient(e)
        case .resetByUpstream(let e): return .resetByUpstream(e)
        case .refused: return .refused
        case .resources(let e): return .resources(e)
        case .shutdown: return .shutdown
        }
    }

    var refusal: String? {
        if case .refused(let why) = self { return why }
        return nil
    }

    var text: String {
        var line = LogLine(capacity: 64)
        cause.write(to: &line, refusal: refusal)
        return line.text
    }
}

/// A close reason as numbers: what close records and the per-listener counters keep. It is
/// CloseReason case for case without a refusal's text (a String would keep a record from
/// being copied as bytes); `CloseReason.cause` maps them, exhaustively, so a case added to
/// one and not the other does not compile.
enum CloseCause: BitwiseCopyable, Equatable {
    case completed
    case idleTimeout
    case connectFailed(Int32)
    case connectTimeout
    case resetByClient(Int32)
    case resetByUpstream(Int32)
    case refused
    case resources(Int32)
    case shutdown

    static let count = 9

    /// 0..<count, in declaration order: the index of the cause's counter.
    var ordinal: Int {
        switch self {
        case .completed: return 0
        case .idleTimeout: return 1
        case .connectFailed: return 2
        case .connectTimeout: return 3
        case .resetByClient: return 4
        case .resetByUpstream: return 5
        case .refused: return 6
        case .resources: return 7
        case .shutdown: return 8
        }
    }

    /// The `reason` label of mptcp_relay_connections_closed_total, by ordinal.
    static let metricLabels = ["done", "idle_timeout", "connect_failed", "connect_timeout", "client_error",
                               "upstream_error", "refused", "resources", "shutdown"]

    /// The reason as the close line says it; `refusal` is the text a refusal carries.
    func write(to line: inout LogLine, refusal: String?) {
        switch self {
        case .completed: line.append("done")
        case .idleTimeout: line.append("idle timeout")
        case .connectFailed(let e): line.append("upstream connect failed: "); line.append(cString: strerror(e))
        case .connectTimeout: line.append("upstream connect timed out")
        case .resetByClient(let e): line.append("client error: "); line.append(cString: strerror(e))
        case .resetByUpstream(let e): line.append("upstream error: "); line.append(cString: strerror(e))
        case .refused: line.append("refused: "); line.append(refusal ?? "?")
        case .resources(let e): line.append("out of resources: "); line.append(cString: strerror(e))
        case .shutdown: line.append("grace period over at shutdown")
        }
    }
}

func errnoText(_ code: Int32) -> String { String(cString: strerror(code)) }
