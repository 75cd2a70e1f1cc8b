import Foundation
import Testing
import TestSupport

extension Integration {
    /// Server mode: MPTCP in from the gateway side, plain TCP out to a legacy backend that
    /// learns the real client address from a PROXY protocol v2 header.
    @Suite("Server mode")
    struct ServerMode {
        @Test func mptcpInPlainTCPOutWithProxyHeader() async throws {
            try await withEnv(wans: 2, rateMbit: 100) { env in
                try Files.write(proxyBackendScript, to: env.tmp.file("backend.py"))
                _ = try await env.serverIn(["python3", env.tmp.file("backend.py").path, "127.0.0.1", "9444"], port: 9444, log: "backend.log")
                let bin = try await RelayBinary.path()
                let relay = try await env.daemon(in: env.tb.srvNS, [bin, "run", "--listen", "\(env.tb.srvIP):9443", "--server",
                                                                    "--upstream", "127.0.0.1:9444", "--proxy-protocol"], port: 9443, log: "server.log")
                // An MPTCP client on the gateway (the classic mptcpize makes python's socket MPTCP).
                let r = try await Proc.run(in: env.tb.gwNS, [classicMptcpize, "run", "python3", "-c", echoClient(env.tb.srvIP, 9443)], timeout: 30)
                try #require(r.succeeded, "\(r.summary)\nserver log:\n\(tail(relay.log))")
                let lines = r.stdout.split(separator: "\n").map(String.init)
                #expect(lines.first?.hasPrefix("proxy source=10.1.0.1:") == true && lines.first?.contains("destination=\(env.tb.srvIP):9443") == true,
                        "backend saw: \(r.stdout)")
                #expect(lines.dropFirst().first == "echo ok", "payload after the header: \(r.stdout)")
                #expect(await relay.waitForLog("mptcp=yes"), "\(tail(relay.log))")
                // A plain TCP client works too (the kernel falls back on the MPTCP listener).
                let plain = try await Proc.run(in: env.tb.gwNS, ["python3", "-c", echoClient(env.tb.srvIP, 9443)], timeout: 30)
                #expect(plain.stdout.contains("echo ok"), "\(plain.summary)")
                #expect(await relay.waitForLog("mptcp=no"), "\(tail(relay.log))")
            }
        }
    }
}

/// Reads a PROXY v2 header, reports what it says, then echoes one payload.
let proxyBackendScript = #"""
import socket, struct, sys, threading
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
def serve(c):
    head = b""
    while len(head) < 16: head += c.recv(16 - len(head))
    assert head[:12] == SIG, head
    length = struct.unpack(">H", head[14:16])[0]
    body = b""
    while len(body) < length: body += c.recv(length - len(body))
    if head[13] == 0x11:
        src = socket.inet_ntop(socket.AF_INET, body[0:4]); dst = socket.inet_ntop(socket.AF_INET, body[4:8])
        sp, dp = struct.unpack(">HH", body[8:12])
        text = "proxy source=%s:%d destination=%s:%d\n" % (src, sp, dst, dp)
    else:
        src = socket.inet_ntop(socket.AF_INET6, body[0:16]); dst = socket.inet_ntop(socket.AF_INET6, body[16:32])
        sp, dp = struct.unpack(">HH", body[32:36])
        text = "proxy source=[%s]:%d destination=[%s]:%d\n" % (src, sp, dst, dp)
    data = c.recv(100)
    c.sendall(text.encode() + b"echo " + data); c.close()
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
"""#

func echoClient(_ host: String, _ port: Int) -> String {
    """
    import socket
    s = socket.create_connection(("\(host)", \(port)), timeout=10); s.sendall(b"ok")
    data = b""
    while True:
        d = s.recv(1000)
        if not d: break
        data += d
    print(data.decode())
    """
}
