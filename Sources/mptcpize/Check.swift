import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tell whether this kernel and network namespace can do MPTCP.",
        discussion: "Exit status 0 when an MPTCP socket can be created here, 1 otherwise."
    )

    func run() throws {
        let kernelKnowsMPTCP = access(KernelProbe.sysctlDirectory, F_OK) == 0
        line("kernel support", kernelKnowsMPTCP
            ? "yes (\(KernelProbe.sysctlDirectory) exists)"
            : "no \(KernelProbe.sysctlDirectory): this kernel was built without MPTCP (CONFIG_MPTCP), or /proc is not mounted")

        switch KernelProbe.readSysctl("enabled") {
        case "1"?: line("net.mptcp.enabled", "1, MPTCP sockets are allowed in this network namespace")
        case let value?: line("net.mptcp.enabled", "\(value), MPTCP sockets are refused here; allow them with `sysctl -w net.mptcp.enabled=1`")
        case nil: line("net.mptcp.enabled", "unknown")
        }

        switch KernelProbe.pathManager() {
        case "kernel"?: line("path manager", "kernel (in-kernel: subflows follow the `ip mptcp endpoint` list)")
        case "userspace"?: line("path manager", "userspace (a daemon such as mptcpd must create the extra subflows)")
        case let other?: line("path manager", other)
        case nil: line("path manager", "unknown")
        }

        if Shell.isInstalled("ip") {
            let endpoints = Shell.run("ip mptcp endpoint show")
            let text = endpoints.output.trimmingCharacters(in: " \n")
            if endpoints.status != 0 {
                line("endpoints", "`ip mptcp endpoint show` failed: \(text)")
            } else if text.isEmpty {
                line("endpoints", "none: connections stay on one path; add one per extra interface with `ip mptcp endpoint add ADDRESS dev IFACE subflow` (client) or `signal` (server)")
            } else {
                line("endpoints", text.split(separator: "\n").joined(separator: "\n" + String(repeating: " ", count: 22)))
            }
            let limits = Shell.run("ip mptcp limits show")
            line("limits", limits.output.trimmingCharacters(in: " \n") + (limits.status == 0 ? " (raise with `ip mptcp limits set subflows N add_addr_accepted N`)" : ""))
        } else {
            line("endpoints", "unknown: `ip` (iproute2) is not installed")
        }

        let v4 = KernelProbe.probe(family: AF_INET)
        let v6 = KernelProbe.probe(family: AF_INET6)
        line("IPv4 MPTCP socket", v4.map { "refused: \($0)" } ?? "created")
        line("IPv6 MPTCP socket", v6.map { "refused: \($0)" } ?? "created")

        switch KernelProbe.seccompUserNotification() {
        case true?: line("seccomp supervisor", "available (user notification): `mptcpize run --seccomp`, and static executables, work here")
        case false?: line("seccomp supervisor", "unavailable: this kernel has no seccomp user notification (Linux 5.0+, ADDFD 5.14+); static executables stay TCP")
        case nil: line("seccomp supervisor", "unknown (/proc/sys/kernel/seccomp/actions_avail unreadable)")
        }
        switch KernelProbe.hasKernelFunction("update_socket_protocol") {
        case true?: line("BPF hook", "update_socket_protocol exists (Linux 6.6+): a BPF fmod_ret program could convert sockets in the kernel; mptcpize does not use it, and some kernels refuse fmod_ret programs")
        case false?: line("BPF hook", "no update_socket_protocol (Linux 6.6+ has it)")
        case nil: line("BPF hook", "unknown (/proc/kallsyms unreadable)")
        }

        let shim = try? ShimLocator.locate()
        line("shim", shim ?? "libmptcpize.so not found (looked at \(ShimLocator.candidates().joined(separator: ", ")))")

        print("")
        if v4 == nil || v6 == nil {
            print("MPTCP works here: programs run with `mptcpize run` will use it.")
        } else {
            print("MPTCP does not work here: programs run with `mptcpize run` will keep using TCP (they still work).")
            throw ExitCode(1)
        }
    }

    private func line(_ label: String, _ value: String) {
        let padded = label + ":" + String(repeating: " ", count: max(1, 21 - label.count))
        print(padded + value)
    }
}
