/// Python peers for the socket option tests (Debian's python3, unmodified).
enum SocketOptionScripts {
    /// blob_server.py ADDR PORT FILE [MD5PEER MD5KEY]: serves FILE to each connection, then
    /// closes it. With MD5PEER, the listener requires TCP-MD5 (RFC 2385) from that peer with
    /// MD5KEY. Prints "listening PROTOCOL" once ready, and "served PROTOCOL" per connection.
    static let blobServer = #"""
        import socket, struct, sys

        addr, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        data = open(path, "rb").read()

        def md5sig(peer, key):
            sa = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + socket.inet_aton(peer)
            sa = sa.ljust(128, b"\0")
            return sa + struct.pack("=BBHi", 0, 0, len(key), 0) + key.ljust(80, b"\0")

        l = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if len(sys.argv) > 5:
            l.setsockopt(socket.IPPROTO_TCP, 14, md5sig(sys.argv[4], sys.argv[5].encode()))
        l.bind((addr, port))
        l.listen(16)
        print("listening", l.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL), flush=True)
        while True:
            c, _ = l.accept()
            c.sendall(data)
            print("served", c.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL), flush=True)
            c.close()
        """#

    /// tuned_client.py ADDR PORT OUT [MD5KEY]: sets the TCP options gRPC, libpq and friends set
    /// before connecting, reads everything into OUT, and prints the protocol and the options as
    /// getsockopt reports them: "protocol P user_timeout V quickack V syncnt V window_clamp V".
    static let tunedClient = #"""
        import socket, struct, sys

        addr, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if len(sys.argv) > 4:
            key = sys.argv[4].encode()
            sa = (struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + socket.inet_aton(addr)).ljust(128, b"\0")
            s.setsockopt(socket.IPPROTO_TCP, 14, sa + struct.pack("=BBHi", 0, 0, len(key), 0) + key.ljust(80, b"\0"))
        opts = [("user_timeout", socket.TCP_USER_TIMEOUT, 7000), ("quickack", socket.TCP_QUICKACK, 1),
                ("syncnt", socket.TCP_SYNCNT, 4), ("window_clamp", socket.TCP_WINDOW_CLAMP, 262144)]
        for _, opt, value in opts:
            s.setsockopt(socket.IPPROTO_TCP, opt, value)
        s.settimeout(float(sys.argv[5]) if len(sys.argv) > 5 else 20)
        s.connect((addr, port))
        with open(out, "wb") as f:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                f.write(chunk)
        report = ["protocol", str(s.getsockopt(socket.SOL_SOCKET, socket.SO_PROTOCOL))]
        for name, opt, _ in opts:
            report += [name, str(s.getsockopt(socket.IPPROTO_TCP, opt))]
        print(" ".join(report), flush=True)
        """#
}
