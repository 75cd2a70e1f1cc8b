// Python peers of the issue-8 hardening tests (HardeningTests, TunnelFloodTests, SoakTests,
// ConcurrencyTests). A string, like PeerScript.swift, because test targets carry no
// resources; each test writes it to its temporary directory.
let hardeningScript = #"""
#!/usr/bin/env python3
import argparse, hashlib, os, random, resource, selectors, socket, struct, sys, threading, time

def out(*a):
    print(*a, flush=True)

def raise_nofile():
    # Children inherit the test runner's soft limit; 10,000 sockets need the hard one.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET

def blob(n, seed):
    return random.Random(seed).randbytes(n)

def abort(s):
    # SO_LINGER {on, 0}: close() sends RST instead of FIN.
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()

def recv_exact(s, n):
    got = bytearray()
    while len(got) < n:
        b = s.recv(min(65536, n - len(got)))
        if not b:
            break
        got += b
    return bytes(got)

def wait_flag(path, timeout):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True

# --- a server that sends a fixed blob on accept, and a client that checks it -------------

def serve_blob(a):
    l = socket.socket(family(a.bind), socket.SOCK_STREAM)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((a.bind, a.port)); l.listen(128)
    data = blob(a.bytes, "blob")
    def one(c):
        try:
            c.sendall(data); c.shutdown(socket.SHUT_WR)
            c.settimeout(10)
            while c.recv(65536):
                pass
        except OSError:
            pass
        c.close()
    while True:
        c, _ = l.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()

def fetch_blob(a):
    want = blob(a.bytes, "blob")
    try:
        s = socket.create_connection((a.host, a.port), timeout=a.timeout)
    except OSError as e:
        out("got=0 match=no outcome=connect-failed:%s" % type(e).__name__); return
    got, outcome = bytearray(), "eof"
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            got += b
    except ConnectionResetError:
        outcome = "reset"
    except socket.timeout:
        outcome = "timeout"
    s.close()
    match = "yes" if bytes(got) == want else "no"
    out("got=%d match=%s outcome=%s head=%s" % (len(got), match, outcome, bytes(got[:8]).hex()))

# --- idle connections that resume during a descriptor shortage ------------------------------

def idle_hold(a):
    raise_nofile()
    idle = []
    for _ in range(a.idle):
        s = socket.create_connection((a.host, a.port), timeout=10)
        s.sendall(b"hi")
        if recv_exact(s, 2) != b"hi":
            out("idle echo failed"); return
        idle.append(s)
    out("idle ready %d" % len(idle))
    fillers = []
    for _ in range(a.fillers):
        f = socket.socket(family(a.host), socket.SOCK_STREAM)
        f.settimeout(2)
        try:
            f.connect((a.host, a.port)); fillers.append(f)
        except OSError:
            f.close()
    out("fillers %d" % len(fillers))
    if not wait_flag(a.flag, 60):
        out("no go flag"); return
    # All resume at once, both directions in flight together: each needs pipes (or
    # whatever replaces them) while the descriptors are still exhausted.
    ok, errors, lock = [0], [], threading.Lock()
    def resume(i, s):
        try:
            s.settimeout(20)
            for r in range(a.rounds):
                data = blob(a.size, "idle-%d-%d" % (i, r))
                sender = threading.Thread(target=s.sendall, args=(data,), daemon=True)
                sender.start()
                back = recv_exact(s, len(data))
                sender.join()
                if back != data:
                    raise RuntimeError("echo of %d bytes came back as %d bytes%s" % (len(data), len(back), "" if len(back) < len(data) else " (different)"))
            with lock: ok[0] += 1
        except Exception as e:
            with lock: errors.append("%s: %r" % (i, e))
    ts = [threading.Thread(target=resume, args=(i, s)) for i, s in enumerate(idle)]
    for t in ts: t.start()
    for t in ts: t.join()
    ok = ok[0]
    out("resumed ok %d errors %d" % (ok, len(errors)))
    for e in errors[:5]:
        out("error " + e)
    for s in idle + fillers:
        s.close()

# --- header-trickling flood against a tunnel server -----------------------------------------

def flood(a):
    # Like an attacker: every connection the server ends, or resets as soon as it is
    # accepted, is replaced (at most a.rate a second), until the flag file appears.
    raise_nofile()
    sel = selectors.DefaultSelector()
    count = {"connected": 0, "reset": 0, "sent": 0, "ended": 0, "reopened": 0}
    errors = {}
    def open_one():
        s = socket.socket(family(a.host), socket.SOCK_STREAM)
        s.settimeout(1)
        try:
            s.connect((a.host, a.port))
        except ConnectionResetError:
            # Accepted and reset before connect() returned: refused at once.
            count["reset"] += 1; s.close(); return "reset"
        except OSError as e:
            name = type(e).__name__
            errors[name] = errors.get(name, 0) + 1
            s.close(); return "failed"
        count["connected"] += 1
        try:
            s.send(b"\x01"); count["sent"] += 1   # the first byte of a Convert header, then nothing
        except OSError:
            pass
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        return "open"
    owed = 0
    for _ in range(a.n):
        if open_one() == "reset":
            owed += 1
    out("flood connected %d reset-at-once %d sent %d failed %s" % (count["connected"], count["reset"], count["sent"], errors))
    deadline = time.monotonic() + a.hold
    budget, last = 0.0, time.monotonic()
    while not os.path.exists(a.flag) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.05):
            s = key.fileobj
            try:
                s.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                pass
            # Answered (an Error reply), closed or reset: the server let go of it.
            sel.unregister(s); s.close()
            count["ended"] += 1; owed += 1
        now = time.monotonic()
        budget = min(budget + (now - last) * a.rate, a.rate / 10)
        last = now
        while owed and budget >= 1:
            owed -= 1; budget -= 1
            count["reopened"] += 1
            if open_one() == "reset":
                owed += 1
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    out("flood done ended %d reopened %d reset-at-once %d" % (count["ended"], count["reopened"], count["reset"]))

# --- many concurrent connections: a selectors echo server and a holding client --------------

def echo_many(a):
    # Echoes every byte, for thousands of idle connections and a few bulk ones alike: what
    # a connection's peer does not take yet waits in its own buffer, and that connection is
    # not read again until it drains (back-pressure, never a blocking send).
    raise_nofile()
    sel = selectors.DefaultSelector()
    l = socket.socket(family(a.bind), socket.SOCK_STREAM)
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind((a.bind, a.port)); l.listen(4096); l.setblocking(False)
    sel.register(l, selectors.EVENT_READ, None)
    pending = {}
    def drop(c):
        sel.unregister(c); pending.pop(c, None); c.close()
    while True:
        for key, events in sel.select():
            if key.data is None:
                while True:
                    try:
                        c, _ = l.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    c.setblocking(False)
                    sel.register(c, selectors.EVENT_READ, "c")
                continue
            c = key.fileobj
            if c in pending:
                try:
                    n = c.send(pending[c])
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    drop(c); continue
                rest = pending[c][n:]
                if rest:
                    pending[c] = rest
                else:
                    del pending[c]; sel.modify(c, selectors.EVENT_READ, "c")
                continue
            try:
                b = c.recv(65536)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                b = b""
            if not b:
                drop(c); continue
            try:
                n = c.send(b)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                drop(c); continue
            if n < len(b):
                pending[c] = b[n:]; sel.modify(c, selectors.EVENT_WRITE, "c")

def hold_many(a):
    raise_nofile()
    targets = [(h, int(p)) for h, p in (t.rsplit(":", 1) for t in a.targets.split(","))]
    sel = selectors.DefaultSelector()
    socks, pending, failed = [], 0, 0
    # Connect in waves, so neither the relays' accept queues nor ours overflow.
    state = {}
    i = 0
    deadline = time.monotonic() + a.timeout
    while (i < a.n or pending) and time.monotonic() < deadline:
        while i < a.n and pending < a.wave:
            host, port = targets[i % len(targets)]
            s = socket.socket(family(host), socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex((host, port))
            sel.register(s, selectors.EVENT_WRITE, i)
            state[i] = s
            pending += 1; i += 1
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            sel.unregister(s); pending -= 1
            err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                failed += 1; s.close(); del state[key.data]
            else:
                socks.append((key.data, s))
    out("connected %d failed %d" % (len(socks), failed))
    # Each connection echoes its own 16 bytes through the relay, all still open together.
    bad = 0
    for idx, s in socks:
        s.setblocking(True); s.settimeout(20)
        s.sendall(b"%016d" % idx)
    for idx, s in socks:
        try:
            if recv_exact(s, 16) != b"%016d" % idx:
                bad += 1
        except OSError:
            bad += 1
    out("held %d echo-errors %d" % (len(socks), bad))
    wait_flag(a.flag, a.hold)
    for _, s in socks:
        s.close()
    out("closed")

# --- soak: mixed bulk / short / aborted transfers through several relay paths ---------------

def soak_server(a):
    import socketserver
    class H(socketserver.BaseRequestHandler):
        def handle(self):
            s = self.request
            s.settimeout(60)
            try:
                line = b""
                while not line.endswith(b"\n"):
                    b = s.recv(1)
                    if not b:
                        return
                    line += b
                verb, n, seed = line.decode().split()
                n = int(n)
                if verb == "DOWN":
                    s.sendall(blob(n, seed)); s.shutdown(socket.SHUT_WR)
                    while s.recv(65536):
                        pass
                else:  # ECHO: back what arrives, until the client's EOF
                    while True:
                        b = s.recv(65536)
                        if not b:
                            break
                        s.sendall(b)
                    s.shutdown(socket.SHUT_WR)
            except OSError:
                pass
    class S(socketserver.ThreadingTCPServer):
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = 512
    servers = [S((a.bind, int(p)), H) for p in a.ports.split(",")]
    for srv in servers[1:]:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    servers[0].serve_forever()

def soak_client(a):
    targets = []
    for t in a.targets.split(","):
        name, hp = t.split("=")
        h, p = hp.rsplit(":", 1)
        targets.append((name, h.strip("[]"), int(p)))
    lock = threading.Lock()
    stats = {}
    failures = []
    examples = {}
    started = time.monotonic()
    xfers = []
    def record(name, kind, outcome, detail=""):
        t = getattr(local, "t0", None)
        with lock:
            if t is not None:
                xfers.append("xfer %s %s %s %.3f %.3f" % (name, kind, outcome, t, time.monotonic()))
            key = "%s/%s/%s" % (name, kind, outcome)
            stats[key] = stats.get(key, 0) + 1
            if outcome in ("truncated", "corrupt", "stalled"):
                failures.append("%s %s %s %s" % (name, kind, outcome, detail))
            elif outcome in ("refused", "reset") and len(examples.setdefault(key, [])) < 3:
                examples[key].append("t=%.1f %s" % (time.monotonic() - started, detail))
    local = threading.local()
    deadline = time.monotonic() + a.seconds
    def transfer(name, host, port, kind, seed):
        local.t0 = time.monotonic()  # CLOCK_MONOTONIC, as the test's own clock
        try:
            s = socket.create_connection((host, port), timeout=10)
        except OSError as e:
            record(name, kind, "refused", repr(e)); return
        s.settimeout(a.stall)
        try:
            if kind in ("bulk", "abort"):
                n = a.bulk
                s.sendall(b"DOWN %d %s\n" % (n, seed.encode()))
                want = blob(n, seed)
                got = bytearray()
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    got += b
                    if kind == "abort" and len(got) >= n // 3:
                        abort(s); record(name, kind, "aborted"); return
                if bytes(got) == want:
                    record(name, kind, "ok")
                elif len(got) < n and want.startswith(bytes(got)):
                    record(name, kind, "truncated", "%d of %d bytes then a clean EOF" % (len(got), n))
                else:
                    record(name, kind, "corrupt", "%d bytes, want %d" % (len(got), n))
            else:
                n = random.randint(1, 20000)
                data = blob(n, seed)
                s.sendall(b"ECHO %d %s\n" % (n, seed.encode()))
                s.sendall(data)
                s.shutdown(socket.SHUT_WR)
                got = bytearray()
                while True:
                    b = s.recv(65536)
                    if not b:
                        break
                    got += b
                if bytes(got) == data:
                    record(name, kind, "ok")
                elif len(got) < n and data.startswith(bytes(got)):
                    record(name, kind, "truncated", "%d of %d bytes then a clean EOF" % (len(got), n))
                else:
                    record(name, kind, "corrupt", "%d bytes, want %d" % (len(got), n))
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as e:
            record(name, kind, "reset", repr(e))
        except socket.timeout:
            record(name, kind, "stalled", "nothing for %s s" % a.stall)
        except OSError as e:
            record(name, kind, "reset", repr(e))
        finally:
            s.close()
    def worker(w):
        i = 0
        while time.monotonic() < deadline:
            name, host, port = targets[(w + i) % len(targets)]
            kind = "bulk" if i % 4 == 0 else ("abort" if i % 7 == 3 else "short")
            transfer(name, host, port, kind, "w%d-%d" % (w, i))
            i += 1
    ts = [threading.Thread(target=worker, args=(w,)) for w in range(a.workers)]
    for t in ts: t.start()
    for t in ts: t.join()
    if a.xfers:
        for x in xfers: out(x)
    for k in sorted(stats):
        out("stat %s %d" % (k, stats[k]))
    for k in sorted(examples):
        for e in examples[k]:
            out("example %s %s" % (k, e))
    for f in failures[:20]:
        out("failure " + f)
    out("soak done failures %d" % len(failures))

def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    q = sub.add_parser("serve-blob"); q.set_defaults(fn=serve_blob)
    q.add_argument("--bind", required=True); q.add_argument("--port", type=int, required=True); q.add_argument("--bytes", type=int, required=True)
    q = sub.add_parser("fetch-blob"); q.set_defaults(fn=fetch_blob)
    q.add_argument("--host", required=True); q.add_argument("--port", type=int, required=True); q.add_argument("--bytes", type=int, required=True)
    q.add_argument("--timeout", type=float, default=30)
    q = sub.add_parser("idle-hold"); q.set_defaults(fn=idle_hold)
    q.add_argument("--host", required=True); q.add_argument("--port", type=int, required=True)
    q.add_argument("--idle", type=int, default=8); q.add_argument("--fillers", type=int, default=200)
    q.add_argument("--rounds", type=int, default=1); q.add_argument("--size", type=int, default=2000000)
    q.add_argument("--flag", required=True)
    q = sub.add_parser("flood"); q.set_defaults(fn=flood)
    q.add_argument("--host", required=True); q.add_argument("--port", type=int, required=True)
    q.add_argument("--n", type=int, default=2000); q.add_argument("--hold", type=float, default=60); q.add_argument("--flag", required=True)
    q.add_argument("--rate", type=int, default=300)
    q = sub.add_parser("echo-many"); q.set_defaults(fn=echo_many)
    q.add_argument("--bind", required=True); q.add_argument("--port", type=int, required=True)
    q = sub.add_parser("hold-many"); q.set_defaults(fn=hold_many)
    q.add_argument("--targets", required=True); q.add_argument("--n", type=int, required=True)
    q.add_argument("--wave", type=int, default=256); q.add_argument("--timeout", type=float, default=120)
    q.add_argument("--hold", type=float, default=120); q.add_argument("--flag", required=True)
    q = sub.add_parser("soak-server"); q.set_defaults(fn=soak_server)
    q.add_argument("--bind", default="0.0.0.0"); q.add_argument("--ports", required=True)
    q = sub.add_parser("soak-client"); q.set_defaults(fn=soak_client)
    q.add_argument("--targets", required=True); q.add_argument("--seconds", type=float, required=True)
    q.add_argument("--workers", type=int, default=6); q.add_argument("--bulk", type=int, default=3000000)
    q.add_argument("--stall", type=float, default=30)
    q.add_argument("--xfers", action="store_true", help="one line per transfer: xfer NAME KIND OUTCOME START END (CLOCK_MONOTONIC)")
    a = p.parse_args()
    a.fn(a)

if __name__ == "__main__":
    main()
"""#

/// A seccomp wrapper: sets no_new_privs, makes io_uring_setup fail with EPERM, then execs
/// its arguments. Compiled with `cc` at test time (the relay must survive a ring it cannot
/// create by exiting non-zero, the way a systemd unit's SystemCallFilter would refuse it).
let noRingWrapperSource = #"""
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: noring PROGRAM [ARGS]\n"); return 2; }
    /* Native syscall numbers only: the relay runs as a native binary. */
    struct sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { .len = sizeof(filter) / sizeof(filter[0]), .filter = filter };
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) { perror("PR_SET_NO_NEW_PRIVS"); return 2; }
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) { perror("PR_SET_SECCOMP"); return 2; }
    execvp(argv[1], argv + 1);
    perror("execvp");
    return 2;
}
"""#
