import Testing

/// Issue 24, finding 10: the scoped shim swaps a socket by repointing one descriptor number.
/// A socket that another descriptor (dup) or another process (fork) also holds must not be
/// swapped: the other holder would be left with an unconnected TCP socket. Main swapped it.
@Suite struct SharedSocketTests {
    static let port = 7011

    static let script = #"""
        import os, socket, sys

        P = int(sys.argv[1])
        proto = lambda s: s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
        l = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        l.bind(("::1", P))
        l.listen(8)

        def connected(s):
            try:
                s.getpeername()
                return 1
            except OSError:
                return 0

        # dup (CPython uses fcntl(F_DUPFD_CLOEXEC)) before connect
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        d = s.dup()
        s.connect(("::1", P))
        l.accept()
        print("dup", connected(d), proto(s), proto(d), flush=True)

        # fork before connect: the child connects, the parent's descriptor names the same socket
        s2 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:
            s2.connect(("::1", P))
            os._exit(0)
        os.waitpid(pid, 0)
        l.accept()
        print("fork", connected(s2), proto(s2), flush=True)

        # a socket made after the fork is still converted
        s3 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s3.connect(("::1", P))
        print("fresh", connected(s3), proto(s3), flush=True)
        """#

    @Test func aSocketWithOtherHoldersStaysOneSocket() throws {
        try Build.require()
        let dir = try ScratchDir()
        defer { dir.remove() }
        let script = try dir.write("shared.py", Self.script)
        let outcome = try NetnsPair.with { pair in
            try run(NetnsPair.exec(pair.client, env: ["LD_PRELOAD": Build.library, "MPTCPIZE_SCOPE": "connect"],
                                   ["/usr/bin/python3", script, "\(Self.port)"]))
        }
        try #require(outcome.status == 0, "\(outcome.summary)")
        let lines = outcome.stdout.split(separator: "\n").map(String.init)
        #expect(lines.contains("dup 1 6 6"), "the dup()ed descriptor lost the connection: \(lines)")
        #expect(lines.contains("fork 1 6"), "the parent's copy of a socket its child connected is unconnected: \(lines)")
        #expect(lines.contains("fresh 1 262"), "sockets without other holders are no longer converted: \(lines)")
    }
}
