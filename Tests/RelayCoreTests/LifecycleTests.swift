#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket
import SystemPackage
import Testing
@testable import RelayCore

/// The connection lifecycle and a direction's next step, event by event, without a kernel.
@Suite struct ConnectionLifecycleTests {
    @Test func forwardConnectionRunsItsWholeLife() {
        var c = Connection()
        var moved = c.move(.accept(readsHeader: false))
        #expect(moved && c.phase == .connecting)
        moved = c.move(.connected)
        #expect(moved && c.phase == .relaying)
        moved = c.move(.close)
        #expect(moved && c.phase == .closing)
        moved = c.move(.drained)
        #expect(moved && c.phase == .free)
    }

    @Test func tunnelServerReadsTheHeaderFirst() {
        var c = Connection()
        c.move(.accept(readsHeader: true))
        #expect(c.phase == .readingHeader)
        c.move(.headerComplete)
        #expect(c.phase == .connecting)
        let moved = c.move(.redial)
        #expect(moved && c.phase == .connecting)
    }

    @Test func aSecondCloseIsIgnoredNotApplied() {
        var c = Connection()
        c.move(.accept(readsHeader: false))
        c.move(.close)
        let again = c.move(.close)
        #expect(!again)
        #expect(c.phase == .closing)
    }

    @Test(arguments: [Phase.readingHeader, .connecting, .relaying])
    func everyLivePhaseCanClose(phase: Phase) {
        #expect(phase.on(.close) == .enter(.closing))
    }

    /// Every (phase, event) pair not on the diagram is refused: the table has no gaps.
    @Test func illegalTransitionsAreRejected() {
        let events: [LifecycleEvent] = [.accept(readsHeader: false), .accept(readsHeader: true), .headerComplete, .redial, .connected, .close, .drained]
        let legal: Set<String> = [
            "free accept(readsHeader: false)", "free accept(readsHeader: true)", "readingHeader headerComplete",
            "connecting redial", "relaying redial", "connecting connected", "readingHeader close", "connecting close", "relaying close",
            "closing drained",
        ]
        for phase in [Phase.free, .readingHeader, .connecting, .relaying, .closing] {
            for event in events {
                let action = phase.on(event)
                let key = "\(phase) \(event)"
                if legal.contains(key) {
                    guard case .enter = action else { Issue.record("\(key) should be legal"); continue }
                } else {
                    #expect(action == .invalid || action == .ignore, "\(key) -> \(action)")
                }
            }
        }
        // A relaying connection goes back to connecting only by a redial (a tunnel server
        // refused before the client got anything), never a free slot to relaying.
        #expect(Phase.relaying.on(.connected) == .invalid)
        #expect(Phase.free.on(.connected) == .invalid)
        #expect(Phase.closing.on(.accept(readsHeader: false)) == .invalid)
    }
}

@Suite struct DirectionStepTests {
    func relaying() -> Direction { Direction(source: 3, sink: 4) }

    func bulk() -> Direction {
        var d = relaying()
        d.transfer = .spliced
        return d
    }

    @Test func aFreshDirectionCopiesUntilItTurnsBulk() {
        var d = relaying()
        #expect(d.nextStep == .copyRead)
        d.transfer = .spliced
        #expect(d.nextStep == .takePipe)
        d.pipe = SplicePipe(readEnd: 5, writeEnd: 6, capacity: 65536)
        #expect(d.nextStep == .read)
    }

    @Test func bytesInThePipeAreWrittenBeforeAnythingIsRead() {
        var d = relaying()
        d.pipe = SplicePipe(readEnd: 5, writeEnd: 6, capacity: 65536)
        d.inPipe = 100
        d.sourceEOF = true
        #expect(d.nextStep == .write)
        d.inPipe = 0
        #expect(d.nextStep == .passEOF)
    }

    @Test func anIdleDirectionGivesItsPipeBackThenPolls() {
        var d = bulk()
        d.pipe = SplicePipe(readEnd: 5, writeEnd: 6, capacity: 65536)
        d.drained = true
        #expect(d.nextStep == .releasePipeAndPoll)
        d.pipe = .none
        #expect(d.nextStep == .pollIn)
    }

    @Test func handshakeBytesGoFirstAndTheBufferIsThenReleased() {
        var d = relaying()
        d.buffer = 0
        d.prefixStart = 0
        d.prefixEnd = 10
        d.inPipe = 5
        #expect(d.nextStep == .writePrefix)
        d.prefixStart = 10
        #expect(d.nextStep == .releaseBuffer)
        d.buffer = -1
        #expect(d.nextStep == .write)
    }

    @Test func aTunnelReplyIsReadBeforeRelaying() {
        var d = relaying()
        d.buffer = 0
        d.handshake = .readingReply(fill: 0, waits: 0)
        #expect(d.nextStep == .readReply)
    }

    @Test func busyOrFinishedWaits() {
        var d = relaying()
        d.busy = true
        #expect(d.nextStep == .wait)
        d.busy = false
        d.finished = true
        #expect(d.nextStep == .wait)
    }

    @Test func bytesHeldAreSeen() {
        var d = relaying()
        #expect(!d.holdsBytes)
        d.inPipe = 1
        #expect(d.holdsBytes)
        d.inPipe = 0
        d.prefixEnd = 3
        #expect(d.holdsBytes)
    }
}

@Suite struct IOOutcomeTests {
    @Test func decodesResultsOnce() {
        #expect(IOOutcome(result: 42) == .moved(42))
        #expect(IOOutcome(result: 0) == .eof)
        #expect(IOOutcome(result: -EAGAIN) == .wouldBlock)
        // A signal is not a failure of the peer.
        #expect(IOOutcome(result: -EINTR) == .wouldBlock)
        #expect(IOOutcome(result: -ECONNRESET) == .peerReset(.connectionReset))
        #expect(IOOutcome(returned: -1, errno: EPIPE) == .peerReset(.brokenPipe))
    }

    @Test func shortagesAreClassifiedInOnePlace() {
        #expect(Errno.tooManyOpenFiles.isResourceShortage && Errno.tooManyOpenFiles.isDescriptorShortage)
        #expect(Errno.noBufferSpace.isResourceShortage && !Errno.noBufferSpace.isDescriptorShortage)
        #expect(!Errno.connectionReset.isResourceShortage)
    }

    @Test func splicingARealPipeReportsOutcomes() throws {
        var a: [Int32] = [-1, -1], b: [Int32] = [-1, -1]
        #expect(pipe(&a) == 0 && pipe(&b) == 0)
        for fd in a + b { _ = fcntl(fd, F_SETFL, O_NONBLOCK) }
        defer { for fd in a + b { close(fd) } }
        #expect(DataPath.splice(from: a[0], to: b[1], count: 100) == .wouldBlock)
        _ = write(a[1], "hello", 5)
        #expect(DataPath.splice(from: a[0], to: b[1], count: 100) == .moved(5))
        close(a[1]); a[1] = -1
        #expect(DataPath.splice(from: a[0], to: b[1], count: 100) == .eof)
    }
}

@Suite struct HeaderBudgetTests {
    func peer(_ text: String) throws -> sockaddr_storage {
        var storage = sockaddr_storage()
        _ = try SocketAddress(parsing: text).write(to: &storage)
        return storage
    }

    @Test func limitsEachSourceAndTheTotal() throws {
        var budget = HeaderBudget(total: 3, perSource: 2)
        let flood = try peer("198.51.100.7:4000"), other = try peer("203.0.113.1:5000")
        #expect(budget.take(for: flood) == .granted)
        #expect(budget.take(for: try peer("198.51.100.7:4001")) == .granted)  // same address, other port
        #expect(budget.take(for: flood) == .sourceFull)
        #expect(budget.take(for: other) == .granted)
        #expect(budget.take(for: try peer("203.0.113.2:1")) == .allFull)
        budget.give(for: flood)
        #expect(budget.take(for: flood) == .granted)
        #expect(budget.inUse == 3)
    }

    @Test func ipv6CountsBySlash64AndMappedIPv4AsIPv4() throws {
        #expect(HeaderBudget.key(try peer("[2001:db8:1:2::1]:1")) == HeaderBudget.key(try peer("[2001:db8:1:2:ffff::9]:2")))
        #expect(HeaderBudget.key(try peer("[2001:db8:1:2::1]:1")) != HeaderBudget.key(try peer("[2001:db8:1:3::1]:1")))
        #expect(HeaderBudget.key(try peer("[::ffff:198.51.100.7]:1")) == HeaderBudget.key(try peer("198.51.100.7:9")))
    }
}

@Suite struct SettingsLimitTests {
    @Test func hugeTimeoutsAreRefusedAndNeverTrap() {
        #expect(RelaySettings.checkSeconds(1e10) != nil)
        #expect(RelaySettings.checkSeconds(.infinity) != nil)
        #expect(RelaySettings.checkSeconds(-1) != nil)
        #expect(RelaySettings.checkSeconds(86400) == nil)
        #expect(nanoseconds(1e30) > 0)
        #expect(nanoseconds(.nan) > 0)
        #expect(nanoseconds(1.5) == 1_500_000_000)
    }

    @Test func generationsTellOccupantsApart() {
        let table = ConnectionTable(capacity: 1)
        let slot = table.allocate()!
        let first = table[slot].pointee.generation
        let token = OperationToken(.pollIn, index: slot, direction: 1, generation: first)
        table.release(slot)
        _ = table.allocate()
        #expect(table[slot].pointee.generation != token.generation)
        #expect(OperationToken(raw: token.raw).generation == first)
        #expect(OperationToken(raw: token.raw).index == slot && OperationToken(raw: token.raw).direction == 1)
    }
}

@Suite struct UpstreamParsingTests {
    @Test func literalsStayAddressesAndNamesStayNames() throws {
        let literal = try Upstream(parsing: "[2001:db8::7]:443")
        #expect(literal.literal != nil && literal.name == nil)
        let named = try Upstream(parsing: "backend.example:8443")
        #expect(named.name == "backend.example" && named.port == 8443 && named.description == "backend.example:8443")
    }

    @Test(arguments: ["backend.example", "bad_name:80", "-x.example:80", "host:0", "host:99999", "2001:db8::1:80", "1.2.3.300:80"])
    func refusesWhatIsNeitherAddressNorName(text: String) {
        #expect(throws: Upstream.ParseError.self) { try Upstream(parsing: text) }
    }

    @Test func resolvesNamesThroughTheSystemResolver() throws {
        let addresses = try Upstream(parsing: "localhost:80").resolve().get()
        #expect(!addresses.isEmpty && addresses.allSatisfy { $0.port == 80 })
        #expect(addresses.contains { $0.host == "127.0.0.1" || $0.host == "::1" })
    }
}
