import Foundation

/// Kernel-side observations: listening sockets, MPTCP counters, open descriptors.
public enum Net {
    /// Waits until something in `ns` listens on TCP `port` (per `ss -ltnH`).
    /// `alive` lets the caller stop waiting early when the server already died.
    public static func waitListening(ns: String, port: Int, timeout: Double = 10,
                                     alive: (() -> Bool)? = nil) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let r = try await Proc.run(in: ns, ["ss", "-ltnH", "sport = :\(port)"], timeout: 10)
            if r.succeeded && !r.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return }
            if let alive, !alive() { throw ProcError("the server for port \(port) in \(ns) exited before listening") }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        throw ProcError("nothing listens on TCP port \(port) in namespace \(ns) after \(timeout) s")
    }

    /// Absolute kernel SNMP/netstat counters of a namespace (nstat -a, history untouched).
    public static func counters(ns: String) async throws -> [String: Int64] {
        let out = try await Proc.check(in: ns, ["nstat", "-asz"])
        var result: [String: Int64] = [:]
        for line in out.split(separator: "\n") {
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if f.count >= 2, let v = Int64(f[1]) { result[String(f[0])] = v }
        }
        return result
    }

    /// One MPTCP counter, e.g. "MPTcpExtMPCapableSYNRX"; 0 when the kernel never set it.
    public static func counter(_ name: String, ns: String) async throws -> Int64 {
        try await counters(ns: ns)[name] ?? 0
    }

    /// Open descriptors of a process, and how many of them are pipes.
    public static func openFDs(pid: Int32) -> (total: Int, pipes: Int) {
        let dir = "/proc/\(pid)/fd"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: dir) else { return (0, 0) }
        var pipes = 0
        for e in entries {
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: "\(dir)/\(e)"),
               target.hasPrefix("pipe:") {
                pipes += 1
            }
        }
        return (entries.count, pipes)
    }
}
