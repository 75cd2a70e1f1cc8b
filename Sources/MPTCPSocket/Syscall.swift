#if canImport(Glibc)
import Glibc
#endif
import SystemPackage

/// Runs a libc call, retrying on EINTR; a `-1` return becomes the thrown `Errno`.
@inline(__always)
@discardableResult
public func syscallRetrying<T: FixedWidthInteger>(_ body: () -> T) throws(Errno) -> T {
    while true {
        let result = body()
        if result != -1 { return result }
        let code = errno
        if code == EINTR { continue }
        throw Errno(rawValue: code)
    }
}
