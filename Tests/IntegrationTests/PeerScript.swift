// The Python peers the integration tests run on the LAN and server sides. Kept as a string
// because test targets here carry no resources; written to each test's temporary directory.
let peerScript = #"""
#!/usr/bin/env python3
"""Test peers for the mptcp-relay integration tests (one subcommand per role)."""
import argparse, hashlib, http.server, os, socket, socketserver, struct, sys, threading, time

def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET

def listen(host, port):
    s = socket.socket(family(host), socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((host, port))
    s.listen(128)
    return s

def connect(host, port, timeout=30):
    s = socket.create_connection((host, port), timeout=timeout)
    return s

def read_all(s):
    h, n = hashlib.sha256(), 0
    while True:
        b = s.recv(65536)
        if not b:
            return n, h.hexdigest()
        h.update(b); n += len(b)

def payload(n):
    # Deterministic, not trivially compressible, cheap to make.
    block = hashlib.sha256(b"mptcp-relay").digest() * 2048
    return (block * (n // len(block) + 1))[:n]

def abort(s):
    # SO_LINGER {on, 0}: close() sends RST instead of FIN.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()

def out(*a):
    print(*a, flush=True)

class UploadHandler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_PUT(self):
        length = int(self.headers.get("Content-Length", "-1"))
        if length < 0:
            self.send_error(411); return
        path = os.path.join(self.directory, os.path.basename(self.path))
        left = length
        with open(path + ".part", "wb") as f:
            while left > 0:
                b = self.rfile.read(min(left, 1 << 20))
                if not b: break
                f.write(b); left -= len(b)
        if left:
            self.send_error(400, "short body"); return
        os.rename(path + ".part", path)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, fmt, *args):
        sys.stderr.write("http: " + (fmt % args) + "\n")

def http_server(a):
    class Server(http.server.ThreadingHTTPServer):
        address_family = family(a.bind)
        allow_reuse_address = True
    handler = lambda *x, **k: UploadHandler(*x, directory=a.dir, **k)
    Server((a.bind, a.port), handler).serve_forever()

def echo_server(a):
    class H(socketserver.BaseRequestHandler):
        def handle(self):
            while True:
                b = self.request.recv(65536)
                if not b: break
                self.request.sendall(b)
    class S(socketserver.ThreadingTCPServer):
        address_family = family(a.bind)
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = 256
    S((a.bind, a.port), H).serve_forever()

# Half-close, client first: the client sends and shuts down its write side; the server
# reads to EOF and only then answers on the still-open other direction.
def halfclose_server(a):
    l = listen(a.bind, a.port)
    c, _ = l.accept()
    if a.first == "client":
        n, h = read_all(c)
        c.sendall(f"got {n} {h}\n".encode())
        c.close()
        out(f"server received {n} {h}")
    else:
        data = payload(a.bytes)
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        got = b""
        while True:
            b = c.recv(65536)
            if not b: break
            got += b
        out(f"server sent {len(data)} {hashlib.sha256(data).hexdigest()} then got: {got.decode()}")
        c.close()

def halfclose_client(a):
    s = connect(a.host, a.port)
    if a.first == "client":
        data = payload(a.bytes)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while True:
            b = s.recv(65536)
            if not b: break
            reply += b
        out(f"client sent {len(data)} {hashlib.sha256(data).hexdigest()}")
        out(f"client reply {reply.decode().strip()}")
    else:
        n, h = read_all(s)
        s.sendall(f"thanks {n} {h}".encode())
        s.close()
        out(f"client received {n} {h}")

# Reset: the aborting side closes with RST; the other side reports what it saw.
def rst_server(a):
    l = listen(a.bind, a.port)
    c, _ = l.accept()
    if a.abort:
        c.recv(5)
        time.sleep(0.2)
        abort(c)
        out("server aborted")
    else:
        out("server saw " + observe_close(c, a.timeout))

def observe_close(s, timeout):
    s.settimeout(timeout)
    try:
        while True:
            b = s.recv(65536)
            if not b: return "EOF"
    except ConnectionResetError:
        return "RESET"
    except socket.timeout:
        return "OPEN"

def rst_client(a):
    s = connect(a.host, a.port)
    s.sendall(b"hello")
    if a.abort:
        time.sleep(0.5)
        abort(s)
        out("client aborted")
    else:
        out("client saw " + observe_close(s, a.timeout))

# Connect and wait for the relay to close us (e.g. upstream connect failed).
def probe_close(a):
    t0 = time.monotonic()
    try:
        s = connect(a.host, a.port)
    except ConnectionRefusedError:
        out(f"REFUSED {time.monotonic() - t0:.2f}"); return
    except ConnectionResetError:
        # The relay accepted and reset before connect() returned: closed, promptly.
        out(f"RESET {time.monotonic() - t0:.2f}"); return
    r = observe_close(s, a.timeout)
    out(f"{r} {time.monotonic() - t0:.2f}")

# Show the path works (one echo round trip), then wait for the relay to close the idle connection.
def idle_probe(a):
    s = connect(a.host, a.port)
    s.sendall(b"ping")
    if s.recv(4) != b"ping":
        out("NOECHO"); return
    t0 = time.monotonic()
    out(f"{observe_close(s, a.timeout)} {time.monotonic() - t0:.2f}")

def many_clients(a):
    errors, done, lock = [], [0], threading.Lock()
    msg = payload(256)
    def worker(count):
        for _ in range(count):
            try:
                s = connect(a.host, a.port, timeout=20)
                s.sendall(msg)
                s.shutdown(socket.SHUT_WR)
                got = b""
                while True:
                    b = s.recv(65536)
                    if not b: break
                    got += b
                s.close()
                with lock:
                    if got == msg: done[0] += 1
                    else: errors.append(f"echo mismatch ({len(got)} bytes)")
            except OSError as e:
                with lock: errors.append(repr(e))
    per = [a.n // a.parallel + (1 if i < a.n % a.parallel else 0) for i in range(a.parallel)]
    ts = [threading.Thread(target=worker, args=(c,)) for c in per]
    for t in ts: t.start()
    for t in ts: t.join()
    out(f"ok {done[0]} errors {len(errors)}")
    for e in errors[:5]: out("error " + e)

# Bulk echo connections that make the relay hold pipes, then end half of them with RST:
# each sends --bytes and reads its echo; once every connection has read a quarter of it,
# they stop reading ("holding N": both directions are stalled with bytes in flight) until
# --flag exists; then the even ones read the rest (checked by SHA-256), the odd ones abort.
def bulk_clients(a):
    msg = payload(a.bytes)
    want = hashlib.sha256(msg).hexdigest()
    lock, held, res = threading.Lock(), [0], {"ok": 0, "aborted": 0, "errors": []}
    def one(i):
        try:
            s = connect(a.host, a.port, timeout=60)
            def send():
                try:
                    s.sendall(msg); s.shutdown(socket.SHUT_WR)
                except OSError:
                    pass  # the abort below closed it mid-upload: that is the point
            t = threading.Thread(target=send, daemon=True); t.start()
            h, got = hashlib.sha256(), 0
            while got < a.bytes // 4:
                b = s.recv(65536)
                if not b: raise OSError(f"EOF after {got} bytes")
                h.update(b); got += len(b)
            with lock: held[0] += 1
            while not os.path.exists(a.flag): time.sleep(0.05)
            if i % 2:
                abort(s)
                with lock: res["aborted"] += 1
                return
            while True:
                b = s.recv(65536)
                if not b: break
                h.update(b); got += len(b)
            t.join(30); s.close()
            with lock:
                if got == a.bytes and h.hexdigest() == want: res["ok"] += 1
                else: res["errors"].append(f"echo of {got} bytes, sha {'ok' if h.hexdigest() == want else 'differs'}")
        except OSError as e:
            with lock: res["errors"].append(f"connection {i}: {e!r}")
    ts = [threading.Thread(target=one, args=(i,)) for i in range(a.n)]
    for t in ts: t.start()
    announced = False
    while any(t.is_alive() for t in ts):
        with lock:
            if not announced and held[0] + len(res["errors"]) == a.n:
                out(f"holding {held[0]}"); announced = True
        time.sleep(0.05)
    out(f"bulk ok {res['ok']} aborted {res['aborted']} errors {len(res['errors'])}")
    for e in res["errors"][:5]: out("error " + e)

def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    def server(name, fn):
        q = sub.add_parser(name); q.set_defaults(fn=fn)
        q.add_argument("--bind", default="0.0.0.0"); q.add_argument("--port", type=int, required=True)
        return q
    def client(name, fn):
        q = sub.add_parser(name); q.set_defaults(fn=fn)
        q.add_argument("--host", required=True); q.add_argument("--port", type=int, required=True)
        return q
    server("http-server", http_server).add_argument("--dir", required=True)
    server("echo-server", echo_server)
    for q in (server("halfclose-server", halfclose_server), client("halfclose-client", halfclose_client)):
        q.add_argument("--first", choices=["client", "server"], required=True)
        q.add_argument("--bytes", type=int, default=1 << 20)
    for q in (server("rst-server", rst_server), client("rst-client", rst_client)):
        q.add_argument("--abort", action="store_true")
        q.add_argument("--timeout", type=float, default=10)
    client("probe-close", probe_close).add_argument("--timeout", type=float, default=10)
    client("idle-probe", idle_probe).add_argument("--timeout", type=float, default=10)
    q = client("many-clients", many_clients)
    q.add_argument("--n", type=int, default=1000); q.add_argument("--parallel", type=int, default=8)
    q = client("bulk-clients", bulk_clients)
    q.add_argument("--n", type=int, default=8); q.add_argument("--bytes", type=int, default=1 << 20)
    q.add_argument("--flag", required=True)
    a = p.parse_args()
    a.fn(a)

if __name__ == "__main__":
    main()
"""#
