#if canImport(Glibc)
import Glibc
#endif
import SystemPackage
import Testing
@testable import MPTCPSocket

/// These run on loopback (ephemeral ports); MPTCP is on in the CI kernel.
@Suite struct MPTCPSocketTests {
    @Test func mptcpOnBothEndsIsActive() throws {
        try #require(MPTCP.isAvailable(), "this kernel has no MPTCP")
        let listener = try Socket.listen(on: try SocketAddress(parsing: "127.0.0.1:0"), reusePort: false, preferMPTCP: true)
        defer { try? listener.close() }
        let bound = try #require(try Socket.localAddress(listener))
        let (client, proto) = try Socket.openStream(family: AF_INET, nonBlocking: false)
        defer { try? client.close() }
        #expect(proto == .mptcp)
        try Socket.connect(client, to: bound)
        #expect(MPTCP.status(of: client, createdAs: proto) == .active)
        let info = try MPTCP.info(of: client)
        #expect(!info.isFallback)
        let subflows = try MPTCP.subflowAddresses(of: client)
        #expect(subflows.count == 1)
        #expect(subflows.first?.remote == bound)
        let tcp = try MPTCP.subflowTCPInfo(of: client)
        #expect(tcp.count == 1)
        #expect(tcp.first?.state == 1, "subflow not ESTABLISHED: \(String(describing: tcp.first))")
        #expect((tcp.first?.mss ?? 0) > 0)
    }

    @Test func plainTCPServerMeansFallback() throws {
        try #require(MPTCP.isAvailable())
        let listener = try Socket.listen(on: try SocketAddress(parsing: "127.0.0.1:0"), reusePort: false, preferMPTCP: false)
        defer { try? listener.close() }
        let bound = try #require(try Socket.localAddress(listener))
        let (client, proto) = try Socket.openStream(family: AF_INET, nonBlocking: false)
        defer { try? client.close() }
        try Socket.connect(client, to: bound)
        #expect(proto == .mptcp)
        #expect(MPTCP.status(of: client, createdAs: proto) == .fallback)
    }

    @Test func tcpPreferenceGivesPlainTCP() throws {
        let (fd, proto) = try Socket.openStream(family: AF_INET6, preferMPTCP: false)
        defer { try? fd.close() }
        #expect(proto == .tcp)
        #expect(MPTCP.status(of: fd, createdAs: proto) == .plainTCP)
    }

    @Test func connectErrorsAreTyped() throws {
        // Port 1 on loopback: nothing listens, the kernel answers with RST at once.
        let (fd, _) = try Socket.openStream(family: AF_INET, nonBlocking: false)
        defer { try? fd.close() }
        #expect(throws: Errno.connectionRefused) {
            try Socket.connect(fd, to: try SocketAddress(parsing: "127.0.0.1:1"))
        }
    }

    @Test func listenOnBusyPortFailsWithAddressInUse() throws {
        let first = try Socket.listen(on: try SocketAddress(parsing: "127.0.0.1:0"), reusePort: true)
        defer { try? first.close() }
        let bound = try #require(try Socket.localAddress(first))
        #expect(throws: Errno.addressInUse) { try Socket.listen(on: bound, reusePort: false) }
    }
}
