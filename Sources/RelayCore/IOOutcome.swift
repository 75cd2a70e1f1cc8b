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
    case failed(Errno)

    /// A syscall's return value with `errno` (EINTR is retried by the caller's loop).
    init(returned n: Int, errno code: Int32) {
        if n > 0 { self = .moved(n) } else if n == 0 { self = .eof } else { self.init(code: code) }
    }

    /// A ring completion's `res` (negative errno on failure).
    init(result: Int32) {
        if result > 0 { self = .moved(Int(result)) } else if result == 0 { self = .eof } else { self.init(code: -result) }
    }

    private init(code: Int32) {
        switch code {
        // A signal or a ring's own retry hint: nothing happened, try again after readiness.
        case EAGAIN, EINTR: self = .wouldBlock
        default: self = .failed(Errno(rawValue: code))
        }
    }
}

/// The edge itself: each call retries EINTR and reports an IOOutcome.
enum DataPath {
    static let spliceFlags = UInt32(CNET_SPLICE_F_MOVE | CNET_SPLICE_F_NONBLOCK)

    @inline(__always) static func splice(from source: Int32, to sink: Int32, count: Int) -> IOOutcome {
        retrying { cnet_splice(source, sink, count, spliceFlags) }
    }

    @inline(__always) static func send(_ fd: Int32, _ bytes: UnsafeRawPointer, count: Int) -> IOOutcome {
        retrying { Glibc.send(fd, bytes, count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
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
