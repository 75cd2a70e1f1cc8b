#if canImport(Glibc)
import Glibc
#endif
import Foundation

extension Thread {
    /// Starts `body` on a named thread with every signal blocked. A thread inherits its
    /// creator's signal mask: created this way it never takes the SIGTERM/SIGHUP meant for
    /// the relay's control loop (sigtimedwait), whichever is started first.
    static func startBlockingSignals(name: String, _ body: @escaping @Sendable () -> Void) -> Thread {
        let t = Thread(block: body)
        t.name = name
        var all = sigset_t(), previous = sigset_t()
        sigfillset(&all)
        pthread_sigmask(SIG_BLOCK, &all, &previous)
        t.start()
        pthread_sigmask(SIG_SETMASK, &previous, nil)
        return t
    }
}
