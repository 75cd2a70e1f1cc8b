#if canImport(Glibc)
import Glibc
#endif
import CURing

/// What io_uring set-up this kernel allows, probed by building a small ring the way the
/// relay's workers do (Ring tries the flag sets in order and keeps the first accepted).
public struct RingFeatures: Sendable, Equatable {
    /// io_uring_setup works at all (not refused by kernel.io_uring_disabled, seccomp or a
    /// container policy); the errno when refused.
    public var available: Bool
    public var refusal: Int32
    /// SINGLE_ISSUER|DEFER_TASKRUN (6.1): fewer interruptions for a ring owned by one thread.
    public var deferTaskrun: Bool
    /// COOP_TASKRUN (5.19), the next best.
    public var coopTaskrun: Bool

    public init(available: Bool, refusal: Int32, deferTaskrun: Bool, coopTaskrun: Bool) {
        self.available = available
        self.refusal = refusal
        self.deferTaskrun = deferTaskrun
        self.coopTaskrun = coopTaskrun
    }

    /// `makeRing` builds a ring and returns its accepted setup flags, or the errno.
    public static func detect(makeRing: () -> Result<UInt32, RingError> = {
        do throws(RingError) { return .success(try Ring(entries: 8).setupFlags) } catch { return .failure(error) }
    }) -> RingFeatures {
        switch makeRing() {
        case .failure(let e):
            return RingFeatures(available: false, refusal: e.code, deferTaskrun: false, coopTaskrun: false)
        case .success(let flags):
            let defer_ = flags & curing_flag_single_issuer_defer_taskrun() != 0
            return RingFeatures(available: true, refusal: 0, deferTaskrun: defer_,
                                coopTaskrun: defer_ || flags & curing_flag_coop_taskrun() != 0)
        }
    }

    public var report: [String] {
        guard available else {
            return ["no  io_uring: \(String(cString: strerror(refusal))): the relay cannot run (check kernel.io_uring_disabled, seccomp, container policy)"]
        }
        return [
            "yes io_uring",
            deferTaskrun ? "yes io_uring SINGLE_ISSUER|DEFER_TASKRUN (6.1)"
                : coopTaskrun ? "no  io_uring DEFER_TASKRUN (6.1): rings use COOP_TASKRUN instead (slightly more interruptions)"
                : "no  io_uring DEFER_TASKRUN (6.1) nor COOP_TASKRUN (5.19): rings use the default set-up",
        ]
    }
}
