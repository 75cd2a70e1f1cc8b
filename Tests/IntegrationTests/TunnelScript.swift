/// A tunnel client that plays by the wire format of docs/tunnel-protocol.md, written apart
/// from the Swift codec so the tests check the server against the document, and able to
/// send every kind of bad header a hostile client would.
let tunnelScript = #"""
import argparse, hashlib, hmac, os, socket, struct, sys, time

CONTEXT = b"mptcp-relay tunnel request v1"
# 10: Connect TLV (a TCP connection); 193 with --udp: UDP Connect TLV (a UDP flow).
CONNECT_TYPE = 10

def mapped(host):
    if ":" in host:
        return socket.inet_pton(socket.AF_INET6, host)
    return b"\x00" * 10 + b"\xff\xff" + socket.inet_pton(socket.AF_INET, host)

def name_tlv(name, length=None):
    # Key Name TLV (type 194): name length, the name, zero padding to a word.
    raw = name if isinstance(name, bytes) else name.encode()
    n = len(raw) if length is None else length
    tlv = bytes([194, 0, n]) + raw
    tlv += b"\x00" * ((-len(tlv)) % 4)
    return tlv[:1] + bytes([len(tlv) // 4]) + tlv[2:]

def request(key, host, port, ts=None, nonce=None, name=None):
    ts = int(time.time()) if ts is None else ts
    nonce = os.urandom(16) if nonce is None else nonce
    key_id = hashlib.sha256(key).digest()[:4]
    tlv = b"" if name is None else name_tlv(name)
    body = bytes([1, 18 + len(tlv) // 4, 0, 0, CONNECT_TYPE, 5]) + struct.pack(">H", port) + mapped(host) + tlv
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
    p.add_argument("--name", help="key id for the Key Name TLV (issue 26)")
    p.add_argument("--n", type=int, default=1)
    p.add_argument("--hold", type=float, default=0)
    p.add_argument("--udp", action="store_true")
    a = p.parse_args()
    global CONNECT_TYPE
    CONNECT_TYPE = 193 if a.udp else 10
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
    elif a.case == "named":
        data, outcome = exchange(a.server, a.port, request(key, a.dest, a.dest_port, name=a.name), get)
    elif a.case == "bad-name":
        data, outcome = exchange(a.server, a.port, request(key, a.dest, a.dest_port, name=b"a/b"), get)
    elif a.case == "long-name":
        # The name length byte says 33 (one more than allowed), the bytes follow.
        r = bytearray(request(key, a.dest, a.dest_port, name="x" * 33))
        data, outcome = exchange(a.server, a.port, bytes(r), get)
    elif a.case == "unknown-name":
        data, outcome = exchange(a.server, a.port, request(key, a.dest, a.dest_port, name="nobody"), get)
    elif a.case == "wrong-key-named":
        other = bytes.fromhex(open(a.wrong_key).read().strip())
        data, outcome = exchange(a.server, a.port, request(other, a.dest, a.dest_port, name=a.name), get)
    elif a.case == "replay-named":
        first = request(key, a.dest, a.dest_port, name=a.name)
        d1, o1 = exchange(a.server, a.port, first, get)
        if reply_code(d1) != "ok":
            print("first use of the header was refused: %r %s" % (d1[:16], o1)); return 3
        data, outcome = exchange(a.server, a.port, first, get)
    elif a.case == "hold":
        # N authenticated connections to an idle destination, held open: how many the server
        # took (reply ok) and refused (by code), for the per-key limit.
        held, codes = [], {}
        for _ in range(a.n):
            s = socket.create_connection((a.server, a.port), timeout=5)
            s.sendall(request(key, a.dest, a.dest_port, name=a.name))
            d = b""
            try:
                while len(d) < 4 or (d[1] == 2 and len(d) < 8):
                    x = s.recv(64)
                    if not x: break
                    d += x
            except (ConnectionResetError, socket.timeout):
                pass
            code = reply_code(d)
            codes[str(code)] = codes.get(str(code), 0) + 1
            if code == "ok": held.append(s)
            else: s.close()
        print("case=hold name=%s %s" % (a.name, " ".join("reply_%s=%d" % kv for kv in sorted(codes.items()))), flush=True)
        time.sleep(a.hold)
        for s in held: s.close()
        return 0
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
