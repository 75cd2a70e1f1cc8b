#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import Testing

/// The control loop's safety net: a control signal that reaches a thread not blocking it is
/// recorded for the loop, not given its default action (SIGHUP's ends the process).
@Suite struct SignalRecorderTests {
    @Test func aSignalOnAnUnblockingThreadIsRecordedNotFatal() {
        #expect(cnet_record_signal(SIGHUP) == 0)
        _ = cnet_take_recorded_signals()
        var set = sigset_t(), previous = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGHUP)
        pthread_sigmask(SIG_UNBLOCK, &set, &previous)
        defer { pthread_sigmask(SIG_SETMASK, &previous, nil) }
        raise(SIGHUP)  // this thread takes it: without the handler the test process would end here
        let recorded = cnet_take_recorded_signals()
        #expect(recorded & (1 << UInt32(SIGHUP)) != 0)
        #expect(cnet_take_recorded_signals() == 0, "taking clears")
    }
}
