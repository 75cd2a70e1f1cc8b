import Foundation

/// Two network namespaces joined by one veth link: client 10.77.0.2 <-> server 10.77.0.1.
/// Names are unique per run; `destroy()` (called from `with`) removes them even after a failure.
struct NetnsPair {
    static let serverAddress = "10.77.0.1"
    static let clientAddress = "10.77.0.2"
    nonisolated(unsafe) private static var counter = 0
    private static let lock = NSLock()

    let server: String
    let client: String

    /// Runs `body` with a fresh pair; `mptcpEnabled` sets net.mptcp.enabled in both namespaces.
    static func with<T>(mptcpEnabled: Bool = true, _ body: (NetnsPair) throws -> T) throws -> T {
        let pair = try NetnsPair(mptcpEnabled: mptcpEnabled)
        defer { pair.destroy() }
        return try body(pair)
    }

    private init(mptcpEnabled: Bool) throws {
        let n = Self.lock.withLock { Self.counter += 1; return Self.counter }
        // The whole pid: scripts/test.sh deletes "mz<pid>..." namespaces whose pid is gone,
        // and a truncated pid could name another run's live process or none.
        let tag = "mz\(getpid())x\(n)"
        server = tag + "s"
        client = tag + "c"
        do {
            for ns in [server, client] {
                try runChecked(["ip", "netns", "add", ns])
                try runChecked(["ip", "-n", ns, "link", "set", "lo", "up"])
                try runChecked(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.mptcp.enabled=\(mptcpEnabled ? 1 : 0)"])
            }
            // Created inside the namespaces directly, so no name is ever visible in the root one.
            try runChecked(["ip", "-n", server, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", client])
            try runChecked(["ip", "-n", server, "addr", "add", "\(Self.serverAddress)/24", "dev", "eth0"])
            try runChecked(["ip", "-n", client, "addr", "add", "\(Self.clientAddress)/24", "dev", "eth0"])
            try runChecked(["ip", "-n", server, "link", "set", "eth0", "up"])
            try runChecked(["ip", "-n", client, "link", "set", "eth0", "up"])
        } catch {
            destroy()
            throw error
        }
    }

    func destroy() {
        for ns in [server, client] {
            // Kill what still runs inside, then delete; both idempotent.
            if let pids = try? run(["ip", "netns", "pids", ns]).stdout {
                for pid in pids.split(separator: "\n").compactMap({ Int32($0) }) { kill(pid, SIGKILL) }
            }
            _ = try? run(["ip", "netns", "del", ns])
        }
    }

    /// `ip netns exec NS` prefix, with environment assignments through env(1).
    static func exec(_ ns: String, env: [String: String] = [:], _ command: [String]) -> [String] {
        ["ip", "netns", "exec", ns, "env"] + env.sorted(by: { $0.key < $1.key }).map { "\($0.key)=\($0.value)" } + command
    }

    /// Waits until a TCP (or MPTCP) socket listens on `port` in `ns`.
    static func waitForListener(_ ns: String, port: Int, timeout: Double = 20) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let out = try run(["ip", "netns", "exec", ns, "ss", "-Hltn", "sport = :\(port)"]).stdout
            if !out.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return }
            usleep(50_000)
        }
        throw TestError("nothing listened on port \(port) in \(ns) within \(timeout) s")
    }

    /// The kernel's MPTcpExt counters in `ns` by bare name (MPCapableSYNRX...), from /proc/net/netstat seen inside it.
    static func mptcpCounters(_ ns: String) throws -> [String: Int] {
        let text = try runChecked(["ip", "netns", "exec", ns, "cat", "/proc/net/netstat"]).stdout
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("MPTcpExt:") }
        guard lines.count == 2 else { throw TestError("no MPTcpExt lines in /proc/net/netstat of \(ns)") }
        let names = lines[0].split(separator: " ").dropFirst()
        let values = lines[1].split(separator: " ").dropFirst()
        return Dictionary(uniqueKeysWithValues: zip(names.map(String.init), values.map { Int($0) ?? 0 }))
    }
}
