#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import SystemPackage

/// What one data-path syscall (or ring completion) did, decoded once at the syscall edge:
/// nothing above this file compares errno values.
enum IOOutcome: Equatable {
    /// Bytes moved (> 0).
    case moved(Int)
    /// The peer sent FIN (a read returned 0).
    case eof
    /// Nothing to do now: wait for readiness (EAGAIN, or an interrupted call to repeat).
    case wouldBlock
    /// The socket has no connection yet (ENOTCONN, EINPROGRESS): a Fast Open socket between
    /// its first write and the SYN-ACK, or one whose SYN has not gone out yet.
    case notConnectedYet
    /// splice(2) cannot move bytes between these files here (EINVAL, ENOSYS, EOPNOTSUPP, or
    /// EPERM from a seccomp filter): not the peer's doing; the direction copies instead.
    case unsupported(Errno)
    /// The host ran out of something (memory, socket buffers, descriptors): not the peer's doing.
    case shortage(Errno)
    /// The connection failed: reset, broken pipe, timed out, unreachable (any other error).
    case peerReset(Errno)

    /// A syscall's return value with `errno` (EINTR is retried by the caller's loop).
    init(returned n: Int, errno code: Int32) {
        if n > 0 { self = .moved(n) } else if n == 0 { self = .eof } else { self.init(code: code) }
    }

    /// A ring completion's `res` (negative errno on failure).
    init(result: Int32) {
        if result > 0 { self = .moved(Int(result)) } else if result == 0 { self = .eof } else { self.init(code: -result) }
    }

    /// A splice's return value with `errno`: like `init(returned:errno:)`, and "this pair of
    /// files cannot be spliced" is told apart from a failing peer.
    init(splicedReturned n: Int, errno code: Int32) {
        self.init(returned: n, errno: code)
        self.classifySplice()
    }

    /// A ring splice completion's `res`.
    init(spliceResult result: Int32) {
        self.init(result: result)
        self.classifySplice()
    }

    private mutating func classifySplice() {
        // A peer that goes away yields ECONNRESET/EPIPE/ETIMEDOUT, never these: they say the
        // kernel (or a filter in front of it) will not splice this pair of files at all.
        if case .peerReset(let e) = self, e == .invalidArgument || e == .noFunction || e == .notSupported
            || e == .notSupportedOnSocket || e == .notPermitted {
            self = .unsupported(e)
        }
    }

    private init(code: Int32) {
        switch code {
        // A signal or a ring's own retry hint: nothing happened, try again after readiness.
        case EAGAIN, EINTR: self = .wouldBlock
        case ENOTCONN, EINPROGRESS: self = .notConnectedYet
        default:
            let e = Errno(rawValue: code)
            self = e.isResourceShortage ? .shortage(e) : .peerReset(e)
        }
    }
}

extension IOOutcome {
    /// The error a failed outcome carries, for a close reason (ENOTCONN for
    /// `notConnectedYet`); nil when nothing failed.
    var error: Errno? {
        switch self {
        case .moved, .eof, .wouldBlock: return nil
        case .notConnectedYet: return .socketNotConnected
        case .unsupported(let e), .shortage(let e), .peerReset(let e): return e
        }
    }
}

/// The edge itself: each call retries EINTR and reports an IOOutcome.
enum DataPath {
    static let spliceFlags = UInt32(CNET_SPLICE_F_MOVE | CNET_SPLICE_F_NONBLOCK)

    @inline(__always) static func splice(from source: Int32, to sink: Int32, count: Int, flags: UInt32 = spliceFlags) -> IOOutcome {
        while true {
            let n = cnet_splice(source, sink, count, flags)
            if n < 0 && errno == EINTR { continue }
            return IOOutcome(splicedReturned: n, errno: n < 0 ? errno : 0)
        }
    }

    /// read(2) of a pipe's bytes (the copy path's way to empty a pipe splice cannot write out).
    @inline(__always) static func read(_ fd: Int32, into bytes: UnsafeMutableRawPointer, count: Int) -> IOOutcome {
        retrying { Glibc.read(fd, bytes, count) }
    }

    @inline(__always) static func send(_ fd: Int32, _ bytes: UnsafeRawPointer, count: Int, more: Bool = false) -> IOOutcome {
        let flags = Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT) | (more ? Int32(MSG_MORE) : 0)
        return retrying { Glibc.send(fd, bytes, count, flags) }
    }

    @inline(__always) static func receive(_ fd: Int32, into bytes: UnsafeMutableRawPointer, count: Int) -> IOOutcome {
        retrying { Glibc.recv(fd, bytes, count, Int32(MSG_DONTWAIT)) }
    }

    @inline(__always) private static func retrying(_ call: () -> Int) -> IOOutcome {
        while true {
            let n = call()
            if n < 0 && errno == EINTR { continue }
            return IOOutcome(returned: n, errno: n < 0 ? errno : 0)
        }
    }
}

extension Errno {
    /// The process or host ran out of something a new connection needs (descriptors,
    /// socket buffers, memory): wait and retry, never spin, never blame the peer.
    var isResourceShortage: Bool {
        self == .tooManyOpenFiles || self == .tooManyOpenFilesInSystem || self == .noBufferSpace || self == .noMemory
    }

    /// Out of descriptors, per process or system-wide.
    var isDescriptorShortage: Bool { self == .tooManyOpenFiles || self == .tooManyOpenFilesInSystem }
}
