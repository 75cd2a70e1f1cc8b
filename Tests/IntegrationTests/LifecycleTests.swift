import Foundation
import Testing
import TestSupport

extension Integration {
    /// SIGTERM: systemd hears READY=1 then STOPPING=1, new connections are refused at once,
    /// an open one still gets its answer within the grace period, and the relay exits 0.
    @Suite("Lifecycle")
    struct Lifecycle {
        @Test func sigtermDrainsOpenConnectionsAndNotifiesSystemd() async throws {
            try await withEnv(wans: 1, rateMbit: 100) { env in
                let notify = try NotifySocket(path: env.tmp.file("notify.sock").path)
                try Files.write(slowServerScript, to: env.tmp.file("slow.py"))
                _ = try await env.serverIn(["python3", env.tmp.file("slow.py").path, env.tb.srvIP, "7300"], port: 7300, log: "slow.log")
                let bin = try await RelayBinary.path()
                let relay = try await env.daemon(in: env.tb.gwNS, ["env", "NOTIFY_SOCKET=\(notify.path)", bin, "run", "--listen", "\(env.tb.gwLanIP):7300",
                                                                   "--upstream", "\(env.tb.srvIP):7300", "--grace", "20"], port: 7300, log: "relay.log")
                #expect(notify.receive(timeout: 30)?.hasPrefix("READY=1") == true, "no READY=1 from the relay")

                // The server answers 3 s after the request: the answer arrives after SIGTERM.
                async let answer = env.lan(["python3", "-c", clientSnippet(env.tb.gwLanIP, 7300)], timeout: 30)
                // Signal only once the relay has the connection through to the server.
                try await waitFor("the relayed connection to reach the server", timeout: 30) {
                    let r = try await Proc.run(in: env.tb.srvNS, ["ss", "-tnH", "state", "established", "( sport = :7300 )"])
                    return !r.stdout.isEmpty
                }
                relay.signal(SIGTERM)
                #expect(notify.receive(timeout: 30) == "STOPPING=1", "no STOPPING=1 after SIGTERM")
                // Listeners close as the workers read the stop request: refused soon after.
                var last = ""
                try await waitFor("new connections to be refused", timeout: 20) {
                    last = try await env.lan(["python3", "-c", clientSnippet(env.tb.gwLanIP, 7300)], timeout: 10).stdout
                    return last.contains("ConnectionRefused")
                }
                let r = try await answer
                #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "got: answer after 3 s", "open connection during shutdown: \(r.summary)")
                #expect(await relay.waitForExit(timeout: 30), "relay still running after its last connection ended")
                #expect(relay.exitStatus == 0)
            }
        }
    }
}

/// Answers each request 3 s late.
let slowServerScript = #"""
import socket, sys, threading, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(16)
def serve(c):
    c.recv(100); time.sleep(3); c.sendall(b"answer after 3 s"); c.close()
while True:
    c, _ = s.accept(); threading.Thread(target=serve, args=(c,), daemon=True).start()
"""#

func clientSnippet(_ host: String, _ port: Int) -> String {
    """
    import socket
    try:
        s = socket.create_connection(("\(host)", \(port)), timeout=15); s.sendall(b"q")
        data = b""
        while True:
            d = s.recv(100)
            if not d: break
            data += d
        print("got:", data.decode())
    except Exception as e:
        print(type(e).__name__, e)
    """
}

/// A datagram socket standing in for systemd's $NOTIFY_SOCKET.
final class NotifySocket: @unchecked Sendable {
    let path: String
    private let fd: Int32

    init(path: String) throws {
        self.path = path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: Array(path.utf8)) }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc != 0 { throw ProcError("cannot bind \(path): \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd); unlink(path) }

    /// The next datagram, or nil after `timeout` seconds.
    func receive(timeout: Double) -> String? {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeout * 1000)) == 1 else { return nil }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n > 0 ? String(decoding: buffer[..<n], as: UTF8.self) : nil
    }
}

/// Polls `condition` until it holds; throws after `timeout` seconds.
func waitFor(_ what: String, timeout: Double, _ condition: () async throws -> Bool) async throws {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        if try await condition() { return }
        try await Task.sleep(nanoseconds: 100_000_000)
    }
    throw ProcError("timed out after \(timeout) s waiting for \(what)")
}
