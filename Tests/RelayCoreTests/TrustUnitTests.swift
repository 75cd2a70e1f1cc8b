#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket
import SystemPackage
import Testing
@testable import RelayCore

/// Issue 24: the pieces behind the fixes, without a kernel.
@Suite struct TrustUnitTests {
    /// Finding 3: "splice cannot do this" is decided once, at the syscall edge.
    @Test func spliceRefusalsAreClassifiedAtTheEdge() {
        for code in [EINVAL, ENOSYS, EOPNOTSUPP, EPERM] {
            #expect(IOOutcome(spliceResult: -code) == .unsupported(Errno(rawValue: code)), "\(code)")
            #expect(IOOutcome(splicedReturned: -1, errno: code) == .unsupported(Errno(rawValue: code)))
        }
        #expect(IOOutcome(spliceResult: -ECONNRESET) == .peerReset(.connectionReset))
        #expect(IOOutcome(spliceResult: -EAGAIN) == .wouldBlock)
        #expect(IOOutcome(spliceResult: 5) == .moved(5))
        // recv/send keep their own meaning of these codes.
        #expect(IOOutcome(result: -EINVAL) == .peerReset(.invalidArgument))
    }

    /// Finding 3: a copy-only direction copies instead of taking a pipe, and first empties a
    /// pipe that splice could not write out.
    @Test func aCopyOnlyDirectionCopiesAndDrainsItsPipe() {
        var d = Direction(source: 3, sink: 4)
        d.transfer = .copyOnly
        #expect(d.nextStep == .copyRead)
        d.pipe = SplicePipe(readEnd: 5, writeEnd: 6, capacity: 65536)
        d.inPipe = 1000
        #expect(d.nextStep == .drainPipe)
        d.inPipe = 0
        d.drained = true
        #expect(d.nextStep == .releasePipeAndPoll)
    }

    /// Finding 4: a slot reclaimed with operations in flight stays out of the free list
    /// until each has completed; then it is reused.
    @Test func aReclaimedSlotWaitsForItsStrayCompletions() throws {
        let table = ConnectionTable(capacity: 2)
        let a = try #require(table.allocate())
        table[a].pointee.pending = 2
        let generation = table[a].pointee.generation
        table.release(a)
        #expect(table.quarantined == 1)
        let b = try #require(table.allocate())
        #expect(b != a)
        #expect(table.allocate() == nil, "the reclaimed slot was handed out with completions still due")
        #expect(!table.strayCompleted(a, generation: generation &+ 5))
        #expect(table.strayCompleted(a, generation: generation))
        #expect(table.allocate() == nil)
        #expect(table.strayCompleted(a, generation: generation))
        #expect(table.quarantined == 0)
        #expect(table.allocate() == a)
    }

    @Test func tokensCarryAThirtyTwoBitGeneration() {
        let t = OperationToken(.spliceIn, index: (1 << 24) - 1, direction: 1, generation: 0xdead_beef)
        #expect(t.kind == .spliceIn && t.direction == 1 && t.index == (1 << 24) - 1 && t.generation == 0xdead_beef)
        #expect(OperationToken(raw: OperationToken(.tick).raw).kind == .tick)
    }

    /// Finding 6: the next address is found by value in the current list.
    @Test func nextUpstreamAddressFollowsTheListAsItIsNow() {
        let a = SocketAddress(host: "192.0.2.1", port: 80)!, b = SocketAddress(host: "192.0.2.2", port: 80)!
        let c = SocketAddress(host: "192.0.2.3", port: 80)!
        #expect(Worker.nextUpstreamAddress(after: a, in: [a, b, c], attempts: 1) == b)
        #expect(Worker.nextUpstreamAddress(after: c, in: [a, b, c], attempts: 1) == nil)
        #expect(Worker.nextUpstreamAddress(after: c, in: [a, b], attempts: 1) == a, "a vanished address: start over")
        #expect(Worker.nextUpstreamAddress(after: a, in: [a, b, c], attempts: 3) == nil, "at most one attempt per address")
    }

    /// Finding 2: the admin listener answers to IP literals (never a rebinding name; a port
    /// forward reaches it under another address), localhost where it is local, and
    /// configured names only.
    @Test func adminHostCheckRefusesRebindingNames() throws {
        let loopback = AdminSettings(listen: try SocketAddress(parsing: "127.0.0.1:9180"), hostNames: ["relay.lan"])
        for ok in ["127.0.0.1:9180", "127.0.0.1", "localhost:9180", "LOCALHOST", "localhost.", "relay.lan:9180", "Relay.LAN", "127.0.0.2:9180", "[::1]:8080", nil] as [String?] {
            #expect(loopback.accepts(host: ok), "\(ok ?? "nil")")
        }
        for bad in ["rebind.attacker.example", "rebind.attacker.example:9180", "", "127.0.0.1:x", "localhost.attacker.example", "relay.lan.evil.example"] {
            #expect(!loopback.accepts(host: bad), "\(bad)")
        }
        let v6 = AdminSettings(listen: try SocketAddress(parsing: "[::1]:9180"))
        #expect(v6.accepts(host: "[::1]:9180") && v6.accepts(host: "localhost") && !v6.accepts(host: "::1"))
        let wildcard = AdminSettings(listen: try SocketAddress(parsing: "0.0.0.0:9180"), tokenFile: "/x")
        #expect(wildcard.accepts(host: "192.0.2.7:9180") && wildcard.accepts(host: "localhost") && !wildcard.accepts(host: "evil.example"))
        let specific = AdminSettings(listen: try SocketAddress(parsing: "192.0.2.7:9180"), tokenFile: "/x")
        #expect(specific.accepts(host: "192.0.2.7") && !specific.accepts(host: "localhost") && specific.accepts(host: "198.51.100.1:9180"))
    }

    /// Finding 1: per-listener live totals, written by one worker, read by the scrape.
    @Test func listenerBytesCountLive() {
        let counters = WorkerCounters()
        let bytes = counters.register(listener: "127.0.0.1:80", mode: "forward")
        bytes.addBytes(direction: 0, 10)
        bytes.addBytes(direction: 1, 7)
        bytes.addBytes(direction: 0, 5)
        #expect(counters.listenerCounters.count == 1 && bytes.up == 15 && bytes.down == 7)
        // A reload's new record under the same labels keeps counting on the same totals.
        #expect(counters.register(listener: "127.0.0.1:80", mode: "forward") === bytes)
        #expect(counters.register(listener: "127.0.0.1:80", mode: "server") !== bytes && counters.listenerCounters.count == 2)
    }

    /// Issue 25: a connection's metric events are counted per worker, and a scrape's sum of
    /// two workers' counts is what one counter would have said.
    @Test func listenerEventsCountPerWorkerAndSum() {
        let a = WorkerCounters().register(listener: "127.0.0.1:80", mode: "forward")
        let b = WorkerCounters().register(listener: "127.0.0.1:80", mode: "forward")
        a.countAccepted()
        b.countAccepted()
        a.count(MPTCPOutcome.mptcp)
        b.count(MPTCPOutcome.mptcpLost)
        a.count(CloseReason.completed.cause)
        b.count(CloseReason.resetByUpstream(ECONNRESET).cause)
        a.countConnect(nanoseconds: 300_000)        // within 1 ms
        b.countConnect(nanoseconds: 30_000_000)     // within 50 ms
        b.countConnect(nanoseconds: 60_000_000_000) // past 10 s
        let sum = a.counts + b.counts
        #expect(sum.accepted == 2)
        #expect(sum.outcomes[MPTCPOutcome.allCases.firstIndex(of: .mptcp)!] == 1)
        #expect(sum.outcomes[MPTCPOutcome.allCases.firstIndex(of: .mptcpLost)!] == 1)
        #expect(sum.closes[ListenerCounts.closeReasons.firstIndex(of: "done")!] == 1)
        #expect(sum.closes[ListenerCounts.closeReasons.firstIndex(of: "upstream_error")!] == 1)
        #expect(sum.connects[0] == 1 && sum.connects[4] == 1 && sum.connects.last == 1 && sum.connects.reduce(0, +) == 3)
        #expect(sum.connectNanoseconds == 60_030_300_000)
    }
}
