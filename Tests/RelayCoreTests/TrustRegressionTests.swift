#if canImport(Glibc)
import Glibc
#endif
import Logging
import MPTCPSocket
import SystemPackage
import Testing
import TunnelProtocol
@testable import RelayCore

/// Issue 24's defects, each driven through a worker's own entry points on loopback (no root,
/// no namespaces). These use only what main already had, so each fails there for its own reason.
@Suite struct TrustRegressionTests {
    static func forward(_ upstream: SocketAddress, listen port: UInt16 = 1) -> ListenerSettings {
        ListenerSettings(address: SocketAddress(host: "127.0.0.1", port: port)!, mode: .forward(upstream: Upstream(upstream)))
    }

    /// Sends `payload` from the client (then FIN) while turning the worker, and reads what
    /// reaches `server` until it ends. Main: splice's EINVAL reset both sides (`.reset`).
    static func transfer(_ w: WorkerUnderTest, _ pair: LoopbackPair, _ server: Int32, _ payload: [UInt8], finish: Bool = true) throws -> ([UInt8], StreamEnd) {
        var sent = 0, shut = false
        var received: [UInt8] = []
        var end = StreamEnd.open
        for _ in 0..<200 where end == .open {
            if sent < payload.count {
                let n = payload[sent...].withUnsafeBytes { send(pair.client, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
                if n > 0 { sent += n }
            } else if finish && !shut {
                shutdown(pair.client, Int32(SHUT_WR))
                shut = true
            } else if !finish && received.count == payload.count {
                break
            }
            try w.turn()
            end = drain(server, into: &received)
        }
        return (received, end)
    }

    static func payload(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ $0 >> 9) } }

    /// Finding 3: a splice the kernel refuses (EINVAL here: an unknown flag, as a seccomp
    /// filter or an odd socket would answer) turns the direction to copying; the stream
    /// arrives whole with a FIN, and nobody is blamed.
    @Test(arguments: [SpliceEngine.ring, .inline])
    func spliceRefusedFallsBackToCopying(engine: SpliceEngine) throws {
        let upstream = try LoopbackListener(), front = try LoopbackListener()
        let w = try WorkerUnderTest([Self.forward(upstream.address)]) { $0.spliceEngine = engine }
        w.worker.spliceFlags |= 0x100  // not a SPLICE_F_* flag: the kernel answers EINVAL, moving nothing
        let pair = try w.connectedClient(through: front)
        let server = try #require(upstream.accept())
        defer { close(server) }
        let payload = Self.payload(300_000)  // well past the 16 KiB that turns a direction to splice
        let (received, end) = try Self.transfer(w, pair, server, payload)
        #expect(end == .fin, "the upstream saw \(end) after \(received.count) bytes")
        let intact = received == payload  // compared outside #expect: it would print 300 kB
        #expect(intact, "\(received.count) of \(payload.count) bytes arrived")
        #expect(!w.log.all.contains { $0.contains("client error") }, "\(w.log.all)")
        #expect(w.log.all.contains { $0.contains("splice refused") }, "splice was never refused: the test proved nothing")
    }

    /// Finding 3, the write side: splice refused while bytes sit in the pipe (the sink was
    /// full). The pipe is emptied with read(2) into the copy path; nothing is lost or reordered.
    @Test func spliceRefusedWithBytesInThePipeDrainsItByCopy() throws {
        let upstream = try LoopbackListener(), front = try LoopbackListener()
        let w = try WorkerUnderTest([Self.forward(upstream.address)])
        let pair = try w.connectedClient(through: front)
        let server = try #require(upstream.accept())
        defer { close(server) }
        let payload = Self.payload(8_000_000)
        var sent = 0
        // The server reads nothing yet: the relay's pipe fills and waits for POLLOUT.
        for _ in 0..<200 where !(w.slot0.pointee.up.inPipe > 0 && w.slot0.pointee.up.busy) {
            let n = payload[sent...].withUnsafeBytes { send(pair.client, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
            if n > 0 { sent += n }
            try w.turn()
        }
        try #require(w.slot0.pointee.up.inPipe > 0, "no bytes held in the pipe: the test cannot reach the write side")
        w.worker.spliceFlags |= 0x100  // from now on the kernel refuses every splice (EINVAL)
        var received: [UInt8] = []
        var end = StreamEnd.open
        var shut = false
        for _ in 0..<2000 where end == .open {
            if sent < payload.count {
                let n = payload[sent...].withUnsafeBytes { send(pair.client, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL)) }
                if n > 0 { sent += n }
            } else if !shut {
                shutdown(pair.client, Int32(SHUT_WR))
                shut = true
            }
            end = drain(server, into: &received)
            if end == .open { try w.turn() }
        }
        let intact = received == payload  // compared outside #expect: it would print megabytes
        #expect(end == .fin && intact, "\(end) after \(received.count) of \(payload.count) bytes")
        #expect(w.log.all.contains { $0.contains("splice refused") })
    }

    /// Finding 5: a LAN client that resets before the tunnel request is written: the reset is
    /// reported once (the next read sees a clean EOF), so it must be acted on there. Main
    /// dialled the tunnel server anyway and later passed a FIN for the truncated stream.
    @Test func clientResetBeforeTheTunnelRequestIsAReset() throws {
        let via = try LoopbackListener(), front = try LoopbackListener()
        var tunnel = TunnelSettings(key: try TunnelKey(bytes: Array(repeating: 7, count: 32)), via: via.address)
        tunnel.fastOpen = false
        let listener = ListenerSettings(address: SocketAddress(host: "0.0.0.0", port: 9)!, mode: .transparent, tunnel: tunnel)
        let w = try WorkerUnderTest([listener])
        let pair = try LoopbackPair(to: front)
        pair.resetClient()
        usleep(20_000)
        w.accept(pair)
        #expect(w.worker.table.active == 0, "the tunnel server was dialled for a client that had reset")
        #expect(w.log.all.contains { $0.contains("client error") }, "\(w.log.all)")
    }

    /// Finding 4: a slot reclaimed at its closing deadline with an operation still in flight,
    /// then reused 65,535 times (the free list is LIFO): the stray completion must not touch
    /// the occupant after that. Main's 16-bit generation had wrapped back to the stray's.
    @Test func aStrayCompletionNeverActsOnALaterOccupant() throws {
        let w = try WorkerUnderTest([Self.forward(SocketAddress(host: "127.0.0.1", port: 1)!)]) { $0.maxConnections = 2 }
        let table = w.worker.table
        let first = try #require(table.allocate())
        table[first].pointee.move(.accept(readsHeader: false))
        w.worker.listeners[0].connections += 1
        w.worker.limits.connectionOpened()
        table[first].pointee.pending = 1
        w.worker.beginClose(first, reason: .shutdown, reset: false)
        let stray = OperationToken(.pollIn, index: first, direction: 0, generation: table[first].pointee.generation)
        w.worker.finish(first)  // what tick does after closingDeadline
        for _ in 0..<65_535 {
            let s = try #require(table.allocate())
            table.release(s)
        }
        let next = try #require(table.allocate())
        table[next].pointee.move(.accept(readsHeader: false))
        table[next].pointee.pending = 1
        w.worker.connectionOperationCompleted(.pollIn, stray, 0)
        #expect(table[next].pointee.pending == 1, "a stray completion decremented the pending count of slot \(next)'s new occupant")
    }

    /// Finding 6: the upstream name re-resolves while a connect is in flight; the redial takes
    /// the address after the one that failed, in the list as it is now. Main indexed the new
    /// list with the old attempt counter and tried the failed address again.
    @Test func redialFollowsTheCurrentListAfterAReResolution() throws {
        let a = SocketAddress(host: "127.0.0.1", port: 11)!, b = SocketAddress(host: "127.0.0.1", port: 12)!
        let c = SocketAddress(host: "127.0.0.1", port: 13)!, z = SocketAddress(host: "127.0.0.1", port: 10)!
        let upstream = try Upstream(parsing: "backend.test:80")
        let w = try WorkerUnderTest([ListenerSettings(address: SocketAddress(host: "127.0.0.1", port: 1)!, mode: .forward(upstream: upstream))])
        w.worker.upstreamAddresses = ["backend.test:80": [a, b, c]]
        let front = try LoopbackListener()
        let pair = try LoopbackPair(to: front)
        w.accept(pair)
        #expect(w.worker.targetText(w.slot0) == a.description)
        w.worker.upstreamAddresses = ["backend.test:80": [z, a, b]]  // re-resolved meanwhile
        let connect = OperationToken(.connect, index: 0, generation: w.slot0.pointee.generation)
        w.worker.connectionOperationCompleted(.connect, connect, -ECONNREFUSED)
        #expect(w.slot0.pointee.phase == .connecting)
        #expect(w.worker.targetText(w.slot0) == b.description, "after \(a) failed, tried \(w.worker.targetText(w.slot0))")
    }

    /// Finding 1: bytes count while a connection is open, not only when it closes.
    @Test func bytesCountWhileTheConnectionIsOpen() throws {
        let upstream = try LoopbackListener(), front = try LoopbackListener()
        let w = try WorkerUnderTest([Self.forward(upstream.address)])
        let pair = try w.connectedClient(through: front)
        let server = try #require(upstream.accept())
        defer { close(server) }
        let payload = Self.payload(100_000)
        let (received, _) = try Self.transfer(w, pair, server, payload, finish: false)
        try #require(received.count == payload.count)
        #expect(w.slot0.pointee.phase == .relaying)
        #expect(w.worker.counters.value(.bytesUp) == UInt64(payload.count), "bytes up while open: \(w.worker.counters.value(.bytesUp))")
    }

    /// Finding 1 (mptcp_lost): a connection that kept MPTCP to its end is not counted as
    /// having lost it. Main asked the closed descriptor (EBADF, read as "fallback").
    @Test func anMPTCPConnectionThatKeptMPTCPIsNotCountedLost() throws {
        let upstream = try LoopbackListener(mptcp: true), front = try LoopbackListener()
        let listener = Self.forward(upstream.address, listen: 24_001)
        let w = try WorkerUnderTest([listener])
        let pair = try w.connectedClient(through: front)
        try #require(w.slot0.pointee.status == .active, "loopback MPTCP is off here (net.mptcp.enabled=0?)")
        let server = try #require(upstream.accept())
        let (received, end) = try Self.transfer(w, pair, server, Self.payload(1000))
        #expect(received.count == 1000 && end == .fin)
        close(server)
        try w.turn(until: { w.worker.table.active == 0 })
        try #require(w.worker.table.active == 0)
        let lost = w.worker.listeners[0].counters.counts.outcomes[MPTCPOutcome.allCases.firstIndex(of: .mptcpLost)!]
        #expect(lost == 0, "counted mptcp_lost for a connection whose close line says: \(w.log.all.filter { $0.contains("closed") })")
    }

    /// Finding 11: a reload that lowers idle_timeout does not cut connections accepted before it.
    @Test func aReloadKeepsTheIdleLimitOfAcceptedConnections() throws {
        let upstream = try LoopbackListener(), front = try LoopbackListener()
        let listener = Self.forward(upstream.address)
        let w = try WorkerUnderTest([listener]) { $0.idleTimeout = 600 }
        let pair = try w.connectedClient(through: front)
        let server = try #require(upstream.accept())
        defer { close(server) }
        var next = w.worker.settings
        next.idleTimeout = 1
        let plan = ReloadPlan(settings: next, listeners: [.keep(id: 0)])
        w.worker.listeners[0].fd = dup(front.fd)  // a live socket for the reload to keep (the worker closes it)
        w.worker.mailbox.post { $0.reloads.append(plan) }
        w.worker.wakeCompleted(8)
        w.worker.now += 5_000_000_000
        w.worker.tick()
        #expect(w.slot0.pointee.phase == .relaying, "closed by a limit set after it was accepted: \(w.log.all.last ?? "")")
    }

    /// Finding 11: the "changes on restart" notices compare against the settings being
    /// replaced. Main replaced them first, so the notices never fired.
    @Test func reloadSaysWhatOnlyARestartChanges() throws {
        let log = CapturedLog()
        var settings = RelaySettings(listeners: [])
        settings.workers = 1
        let relay = Relay(settings: settings, logger: Logger(label: "reload") { _ in CapturingLogHandler(log: log) })
        var next = settings
        next.pipeSize = settings.pipeSize * 2
        try relay.reload(next)
        #expect(log.all.contains { $0.contains("pipe_size changes on restart") }, "\(log.all)")
    }
}

/// Finding 9: a table for the whole process's max_connections costs nothing until used.
/// Main wrote every slot at start (about 0.7 KB each, per worker).
@Suite struct TableSizingTests {
    static func residentBytes() -> Int {
        guard let f = fopen("/proc/self/statm", "r") else { return 0 }
        defer { fclose(f) }
        var size = 0, resident = 0
        _ = withUnsafeMutablePointer(to: &size) { s in withUnsafeMutablePointer(to: &resident) { r in vfscanf_statm(f, s, r) } }
        return resident * Int(sysconf(Int32(_SC_PAGESIZE)))
    }

    static func vfscanf_statm(_ f: UnsafeMutablePointer<FILE>, _ size: UnsafeMutablePointer<Int>, _ resident: UnsafeMutablePointer<Int>) -> Int32 {
        var line = [CChar](repeating: 0, count: 256)
        guard fgets(&line, Int32(line.count), f) != nil else { return 0 }
        let fields = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self).split(separator: " ")
        guard fields.count >= 2 else { return 0 }
        size.pointee = Int(fields[0]) ?? 0
        resident.pointee = Int(fields[1]) ?? 0
        return 2
    }

    @Test func anIdleTableCostsNoMemoryForItsCapacity() throws {
        let before = Self.residentBytes()
        // Main made about 690 MB resident here; other tests running beside this one may
        // allocate tens of MB meanwhile, hence the wide margin.
        let table = ConnectionTable(capacity: 1_000_000)
        let grown = Self.residentBytes() - before
        #expect(grown < 200 << 20, "a table of 1,000,000 slots made \(grown >> 20) MB resident before any connection")
        let slot = try #require(table.allocate())
        table[slot].pointee.pending = 0
        #expect(table.active == 1)
        withExtendedLifetime(table) {}
    }
}

/// Finding 11: a reload that changes a listener's mode on the same address (forward ->
/// server: a TCP socket becomes an MPTCP one) is applied. Main refused it: "port in use by
/// another socket", the other socket being the relay's own.
@Suite(.serialized) struct ReloadModeChangeTests {
    @Test func aModeChangeOnTheSameAddressIsApplied() throws {
        let probe = try Socket.listen(on: SocketAddress(host: "127.0.0.1", port: 0)!, backlog: 1, reusePort: false)
        let port = try #require(try Socket.localAddress(probe)).port
        try probe.close()
        let address = SocketAddress(host: "127.0.0.1", port: port)!
        let backend = Upstream(SocketAddress(host: "127.0.0.1", port: 9)!)
        var settings = RelaySettings(listeners: [ListenerSettings(address: address, mode: .forward(upstream: backend))])
        settings.workers = 1
        let log = CapturedLog()
        let relay = Relay(settings: settings, logger: Logger(label: "reload-mode") { _ in CapturingLogHandler(log: log) })
        try relay.start()
        defer {
            relay.requestStop(immediately: true)
            _ = relay.runUntilStopped()
        }
        var next = settings
        next.listeners = [ListenerSettings(address: address, mode: .server(backend: backend))]
        do {
            try relay.reload(next)
        } catch {
            Issue.record("reload refused: \(error)")
        }
        #expect(log.all.contains { $0.contains("1 new, 1 closed") }, "\(log.all)")
    }
}
