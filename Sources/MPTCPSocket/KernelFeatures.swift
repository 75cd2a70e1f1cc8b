#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import SystemPackage

/// The MPTCP features of the running kernel, probed (never inferred from the version): what
/// the relay uses, and what it falls back to without it. `mptcp-relay check --kernel` and
/// the kernel matrix (scripts/test-kernels.sh) print them.
public struct MPTCPFeatures: Sendable, Equatable {
    /// socket(IPPROTO_MPTCP) works in this namespace (net.mptcp.enabled=1, CONFIG_MPTCP).
    public var sockets: Bool
    /// getsockopt(TCP_IS_MPTCP), Linux 6.10: one call tells MPTCP from fallback. Without it
    /// the relay reads MPTCP_INFO's fallback flag instead (one call too, a larger answer).
    public var tcpIsMPTCP: Bool
    /// MPTCP_INFO, MPTCP_TCPINFO, MPTCP_SUBFLOW_ADDRS (5.16): subflow counts and addresses.
    public var subflowInfo: Bool
    /// MPTCP_FULL_INFO (6.5): everything about every subflow in one call.
    public var fullInfo: Bool
    /// A splice_read of MPTCP's own (Linux 7.0): splicing out of an MPTCP socket moves the
    /// socket's pages into the pipe. Without it splice still works, through the generic
    /// path, which copies each byte once (as recv would). Nothing in the relay changes; bulk
    /// from the MPTCP side costs less CPU per byte with it.
    public var nativeSpliceRead: Bool

    public init(sockets: Bool, tcpIsMPTCP: Bool, subflowInfo: Bool, fullInfo: Bool, nativeSpliceRead: Bool = false) {
        self.sockets = sockets
        self.tcpIsMPTCP = tcpIsMPTCP
        self.subflowInfo = subflowInfo
        self.fullInfo = fullInfo
        self.nativeSpliceRead = nativeSpliceRead
    }

    /// The kernel calls the probe makes; tests fake them to cover every fallback.
    public struct Probe: Sendable {
        /// socket(family, SOCK_STREAM, proto) then close: the errno, or nil on success.
        public var openSocket: @Sendable (_ proto: Int32) -> Errno?
        /// getsockopt on a fresh socket of `proto`: the errno, or nil when the option is known.
        public var getOption: @Sendable (_ proto: Int32, _ level: Int32, _ name: Int32) -> Errno?

        /// Whether the running kernel has a function of this name (its symbol table): the
        /// only way to see an implementation that changes cost, not behaviour.
        public var hasSymbol: @Sendable (_ name: String) -> Bool

        public init(openSocket: @escaping @Sendable (Int32) -> Errno?, getOption: @escaping @Sendable (Int32, Int32, Int32) -> Errno?,
                    hasSymbol: @escaping @Sendable (String) -> Bool = { _ in false }) {
            self.openSocket = openSocket
            self.getOption = getOption
            self.hasSymbol = hasSymbol
        }

        public static let kernel = Probe(
            openSocket: { proto in
                let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), proto)
                if fd < 0 { return Errno(rawValue: errno) }
                Glibc.close(fd)
                return nil
            },
            getOption: { proto, level, name in
                let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), proto)
                if fd < 0 { return Errno(rawValue: errno) }
                defer { Glibc.close(fd) }
                var buffer = [UInt8](repeating: 0, count: 512)
                var length = socklen_t(buffer.count)
                return getsockopt(fd, level, name, &buffer, &length) == 0 ? nil : Errno(rawValue: errno)
            },
            hasSymbol: { name in kernelSymbols().contains(name) })

        /// The function names in /proc/kallsyms (names are readable without privilege; only
        /// the addresses are hidden). Empty when it cannot be read.
        public static func kernelSymbols() -> Set<String> {
            guard let file = fopen("/proc/kallsyms", "r") else { return [] }
            defer { fclose(file) }
            var names = Set<String>()
            var line = [CChar](repeating: 0, count: 512)
            while fgets(&line, Int32(line.count), file) != nil {
                // "ADDRESS TYPE NAME [module]": only MPTCP's own functions are of interest.
                // Of ~200,000 lines, only those naming MPTCP become Strings.
                guard strstr(line, "mptcp") != nil else { continue }
                let text = String(cString: line)
                let fields = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" })
                if fields.count >= 3 { names.insert(String(fields[2])) }
            }
            return names
        }
    }

    /// An option the kernel does not know answers ENOPROTOOPT or EOPNOTSUPP; any other
    /// answer (success, or EINVAL for a socket not yet connected) means it is there.
    private static func known(_ result: Errno?) -> Bool {
        guard let result else { return true }
        return result != .protocolNotAvailable && result != .notSupported
    }

    public static func detect(_ probe: Probe = .kernel) -> MPTCPFeatures {
        let sockets = probe.openSocket(CNET_IPPROTO_MPTCP) == nil
        guard sockets else { return MPTCPFeatures(sockets: false, tcpIsMPTCP: false, subflowInfo: false, fullInfo: false) }
        return MPTCPFeatures(
            sockets: true,
            tcpIsMPTCP: known(probe.getOption(Int32(IPPROTO_TCP), Int32(IPPROTO_TCP), CNET_TCP_IS_MPTCP)),
            subflowInfo: known(probe.getOption(CNET_IPPROTO_MPTCP, CNET_SOL_MPTCP, CNET_MPTCP_INFO)),
            fullInfo: known(probe.getOption(CNET_IPPROTO_MPTCP, CNET_SOL_MPTCP, CNET_MPTCP_FULL_INFO)),
            nativeSpliceRead: probe.hasSymbol("mptcp_splice_read"))
    }

    /// One line per feature: what it is, whether this kernel has it, what that means.
    public var report: [String] {
        func line(_ have: Bool, _ what: String, _ without: String) -> String {
            "\(have ? "yes" : "no ") \(what)\(have ? "" : ": \(without)")"
        }
        return [
            line(sockets, "MPTCP sockets", "connections run plain TCP (the relay says so per connection); check net.mptcp.enabled and CONFIG_MPTCP"),
            line(tcpIsMPTCP, "TCP_IS_MPTCP (6.10)", "MPTCP or fallback is read from MPTCP_INFO instead (same result)"),
            line(subflowInfo, "MPTCP_INFO / subflow addresses (5.16)", "subflow counts are not reported"),
            line(fullInfo, "MPTCP_FULL_INFO (6.5)", "per-subflow details come from MPTCP_TCPINFO and MPTCP_SUBFLOW_ADDRS"),
            line(nativeSpliceRead, "MPTCP splice_read (7.0)", "splicing out of an MPTCP socket copies each byte once in the kernel (the generic path); it still saves the copy to user space"),
        ]
    }
}
