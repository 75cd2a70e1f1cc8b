#!/usr/bin/env python3
# Both ends of the fault matrix (issue 24), Tests/IntegrationTests/FaultMatrixTests.swift: the
# same case is run straight from client to server (the plain TCP control) and through each
# relay mode, and each end reports what it saw: the bytes that came (whether they are a prefix
# of what the other end sent) and how the stream ended.
#
#   serve --listen ADDR/PROTO... --case PORT=CASE...
#       one listener per address and case port (PROTO: tcp or mptcp); prints a JSON line per
#       connection accepted ("accept") and per connection ended ("done", with what it saw)
#   clients PLAN
#       PLAN: a JSON list of {"key", "case", "host", "port", "mptcp"}; runs them all at once and
#       prints one JSON line per connection ({"key", "end", "got", "intact", "ms"})
#
# Ends: EOF (FIN), RESET (RST: ECONNRESET, EPIPE, or ENOTCONN from MPTCP), OPEN (nothing for
# --timeout seconds), REFUSED (the connect was refused), ABORTED (this end reset the connection
# itself, as its case says), CLOSED (this end closed it with bytes unread, as its case says),
# NOCONNECT (the connect timed out), ERROR <errno>.
import argparse, errno, hashlib, json, select, selectors, socket, struct, sys, threading, time

IPPROTO_MPTCP = 262
TIMEOUT = 4.0

# Bytes each case sends: client -> server and server -> client.
SIZES = {
    "clean": (200_000, 200_000),
    "half-close-client": (256_000, 256_000),
    "half-close-before": (20_000, 256_000),
    "half-close-server": (256_000, 256_000),
    "server-first": (100_000, 1_000),
    "client-reset-before": (0, 0),
    "client-reset-during": (1_000, 0),
    "client-reset-at-connect": (1_000, 0),
    "client-reset-after": (64_000, 2),
    "server-refuses": (0, 0),
    "server-reset-during": (1_000, 0),
    "server-reset-after": (1_002, 64_000),
    "server-closes-unread": (2_000, 0),
    "client-closes-unread": (1_000, 64_000),
}

def payload(tag, n):
    # Deterministic and different per direction, so a receiver can tell whether what came is
    # a prefix of what was sent.
    block = hashlib.sha256(tag.encode()).digest() * 1024
    return (block * (n // len(block) + 1))[:n]

def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET

def abort(s):
    # SO_LINGER {on, 0}: close() sends RST instead of FIN.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()

OUT = threading.Lock()

def out(obj):
    # One write per line: threads' lines never interleave.
    with OUT:
        sys.stdout.write(json.dumps(obj) + "\n"); sys.stdout.flush()

def ending(e):
    """How an exception from recv or send ends the stream, as this end sees it."""
    if isinstance(e, socket.timeout): return "OPEN"
    if isinstance(e, (ConnectionResetError, BrokenPipeError)): return "RESET"
    # An MPTCP socket reset by its peer (MP_FASTCLOSE) may answer ENOTCONN instead of
    # ECONNRESET (measured on Linux 6.18: now and then, on an accepted socket reset before the
    # first read). An error, never an EOF: the reset it is.
    if e.errno == errno.ENOTCONN: return "RESET"
    return "ERROR " + errno.errorcode.get(e.errno, repr(e))

class Seen:
    """What one end reads: bytes, compared with what the other end sends, and how it ended."""
    def __init__(self, s, expected):
        self.s, self.expected, self.data, self.end = s, expected, bytearray(), None
        s.settimeout(TIMEOUT)

    def read(self, upto=None):
        """Reads until `upto` bytes came in all (True), or the stream ended (False)."""
        while self.end is None and (upto is None or len(self.data) < upto):
            try:
                b = self.s.recv(65536 if upto is None else min(65536, upto - len(self.data)))
            except OSError as e:
                self.end = ending(e); break
            if not b:
                self.end = "EOF"; break
            self.data += b
        return self.end is None

    def send(self, data, shut=False):
        """Sends (then shuts down the write side); a reset on the way ends what this end saw."""
        try:
            self.s.sendall(data)
            if shut: self.s.shutdown(socket.SHUT_WR)
            return True
        except OSError as e:
            if self.end is None: self.end = ending(e)
            return False

    def report(self):
        return {"end": self.end or "OPEN", "got": len(self.data),
                "intact": bytes(self.data) == self.expected[:len(self.data)]}

# --- server ---------------------------------------------------------------------------

def serve_case(c, case):
    up, down = SIZES[case]
    seen = Seen(c, payload("c2s-" + case, up))
    if case == "clean":
        sender = threading.Thread(target=seen.send, args=(payload("s2c-" + case, down), True))
        sender.start(); seen.read(); sender.join()
    elif case in ("half-close-client", "half-close-before"):
        # The other direction stays open after the client's FIN: the answer comes only then.
        seen.read()
        if seen.end == "EOF": seen.send(payload("s2c-" + case, down))
    elif case == "half-close-server":
        if seen.send(payload("s2c-" + case, down), shut=True): seen.read()
    elif case == "server-first":
        if seen.send(payload("s2c-" + case, down)): seen.read()
    elif case in ("client-reset-before", "client-reset-during", "client-reset-at-connect"):
        seen.read()
    elif case == "client-reset-after":
        if seen.read(up) and seen.send(payload("s2c-" + case, down)): seen.read()
    elif case == "server-reset-during":
        abort(c)
        return {"end": "ABORTED", "got": 0, "intact": True}
    elif case == "server-reset-after":
        if seen.read(1_000) and seen.send(payload("s2c-" + case, down)) and seen.read(up):
            abort(c)
            return {"end": "ABORTED", "got": len(seen.data), "intact": True}
    elif case == "server-closes-unread":
        # A plain close() with bytes still unread: TCP answers with RST, not FIN.
        if seen.read(1_000):
            time.sleep(0.3); c.close()
            return {"end": "CLOSED", "got": len(seen.data), "intact": True}
    elif case == "client-closes-unread":
        if seen.read(up) and seen.send(payload("s2c-" + case, down)): seen.read()
    c.close()
    return seen.report()

def serve_one(c, case, local, port):
    t0 = time.monotonic()
    try:
        r = serve_case(c, case)
    except OSError as e:
        r = {"end": ending(e), "got": 0, "intact": False}
    out(dict(event="done", local=local, port=port, ms=int((time.monotonic() - t0) * 1000), **r))

def serve(a):
    cases = {int(p): c for p, c in (x.split("=") for x in a.case)}
    sel = selectors.DefaultSelector()
    for spec in a.listen:
        addr, proto = spec.rsplit("/", 1)
        for port, case in cases.items():
            s = socket.socket(family(addr), socket.SOCK_STREAM, IPPROTO_MPTCP if proto == "mptcp" else 0)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((addr, port)); s.listen(64)
            sel.register(s, selectors.EVENT_READ, (addr, port, case))
    print("listening", flush=True)
    while True:
        for key, _ in sel.select():
            addr, port, case = key.data
            c, _ = key.fileobj.accept()
            out({"event": "accept", "local": addr, "port": port})
            threading.Thread(target=serve_one, args=(c, case, addr, port), daemon=True).start()

# --- clients --------------------------------------------------------------------------

def client_one(case, host, port, mptcp):
    up, down = SIZES[case]
    s = socket.socket(family(host), socket.SOCK_STREAM, IPPROTO_MPTCP if mptcp else 0)
    if case == "client-reset-before":
        # The upstream's first SYN is dropped (the connect completes after ~1 s): reset well
        # before that, then stay long enough for a relay's late upstream connect to show.
        # "connected": whether the connect completed before the reset (a relay's accept, not
        # plain TCP's held one).
        s.setblocking(False)
        s.connect_ex((host, port))
        t = time.monotonic()
        _, writable, _ = select.select([], [s], [], 0.3)
        connected = bool(writable) and s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
        time.sleep(max(0, 0.3 - (time.monotonic() - t))); abort(s); time.sleep(2.5)
        return {"end": "ABORTED", "got": 0, "intact": True, "connected": connected}
    s.settimeout(TIMEOUT)
    try:
        s.connect((host, port))
    except ConnectionRefusedError:
        return {"end": "REFUSED", "got": 0, "intact": True}
    except ConnectionResetError:
        return {"end": "RESET", "got": 0, "intact": True}
    except socket.timeout:
        return {"end": "NOCONNECT", "got": 0, "intact": True}
    seen = Seen(s, payload("s2c-" + case, down))
    sent = payload("c2s-" + case, up)
    if case == "clean":
        sender = threading.Thread(target=seen.send, args=(sent, True))
        sender.start(); seen.read(); sender.join()
    elif case in ("half-close-client", "half-close-before"):
        if seen.send(sent, shut=True): seen.read()
    elif case == "half-close-server":
        seen.read()
        if seen.end == "EOF": seen.send(sent)
    elif case == "server-first":
        # Nothing is sent before the server's banner came.
        if seen.read(down) and seen.send(sent, shut=True): seen.read()
    elif case == "client-reset-during":
        # The upstream's first SYN is dropped: a relay still waits for its SYN-ACK when the
        # request and then the reset come; then stay long enough for its late connect to show.
        seen.send(sent); time.sleep(0.3); abort(s); time.sleep(2.5)
        return {"end": "ABORTED", "got": 0, "intact": True}
    elif case == "client-reset-at-connect":
        # The reset follows the request at once: it meets a relay's upstream connect in flight
        # or just completed.
        seen.send(sent); abort(s)
        return {"end": "ABORTED", "got": 0, "intact": True}
    elif case == "client-reset-after":
        if seen.send(sent) and seen.read(down):
            abort(s)
            return {"end": "ABORTED", "got": len(seen.data), "intact": True}
    elif case == "server-refuses":
        seen.read()
    elif case == "server-reset-during":
        seen.send(sent); seen.read()
    elif case == "server-reset-after":
        if seen.send(sent[:1_000]) and seen.read(down) and seen.send(sent[1_000:]): seen.read()
    elif case == "server-closes-unread":
        if seen.send(sent): seen.read()
    elif case == "client-closes-unread":
        # Part of the answer is read, the rest left unread at close(): TCP sends RST.
        if seen.send(sent) and seen.read(1_000):
            time.sleep(0.3); s.close()
            return {"end": "CLOSED", "got": len(seen.data), "intact": True}
    r = seen.report()
    s.close()
    return r

def clients(a):
    plan = json.load(open(a.plan))
    t0 = time.monotonic()
    def run(p):
        try:
            r = client_one(p["case"], p["host"], p["port"], p.get("mptcp", False))
        except OSError as e:
            r = {"end": ending(e), "got": 0, "intact": False}
        out(dict(key=p["key"], ms=int((time.monotonic() - t0) * 1000), **r))
    ts = [threading.Thread(target=run, args=(p,)) for p in plan]
    for t in ts: t.start()
    for t in ts: t.join()

def main():
    global TIMEOUT
    p = argparse.ArgumentParser()
    p.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds of silence that count as OPEN")
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("serve"); q.set_defaults(fn=serve)
    q.add_argument("--listen", action="append", required=True); q.add_argument("--case", action="append", required=True)
    q = sub.add_parser("clients"); q.set_defaults(fn=clients)
    q.add_argument("plan")
    a = p.parse_args()
    TIMEOUT = a.timeout
    a.fn(a)

if __name__ == "__main__":
    main()
