/// Small Python programs the tests run under the shim (Debian's python3, unmodified).
enum Scripts {
    /// Listens and connects on ::1 for two ports, then does the same in a forked child and in
    /// an exec'd child. One line per socket: WHERE KIND PORT PROTOCOL ATTRIBUTES.
    /// Options set before connect()/listen() are printed back, so a lazy swap that lost them shows.
    static let probe = #"""
        import os, socket, subprocess, sys

        P1, P2 = int(sys.argv[1]), int(sys.argv[2])
        WHERE = sys.argv[3] if len(sys.argv) > 3 else "parent"

        def proto(s):
            return s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL)

        def report(where):
            for port in (P1, P2):
                l = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                l.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                l.bind(("::1", port))
                l.listen(8)
                c = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                c.settimeout(5)  # Python then connects non-blocking: O_NONBLOCK must survive a swap
                c.connect(("::1", port))
                a, _ = l.accept()
                c.sendall(b"ping")
                assert a.recv(4) == b"ping"
                print(where, "listen", port, proto(l),
                      "v6only=%d" % l.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY),
                      "reuseaddr=%d" % l.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR), flush=True)
                print(where, "connect", port, proto(c),
                      "nodelay=%d" % (c.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0),
                      "nonblock=%d" % (not os.get_blocking(c.fileno())), flush=True)
                for s in (a, c, l):
                    s.close()

        report(WHERE)
        if WHERE == "parent":
            pid = os.fork()
            if pid == 0:
                report("fork")
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            assert status == 0, status
            subprocess.run([sys.executable, __file__, str(P1), str(P2), "exec"], check=True)
        """#

    /// THREADS threads released together by a barrier, each creating ROUNDS sockets; every other
    /// one connects to a local listener and reads a byte. Prints the protocol counts per kind.
    static let stress = #"""
        import socket, sys, threading

        THREADS, ROUNDS = int(sys.argv[1]), int(sys.argv[2])
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(4096)
        port = srv.getsockname()[1]

        def serve():
            while True:
                a, _ = srv.accept()
                a.sendall(b"x")
                a.close()

        threading.Thread(target=serve, daemon=True).start()
        barrier = threading.Barrier(THREADS)
        lock = threading.Lock()
        counts, errors = {}, []

        def work():
            barrier.wait()
            for i in range(ROUNDS):
                try:
                    s = socket.socket()
                    kind = "connected" if i % 2 == 0 else "unconnected"
                    if kind == "connected":
                        s.connect(("127.0.0.1", port))
                        assert s.recv(1) == b"x"
                    key = (kind, s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL))
                    s.close()
                    with lock:
                        counts[key] = counts.get(key, 0) + 1
                except Exception as e:
                    with lock:
                        errors.append(repr(e))

        threads = [threading.Thread(target=work) for _ in range(THREADS)]
        for t in threads: t.start()
        for t in threads: t.join()
        for (kind, proto), n in sorted(counts.items()):
            print(kind, proto, n)
        for e in errors[:5]:
            print("error", e)
        sys.exit(1 if errors else 0)
        """#
}
