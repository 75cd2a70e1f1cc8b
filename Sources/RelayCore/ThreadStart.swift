#if canImport(Glibc)
import Glibc
#endif

/// A closure for pthread_create to run: boxed so the C callback can take it back.
private final class ThreadBody {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// Starts a thread running `body` (workers, the datagram engine, the servers' pings). It
/// inherits the caller's signal mask: the relay blocks its control signals before starting
/// any, so only the control thread's sigtimedwait sees them.
func startThread(_ body: @escaping () -> Void) -> Result<pthread_t, ThreadStartError> {
    var thread = pthread_t()
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    let rc = pthread_create(&thread, nil, { arg in
        Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue().run()
        return nil
    }, box)
    guard rc == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        return .failure(ThreadStartError(code: rc))
    }
    return .success(thread)
}

/// pthread_create's error number.
struct ThreadStartError: Error {
    let code: Int32
}
