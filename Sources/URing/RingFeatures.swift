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
            return ["no  io_uring: \(String(cString: strerror(refusal))): the relay cannot run: \(Self.whyRefused(refusal))"]
        }
        return [
            "yes io_uring",
            deferTaskrun ? "yes io_uring SINGLE_ISSUER|DEFER_TASKRUN (6.1)"
                : coopTaskrun ? "no  io_uring DEFER_TASKRUN (6.1): rings use COOP_TASKRUN instead (slightly more interruptions)"
                : "no  io_uring DEFER_TASKRUN (6.1) nor COOP_TASKRUN (5.19): rings use the default set-up",
        ]
    }

    /// What refused io_uring_setup, as far as this process can tell: the sysctl, a seccomp
    /// filter (a container runtime's default profile answers ENOSYS or EPERM), or the kernel.
    public static func whyRefused(_ errno: Int32, status: String? = readText("/proc/self/status"),
                                  disabled: String? = readText("/proc/sys/kernel/io_uring_disabled")) -> String {
        if let d = disabled.flatMap({ Int(String($0.filter { !$0.isWhitespace })) }), d != 0 {
            return "kernel.io_uring_disabled = \(d) (\(d == 2 ? "off for everyone" : "only for members of kernel.io_uring_group")): set it to 0"
        }
        let seccomp = status?.split(separator: "\n").first { $0.hasPrefix("Seccomp:") }
            .map { String($0.dropFirst("Seccomp:".count).filter { !$0.isWhitespace }) }
        if seccomp == "2" && (errno == ENOSYS || errno == EPERM) {
            return "a seccomp filter on this process refuses io_uring_setup (Seccomp: 2 in /proc/self/status), as the default profiles of Docker and Podman do: run the container with packaging/container/seccomp-io_uring.json (--security-opt seccomp=FILE), the default profile plus the three io_uring calls"
        }
        if errno == ENOSYS { return "this kernel has no io_uring (CONFIG_IO_URING off)" }
        return "check kernel.io_uring_disabled, seccomp, and the container's policy"
    }

    /// A small /proc or /sys file, whole; nil when it cannot be read.
    public static func readText(_ path: String) -> String? {
        guard let f = fopen(path, "r") else { return nil }
        defer { fclose(f) }
        var out = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = fread(&buf, 1, buf.count, f)
            if n <= 0 { break }
            out += buf[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }
}
