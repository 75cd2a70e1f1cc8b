#if canImport(Glibc)
import Glibc
#endif
import Testing
import URing

/// `check --kernel` and a worker that cannot set up its ring say what refused io_uring.
@Suite("io_uring refusal diagnosis")
struct RingRefusalTests {
    @Test func seccompSysctlOrKernel() {
        let filtered = "Name:\tmptcp-relay\nSeccomp:\t2\nSeccomp_filters:\t1\n"
        #expect(RingFeatures.whyRefused(ENOSYS, status: filtered, disabled: "0\n").contains("a seccomp filter on this process refuses io_uring_setup"))
        #expect(RingFeatures.whyRefused(EPERM, status: filtered, disabled: nil).contains("seccomp-io_uring.json"))
        #expect(RingFeatures.whyRefused(ENOSYS, status: "Seccomp:\t0\n", disabled: nil).contains("this kernel has no io_uring"))
        #expect(RingFeatures.whyRefused(EPERM, status: filtered, disabled: "2\n").contains("kernel.io_uring_disabled = 2"))
        #expect(RingFeatures.whyRefused(ENOMEM, status: "Seccomp:\t0\n", disabled: "0").contains("check kernel.io_uring_disabled"))
    }
}
