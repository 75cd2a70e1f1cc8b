#!/usr/bin/env python3
# UDP peers for routed-traffic checks (issue 22): traffic the gateway routes and NATs, not the
# relay's. Used by Tests/IntegrationTests/RoutedFailoverTests.swift and scripts/kernel-checks.sh.
#   echo PORT ADDR...                 UDP echo bound to each address
#   once DST PORT TIMEOUT             one exchange from a new socket; exit 0 when answered
#   flow DST PORT SECONDS STOPFILE    a datagram every 50 ms; JSON with the gaps between answers
#   lookups SERVER DOMAIN SECONDS STOPFILE
#                                     a DNS lookup of a new name every 250 ms; JSON with the gaps
import json, selectors, socket, sys, time

def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET

def echo(port, addrs):
    # Bound to each address, so a reply leaves from the address the client asked.
    sel = selectors.DefaultSelector()
    for a in addrs:
        s = socket.socket(family(a), socket.SOCK_DGRAM)
        s.bind((a, port)); sel.register(s, selectors.EVENT_READ)
    print("listening", flush=True)
    while True:
        for key, _ in sel.select():
            data, addr = key.fileobj.recvfrom(2048)
            key.fileobj.sendto(data, addr)

def once(dst, port, timeout):
    # One exchange from a fresh socket (a new flow): exit 0 when answered in time.
    s = socket.socket(family(dst), socket.SOCK_DGRAM); s.settimeout(timeout)
    s.connect((dst, port)); s.send(b"ping")
    try:
        ok = s.recv(100) == b"ping"
    except OSError:
        ok = False
    print("answered" if ok else "no answer"); sys.exit(0 if ok else 1)

def flow(dst, port, seconds, stop_file):
    # One flow (one source port): a datagram every 50 ms, echoed. Prints a JSON summary with
    # the longest gap between answers; ends after `seconds` or when stop_file exists.
    s = socket.socket(family(dst), socket.SOCK_DGRAM); s.setblocking(False)
    s.connect((dst, port))
    start = time.time(); last = None; gaps = []; sent = got = 0
    next_send = start
    import os
    while time.time() - start < seconds and not os.path.exists(stop_file):
        now = time.time()
        if now >= next_send:
            try:
                s.send(b"%d" % sent)
            except OSError:
                pass
            sent += 1; next_send += 0.05
        try:
            s.recv(100); now = time.time()
            if last is not None and now - last > 0.3:
                gaps.append([round(last - start, 2), round(now - last, 2)])
            last = now; got += 1
        except (BlockingIOError, OSError):
            time.sleep(0.005)
    end = time.time()
    if last is None or end - last > 0.3:
        gaps.append([round((last or start) - start, 2), round(end - (last or start), 2)])
    print(json.dumps({"sent": sent, "answered": got, "gaps": gaps, "duration": end - start,
                      "last_answer": (last - start) if last else -1}), flush=True)

def lookups(server, domain, seconds, stop_file):
    # A name lookup (a new name each time: no cache helps) every 250 ms, 1 s to answer, to the
    # resolver at `server`; prints JSON with the gaps between answered lookups.
    import os, random, struct
    start = time.time(); last = None; gaps = []; asked = answered = 0
    while time.time() - start < seconds and not os.path.exists(stop_file):
        qid = random.randrange(65536); name = "q%d.%s" % (asked, domain); asked += 1
        q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
        q += b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
        s = socket.socket(family(server), socket.SOCK_DGRAM); s.settimeout(1.0)
        t0 = time.time()
        try:
            s.sendto(q, (server, 53))
            r = s.recv(512)
            ok = len(r) >= 12 and struct.unpack(">H", r[:2])[0] == qid and struct.unpack(">H", r[6:8])[0] > 0
        except OSError:
            ok = False
        s.close()
        now = time.time()
        if ok:
            if last is not None and now - last > 0.6:
                gaps.append([round(last - start, 2), round(now - last, 2)])
            last = now; answered += 1
        time.sleep(max(0, 0.25 - (time.time() - t0)))
    end = time.time()
    if last is None or end - last > 0.6:
        gaps.append([round((last or start) - start, 2), round(end - (last or start), 2)])
    print(json.dumps({"sent": asked, "answered": answered, "gaps": gaps, "duration": end - start,
                      "last_answer": (last - start) if last else -1}), flush=True)

cmd = sys.argv[1]
if cmd == "echo": echo(int(sys.argv[2]), sys.argv[3:])
elif cmd == "once": once(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
elif cmd == "flow": flow(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5])
elif cmd == "lookups": lookups(sys.argv[2], sys.argv[3], float(sys.argv[4]), sys.argv[5])
