#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import MPTCPSocket
import RelayConfig

/// `probeListeners` binds each listen address once: a port held elsewhere is reported on
/// the listener's line.
@Suite(.serialized) struct ProbeTests {
    @Test func portInUseIsReportedOnItsListenLine() throws {
        // An ephemeral port, held by a listener of our own for the test's duration.
        let held = try Socket.listen(on: try SocketAddress(parsing: "127.0.0.1:0"), reusePort: true)
        defer { _ = close(held.rawValue) }
        let port = try #require(try Socket.localAddress(held)).port
        let config = try RelayConfigFile.parse(text: """
            [[listener]]
            listen = "127.0.0.1:\(port)"
            mode = "forward"
            upstream = "192.0.2.1:80"
            """, origin: origin)
        let problems = config.probeListeners()
        #expect(problems.count == 1)
        #expect(problems.first?.description ==
                "gw.toml:2: cannot listen on 127.0.0.1:\(port): port in use by another socket (ss -ltnp 'sport = :\(port)' shows which process)")
        #expect(config.probeListeners(ignoring: config.settings.listeners.map(\.address)).isEmpty)
    }

    @Test func freePortsPassAndAreReleased() throws {
        try inPrivateNetworkNamespace { try freePortsPassAndAreReleasedHere() }
    }

    private func freePortsPassAndAreReleasedHere() throws {
        // In a namespace of its own (as root) no other process can take the port between
        // finding it free and the probes; elsewhere this is best effort.
        let port = try freePort()
        let config = try RelayConfigFile.parse(text: """
            [[listener]]
            listen = "[::]:\(port)"
            mode = "transparent"
            [interception]
            lan_interfaces = ["lan0"]
            """, origin: origin)
        // Root in the tests: IP_TRANSPARENT is allowed, so the probe passes...
        #expect(config.probeListeners().isEmpty)
        // ...and closed its socket: a second probe binds again.
        #expect(config.probeListeners().isEmpty)
    }

    /// With net.ipv4.ip_nonlocal_bind=1 any address binds, so there is nothing to report.
    static let nonlocalBindOff = (try? String(contentsOfFile: "/proc/sys/net/ipv4/ip_nonlocal_bind", encoding: .utf8))?.hasPrefix("0") ?? false

    @Test(.enabled(if: nonlocalBindOff)) func foreignAddressIsReported() throws {
        let config = try RelayConfigFile.parse(text: """
            [[listener]]
            listen = "192.0.2.55:7000"
            mode = "forward"
            upstream = "192.0.2.1:80"
            """, origin: origin)
        let problems = config.probeListeners()
        #expect(problems.map(\.line) == [2])
        #expect(problems.first?.message.contains("is not an address of this host") == true)
    }

    /// Runs `body` on this thread in a new, empty network namespace (root only; otherwise in
    /// the current one), then puts the thread back. `body` must not suspend: the namespace
    /// belongs to the thread, not to the task.
    func inPrivateNetworkNamespace<T>(_ body: () throws -> T) throws -> T {
        // unshare(2) and setns(2) are _GNU_SOURCE: Glibc's module does not import them.
        typealias NamespaceCall = @convention(c) (Int32) -> Int32
        typealias SetnsCall = @convention(c) (Int32, Int32) -> Int32
        let cloneNewNet: Int32 = 0x4000_0000  // CLONE_NEWNET
        guard getuid() == 0, let u = dlsym(nil, "unshare"), let s = dlsym(nil, "setns") else { return try body() }
        let unshareCall = unsafeBitCast(u, to: NamespaceCall.self), setnsCall = unsafeBitCast(s, to: SetnsCall.self)
        let saved = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC)
        try #require(saved >= 0, "cannot open this thread's network namespace")
        defer { close(saved) }
        try #require(unshareCall(cloneNewNet) == 0, "unshare(CLONE_NEWNET): \(String(cString: strerror(errno)))")
        defer { precondition(setnsCall(saved, cloneNewNet) == 0, "cannot return to the original network namespace") }
        return try body()
    }

    func freePort() throws -> UInt16 {
        let fd = try Socket.listen(on: try SocketAddress(parsing: "[::]:0"), reusePort: false)
        defer { _ = close(fd.rawValue) }
        return try #require(try Socket.localAddress(fd)).port
    }
}
