#!/usr/bin/env python3
"""UDP load and delay probe for the UDP tests and Benchmarks/udp.sh (no dependencies).

  udp-probe.py sink --host H --port P [--echo] [--verbose]
                                                  receive; --echo answers each datagram
  udp-probe.py send --host H --port P --mbit R --size B --seconds S
  udp-probe.py pingpong --host H --port P --count N --interval MS

`send` writes datagrams numbered and stamped with CLOCK_MONOTONIC (network namespaces share
the clock, so the sink computes one-way delays); at the end it asks the sink for its summary
and prints it as one JSON line: sent, received, lost %, delivered Mbit/s, one-way delay
p50/p99/max in ms, and the longest gap between arrivals in ms. `pingpong` prints RTT p50/p99.
"""
import argparse, json, socket, struct, sys, time

HEADER = struct.Struct("!QQ")  # sequence, send time (ns)
REPORT = b"REPORT?"


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def percentile(values, p):
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def sink(a):
    s = socket.socket(family(a.host), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((a.host, a.port))
    print("listening", flush=True)
    delays, seen, last_arrival, gap, first, last, nbytes = [], set(), None, 0, None, None, 0
    while True:
        data, peer = s.recvfrom(65536)
        now = time.monotonic_ns()
        if data == REPORT:
            span = (last - first) / 1e9 if first is not None and last and last > first else 0
            summary = {"received": len(seen), "bytes": nbytes,
                       "mbit": round(nbytes * 8 / span / 1e6, 1) if span else 0,
                       "delay_p50_ms": round(percentile(delays, 50) / 1e6, 2) if delays else None,
                       "delay_p99_ms": round(percentile(delays, 99) / 1e6, 2) if delays else None,
                       "delay_max_ms": round(max(delays) / 1e6, 2) if delays else None,
                       "longest_gap_ms": round(gap / 1e6, 1)}
            s.sendto(json.dumps(summary).encode(), peer)
            delays, seen, last_arrival, gap, first, last, nbytes = [], set(), None, 0, None, None, 0
            continue
        if a.verbose:
            print("datagram from %s:%d, %d bytes" % (peer[0], peer[1], len(data)), flush=True)
        if a.echo:
            s.sendto(data, peer)
            continue
        if len(data) < HEADER.size:
            continue
        seq, sent = HEADER.unpack_from(data)
        seen.add(seq)
        nbytes += len(data)
        delays.append(now - sent)
        if last_arrival is not None:
            gap = max(gap, now - last_arrival)
        last_arrival = now
        first = now if first is None else first
        last = now


def send(a):
    s = socket.socket(family(a.host), socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    s.connect((a.host, a.port))
    interval = a.size * 8 / (a.mbit * 1e6)  # seconds per datagram
    pad = b"\0" * (a.size - HEADER.size)
    start = time.monotonic()
    seq = 0
    while True:
        now = time.monotonic()
        if now - start >= a.seconds:
            break
        due = int((now - start) / interval) + 1
        while seq < due:
            try:
                s.send(HEADER.pack(seq, time.monotonic_ns()) + pad)
            except (BlockingIOError, ConnectionRefusedError):
                pass
            seq += 1
        time.sleep(0.0005)
    time.sleep(0.5)  # let the last datagrams land
    # The report travels in the same flow (a new one would need a new tunnel connection,
    # which a test may have just taken the route away from).
    s.settimeout(3)
    summary = None
    for _ in range(3):
        s.send(REPORT)
        try:
            while summary is None:
                d = s.recv(65536)
                if d.startswith(b"{"):
                    summary = json.loads(d)
            break
        except socket.timeout:
            pass
    if summary is None:
        print(json.dumps({"sent": seq, "error": "no report from the sink"}))
        return 1
    summary["sent"] = seq
    summary["offered_mbit"] = a.mbit
    summary["lost_pct"] = round(100 * (seq - summary["received"]) / seq, 2) if seq else 0
    print(json.dumps(summary))
    return 0


def pingpong(a):
    s = socket.socket(family(a.host), socket.SOCK_DGRAM)
    if a.source:
        s.bind((a.source, 0))
    s.connect((a.host, a.port))
    s.settimeout(1)
    rtts, lost = [], 0
    for i in range(a.count):
        t = time.monotonic_ns()
        s.send(struct.pack("!Q", i) + b"\0" * 56)
        try:
            while True:
                d = s.recv(128)
                if struct.unpack_from("!Q", d)[0] == i:
                    break
            rtts.append(time.monotonic_ns() - t)
        except socket.timeout:
            lost += 1
        time.sleep(a.interval / 1000)
    print(json.dumps({"count": a.count, "lost": lost,
                      "rtt_p50_ms": round(percentile(rtts, 50) / 1e6, 3) if rtts else None,
                      "rtt_p99_ms": round(percentile(rtts, 99) / 1e6, 3) if rtts else None}))
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["sink", "send", "pingpong"])
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--echo", action="store_true")
    p.add_argument("--verbose", action="store_true", help="sink: a line per datagram")
    p.add_argument("--source", help="pingpong: bind to this address first")
    p.add_argument("--mbit", type=float, default=10)
    p.add_argument("--size", type=int, default=1200)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--interval", type=float, default=10)
    a = p.parse_args()
    sys.exit({"sink": sink, "send": send, "pingpong": pingpong}[a.mode](a) or 0)


if __name__ == "__main__":
    main()
