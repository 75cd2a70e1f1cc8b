import Foundation
import Testing

/// A statically linked program loads no preload: `mptcpize run` supervises it with seccomp user
/// notification instead, creating its TCP sockets as MPTCP (issue 9), and falls back to the
/// program's own socket() where MPTCP is refused.
@Suite(.serialized) struct SupervisorTests {
    static let port = 8200

    /// Connects, reads everything into OUT, prints "protocol P cloexec C".
    static let staticClient = #"""
        #include <arpa/inet.h>
        #include <fcntl.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <sys/socket.h>
        #include <unistd.h>

        int main(int argc, char **argv) {
            if (argc != 4) return 2;
            int s = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
            if (s < 0) { perror("socket"); return 1; }
            struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(atoi(argv[2])) };
            inet_pton(AF_INET, argv[1], &a.sin_addr);
            if (connect(s, (struct sockaddr *)&a, sizeof a) != 0) { perror("connect"); return 1; }
            FILE *out = fopen(argv[3], "wb");
            if (!out) { perror("fopen"); return 1; }
            char buf[65536];
            ssize_t n;
            while ((n = read(s, buf, sizeof buf)) > 0) fwrite(buf, 1, (size_t)n, out);
            fclose(out);
            int proto = -1;
            socklen_t len = sizeof proto;
            getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &proto, &len);
            printf("protocol %d cloexec %d\n", proto, (fcntl(s, F_GETFD) & FD_CLOEXEC) != 0);
            return 0;
        }
        """#

    @Test(arguments: [true, false])
    func staticClientUnderSupervisor(_ mptcpEnabled: Bool) throws {
        try Build.require()
        let dir = try ScratchDir()
        defer { dir.remove() }
        let source = try dir.write("static_client.c", Self.staticClient)
        let client = dir.file("static_client")
        try runChecked(["gcc", "-static", "-O2", "-o", client, source])
        #expect(try runChecked(["file", client]).stdout.contains("statically linked"))
        let blob = dir.file("blob")
        try runChecked(["sh", "-c", "head -c 1048576 /dev/urandom > '\(blob)'"])
        let serverScript = try dir.write("blob_server.py", SocketOptionScripts.blobServer)

        try NetnsPair.with(mptcpEnabled: mptcpEnabled) { pair in
            let server = try Child(NetnsPair.exec(pair.server, [Build.cli, "run", "/usr/bin/python3", serverScript,
                                                                NetnsPair.serverAddress, "\(Self.port)", blob]))
            defer { _ = server.stop() }
            try NetnsPair.waitForListener(pair.server, port: Self.port)
            let out = dir.file("received")
            let fetched = try run(NetnsPair.exec(pair.client, [Build.cli, "run", "-d", client, NetnsPair.serverAddress, "\(Self.port)", out]))
            let counters = try NetnsPair.mptcpCounters(pair.server)
            #expect(fetched.status == 0, "\(fetched.summary)")
            #expect(try sha256(ofFile: out) == sha256(ofFile: blob), "body differs")
            #expect(fetched.stderr.contains("supervisor mode (static executable)"), "\(fetched.stderr)")
            if mptcpEnabled {
                #expect(fetched.stdout == "protocol 262 cloexec 1\n", "\(fetched.stdout)")
                #expect(counters["MPCapableACKRX", default: 0] >= 1, "server saw no MPTCP connection: \(counters)")
            } else {
                #expect(fetched.stdout == "protocol 6 cloexec 1\n", "\(fetched.stdout)")
                #expect(fetched.stderr.contains("fell back to TCP"), "\(fetched.stderr)")
                #expect(counters["MPCapableSYNRX", default: 0] == 0, "\(counters)")
            }
        }
    }

    /// --seccomp on a dynamic program: no preload involved, UDP and Unix sockets untouched, and
    /// the exit status passes through.
    @Test func seccompOnRequest() throws {
        try Build.require()
        let outcome = try NetnsPair.with { pair in
            try run(NetnsPair.exec(pair.client, ["env", "-u", "LD_PRELOAD", Build.cli, "run", "--seccomp", "/usr/bin/python3", "-c", """
                import os, socket, sys
                p = lambda s: s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)
                print(p(socket.socket()), p(socket.socket(socket.AF_INET6, socket.SOCK_STREAM)),
                      p(socket.socket(socket.AF_INET, socket.SOCK_DGRAM)), p(socket.socket(socket.AF_UNIX)),
                      os.environ.get("LD_PRELOAD", "none"))
                sys.exit(7)
                """]))
        }
        #expect(outcome.status == 7, "\(outcome.summary)")
        #expect(outcome.stdout == "262 262 17 0 none\n", "\(outcome.stdout) \(outcome.stderr)")
    }

    /// The option policy holds under the supervisor too: a hint on an MPTCP socket is reported
    /// as set, a needs-TCP option turns the fresh socket into TCP (ADDFD onto the same number)
    /// and is applied for real.
    static let optionClient = #"""
        #include <netinet/in.h>
        #include <netinet/tcp.h>
        #include <stdio.h>
        #include <sys/socket.h>

        static int proto(int s) { int p = -1; socklen_t l = sizeof p; getsockopt(s, SOL_SOCKET, SO_PROTOCOL, &p, &l); return p; }

        int main(void) {
            int s = socket(AF_INET, SOCK_STREAM, 0), v = 5000, one = 1, z = 0;
            int r = setsockopt(s, IPPROTO_TCP, TCP_USER_TIMEOUT, &v, sizeof v);
            printf("user_timeout %d %d\n", r, proto(s));
            r = setsockopt(s, SOL_SOCKET, SO_ZEROCOPY, &one, sizeof one);
            socklen_t l = sizeof z;
            getsockopt(s, SOL_SOCKET, SO_ZEROCOPY, &z, &l);
            printf("zerocopy %d %d %d\n", r, proto(s), z);
            return 0;
        }
        """#

    @Test func optionPolicyUnderSupervisor() throws {
        try Build.require()
        let dir = try ScratchDir()
        defer { dir.remove() }
        let source = try dir.write("option_client.c", Self.optionClient)
        let client = dir.file("option_client")
        try runChecked(["gcc", "-static", "-O2", "-o", client, source])
        let outcome = try NetnsPair.with { pair in try run(NetnsPair.exec(pair.client, [Build.cli, "run", "-d", client])) }
        #expect(outcome.status == 0, "\(outcome.summary)")
        #expect(outcome.stdout == "user_timeout 0 262\nzerocopy 0 6 1\n", "\(outcome.stdout) \(outcome.stderr)")
        #expect(outcome.stderr.contains("needs TCP: the socket is plain TCP again"), "\(outcome.stderr)")
    }
}
