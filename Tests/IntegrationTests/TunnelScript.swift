/// A tunnel client that plays by the wire format of docs/tunnel-protocol.md, written apart
/// from the Swift codec so the tests check the server against the document, and able to
/// send every kind of bad header a hostile client would.
let tunnelScript = #"""
import argparse, hashlib, hmac, os, socket, struct, sys, time

CONTEXT = b"mptcp-relay tunnel request v1"

def mapped(host):
    if ":" in host:
        return socket.inet_pton(socket.AF_INET6, host)
    return b"\x00" * 10 + b"\xff\xff" + socket.inet_pton(socket.AF_INET, host)

def request(key, host, port, ts=None, nonce=None):
    ts = int(time.time()) if ts is None else ts
    nonce = os.urandom(16) if nonce is None else nonce
    key_id = hashlib.sha256(key).digest()[:4]
    body = bytes([1, 18, 0, 0, 10, 5]) + struct.pack(">H", port) + mapped(host)
    body += bytes([192, 12, 1, 0]) + key_id + struct.pack(">Q", ts) + nonce
    mac = hmac.new(key, CONTEXT + body, hashlib.sha256).digest()[:16]
    return body + mac

def exchange(server, port, payload, then=b"", linger=1.0):
    s = socket.create_connection((server, port), timeout=5)
    s.sendall(payload + then)
    data = b""
    outcome = "closed"
    s.settimeout(linger + 4)
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            data += d
    except ConnectionResetError:
        outcome = "reset"
    except socket.timeout:
        outcome = "open"
    s.close()
    return data, outcome

def reply_code(data):
    if len(data) >= 8 and data[0] == 1 and data[1] == 2 and data[4] == 30:
        return data[6]
    if len(data) >= 4 and data[0] == 1 and data[1] == 1:
        return "ok"
    return None

def main():
    p = argparse.ArgumentParser()
    p.add_argument("case")
    p.add_argument("--server", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--wrong-key")
    p.add_argument("--dest", required=True)
    p.add_argument("--dest-port", type=int, required=True)
    a = p.parse_args()
    key = bytes.fromhex(open(a.key).read().strip())
    get = b"GET / HTTP/1.0\r\n\r\n"
    if a.case == "good":
        data, outcome = exchange(a.server, a.port, request(key, a.dest, a.dest_port), get)
    elif a.case == "no-key":
        data, outcome = exchange(a.server, a.port, get)
    elif a.case == "wrong-key":
        other = bytes.fromhex(open(a.wrong_key).read().strip())
        data, outcome = exchange(a.server, a.port, request(other, a.dest, a.dest_port), get)
    elif a.case == "replay":
        first = request(key, a.dest, a.dest_port)
        d1, o1 = exchange(a.server, a.port, first, get)
        if reply_code(d1) != "ok":
            print("first use of the header was refused: %r %s" % (d1[:16], o1)); return 3
        data, outcome = exchange(a.server, a.port, first, get)
    elif a.case == "stale":
        data, outcome = exchange(a.server, a.port, request(key, a.dest, a.dest_port, ts=int(time.time()) - 3600), get)
    elif a.case == "tampered":
        r = bytearray(request(key, a.dest, a.dest_port)); r[7] ^= 1   # port changed after signing
        data, outcome = exchange(a.server, a.port, bytes(r), get)
    elif a.case == "truncated":
        data, outcome = exchange(a.server, a.port, request(key, a.dest, a.dest_port)[:30])
    elif a.case == "oversized":
        data, outcome = exchange(a.server, a.port, bytes([1, 255, 0, 0]) + os.urandom(1100))
    elif a.case == "random":
        data, outcome = exchange(a.server, a.port, os.urandom(4096))
    elif a.case == "denied":
        data, outcome = exchange(a.server, a.port, request(key, a.dest, a.dest_port), get)
    else:
        print("unknown case"); return 2
    code = reply_code(data)
    body = data[4:] if code == "ok" else b""
    print("case=%s reply=%s outcome=%s body=%d" % (a.case, code, outcome, len(body)))
    return 0

sys.exit(main())
"""#

/// A TCP server that counts the connections it accepts: the canary that tells whether the
/// tunnel server connected anywhere on a rejected client's behalf.
let canaryScript = #"""
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(64)
count = 0
while True:
    c, _ = s.accept(); count += 1
    open(sys.argv[3], "w").write(str(count))
    c.sendall(b"HTTP/1.0 200 OK\r\n\r\ncanary\n"); c.close()
"""#
