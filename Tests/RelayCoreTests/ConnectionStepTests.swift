#if canImport(Glibc)
import Glibc
#endif
import SystemPackage
import Testing
import TunnelProtocol
@testable import RelayCore

/// The connection reducer driven event by event against a scripted kernel: no root, no
/// sockets, each fault placed exactly where the test wants it.
@Suite struct ConnectionStepTests {
    static func bytes(_ n: Int, seed: UInt8 = 1) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) } }

    @Test func aRequestAndALargeAnswerArriveWholeThenACleanClose() {
        var s = ScriptedConnection()
        let request = Self.bytes(300)
        let answer = Self.bytes(20_000, seed: 7)
        s.kernel[ScriptedConnection.client].inbound = request
        s.kernel[ScriptedConnection.client].peerFIN = true
        #expect(s.drive(0) == .wait)
        #expect(s.connection.up.finished)
        #expect(s.kernel[ScriptedConnection.upstream].sent == request)
        #expect(s.kernel[ScriptedConnection.upstream].shutDown, "the client's FIN was passed on")
        #expect(s.connection.up.transfer == .copying, "a short request never takes a pipe")

        s.kernel[ScriptedConnection.upstream].inbound = answer
        s.kernel[ScriptedConnection.upstream].peerFIN = true
        #expect(s.drive(1) == .close(.completed, reset: false))
        #expect(s.kernel[ScriptedConnection.client].sent == answer, "the answer arrived whole and in order")
        #expect(s.connection.down.transfer == .spliced, "a full buffer turns the direction bulk")
        #expect(s.steps(1).contains(.read), "bulk bytes went through the pipe")
        #expect(!s.kernel[ScriptedConnection.client].shutDown, "the last direction leaves the FIN to close()")
        #expect(s.holdings == (0, 0), "every buffer and pipe went back before the close")
    }

    /// Finding 3: splice refused on a read is the kernel's doing: copy, never reset.
    @Test func aRefusedSpliceReadCopiesInstead() {
        var s = ScriptedConnection()
        s.connection.down.transfer = .spliced
        s.kernel.spliceFault = .unsupported(.invalidArgument)
        let answer = Self.bytes(50_000)
        s.kernel[ScriptedConnection.upstream].inbound = answer
        s.kernel[ScriptedConnection.upstream].peerFIN = true
        s.connection.up.finished = true
        #expect(s.drive(1) == .close(.completed, reset: false))
        #expect(s.trace.contains { $0.action == .spliceRefused(.invalidArgument) })
        #expect(s.connection.down.transfer == .copyOnly)
        #expect(s.kernel[ScriptedConnection.client].sent == answer, "every byte, in order")
    }

    /// Finding 3: bytes already in the pipe when splice refuses the write are read out of
    /// it and sent in order.
    @Test func aRefusedSpliceWriteDrainsThePipeInOrder() {
        var s = ScriptedConnection()
        s.connection.down.transfer = .spliced
        let answer = Self.bytes(10_000)
        s.kernel[ScriptedConnection.upstream].inbound = answer
        s.kernel[ScriptedConnection.upstream].peerFIN = true
        s.kernel[ScriptedConnection.client].room = 0  // the first write would block: bytes wait in the pipe
        #expect(s.drive(1) == .pollOut)
        #expect(s.connection.down.inPipe > 0)
        s.kernel.spliceFault = .unsupported(.notPermitted)
        s.kernel[ScriptedConnection.client].room = .max
        s.connection.up.finished = true
        #expect(s.drive(1) == .close(.completed, reset: false))
        #expect(s.steps(1).contains(.drainPipe))
        #expect(s.kernel[ScriptedConnection.client].sent == answer, "the pipe's bytes first, then the rest, in order")
        #expect(s.holdings == (0, 0), "the drained pipe and the copy buffers went back")
    }

    @Test(arguments: [0, 1])
    func aPeerResetIsPassedOnAsAReset(d: Int) {
        var s = ScriptedConnection()
        let source = d == 0 ? ScriptedConnection.client : ScriptedConnection.upstream
        s.kernel[source].inbound = Self.bytes(10)
        s.kernel[source].readFault = .peerReset(.connectionReset)
        let expected: CloseReason = d == 0 ? .resetByClient(ECONNRESET) : .resetByUpstream(ECONNRESET)
        #expect(s.drive(d) == .close(expected, reset: true))
    }

    /// A server that answers and closes has sent its FIN with the answer: the look-ahead
    /// finds it, and the answer goes out with MSG_MORE right before the shutdown, so the FIN
    /// joins the answer's last segment and no poll waits for the EOF.
    @Test func aShortAnswerAndItsFINLeaveTogether() {
        var s = ScriptedConnection()
        let answer = Self.bytes(1259)
        s.kernel[ScriptedConnection.upstream].inbound = answer
        s.kernel[ScriptedConnection.upstream].peerFIN = true
        #expect(s.drive(1) == .wait)
        #expect(s.steps(1) == [.copyRead, .lookAhead, .writePrefix, .releaseBuffer, .passEOF])
        #expect(s.kernel[ScriptedConnection.client].sent == answer)
        #expect(s.kernel[ScriptedConnection.client].lastSendMore, "MSG_MORE: the FIN follows at once")
        #expect(s.kernel[ScriptedConnection.client].shutDown)
        #expect(s.holdings == (0, 0))
    }

    /// Without a FIN the look-ahead finds nothing; it is made once per direction (a long
    /// exchange of short messages pays one extra read), never on the up direction, and a
    /// send is never held back with MSG_MORE while the source is open.
    @Test func theLookAheadIsMadeOnceAndOnlyForTheAnswer() {
        var s = ScriptedConnection()
        s.kernel[ScriptedConnection.client].inbound = Self.bytes(300)
        #expect(s.drive(0) == .pollIn)
        #expect(!s.steps(0).contains(.lookAhead), "a request is not looked ahead of")
        s.kernel[ScriptedConnection.upstream].inbound = Self.bytes(100)
        #expect(s.drive(1) == .pollIn)
        s.kernel[ScriptedConnection.upstream].inbound = Self.bytes(100, seed: 3)
        s.connection.down.drained = false
        #expect(s.drive(1) == .pollIn)
        #expect(s.steps(1).filter { $0 == .lookAhead }.count == 1)
        #expect(s.kernel[ScriptedConnection.client].sent == Self.bytes(100) + Self.bytes(100, seed: 3))
        #expect(!s.kernel[ScriptedConnection.client].lastSendMore)
        #expect(!s.kernel[ScriptedConnection.client].shutDown)
    }

    /// A reset the look-ahead finds is the server's last word: the answer read before it
    /// goes to the client first, as plain TCP delivers data before the error.
    @Test func aResetFoundByTheLookAheadComesAfterTheAnswer() {
        var s = ScriptedConnection()
        let answer = Self.bytes(10)
        s.kernel[ScriptedConnection.upstream].inbound = answer
        s.kernel[ScriptedConnection.upstream].readFault = .peerReset(.connectionReset)
        #expect(s.drive(1) == .close(.resetByUpstream(ECONNRESET), reset: true))
        #expect(s.steps(1) == [.copyRead, .lookAhead, .writePrefix, .reportFailure])
        #expect(s.kernel[ScriptedConnection.client].sent == answer)
        #expect(!s.kernel[ScriptedConnection.client].lastSendMore)
    }

    @Test func aFullSinkWaitsForRoomAndLosesNothing() {
        var s = ScriptedConnection()
        let request = Self.bytes(3000)
        s.kernel[ScriptedConnection.client].inbound = request
        s.kernel[ScriptedConnection.upstream].room = 1000
        #expect(s.drive(0) == .pollOut)
        #expect(s.connection.holdsBytes)
        s.kernel[ScriptedConnection.upstream].room = .max
        #expect(s.drive(0) == .pollIn)
        #expect(s.kernel[ScriptedConnection.upstream].sent == request, "nothing lost while the sink was full")
    }

    /// This host running short (memory, socket buffers) is nobody's reset: the close says
    /// "out of resources", in every step that can meet it.
    @Test func aShortageBlamesNoPeer() {
        var read = ScriptedConnection()
        read.kernel[ScriptedConnection.client].readFault = .shortage(.noBufferSpace)
        #expect(read.drive(0) == .close(.resources(ENOBUFS), reset: true))
        var write = ScriptedConnection()
        write.kernel[ScriptedConnection.client].inbound = Self.bytes(10)
        write.kernel[ScriptedConnection.upstream].writeFault = .shortage(.noMemory)
        #expect(write.drive(0) == .close(.resources(ENOMEM), reset: true))
        var reply = Self.tunnel(servers: 2)
        reply.connection.up.prefixStart = reply.connection.up.prefixEnd
        reply.kernel[ScriptedConnection.upstream].readFault = .shortage(.noMemory)
        #expect(reply.drive(1) == .close(.resources(ENOMEM), reset: true), "no other server for a shortage of ours")
        #expect(IOOutcome(result: -EMFILE) == .shortage(.tooManyOpenFiles))
    }

    /// A spliced direction's sink that says "not connected" is gone, not connecting.
    @Test func aSpliceIntoAnUnconnectedSocketResets() {
        var s = ScriptedConnection()
        s.connection.down.transfer = .spliced
        s.kernel[ScriptedConnection.upstream].inbound = Self.bytes(100)
        s.kernel[ScriptedConnection.client].writeFault = .notConnectedYet
        #expect(s.drive(1) == .close(.resetByClient(ENOTCONN), reset: true))
    }

    @Test func aWriteFailureResetsAndBlamesTheSinksPeer() {
        var s = ScriptedConnection()
        s.kernel[ScriptedConnection.client].inbound = Self.bytes(10)
        s.kernel[ScriptedConnection.upstream].writeFault = .peerReset(.brokenPipe)
        #expect(s.drive(0) == .close(.resetByUpstream(EPIPE), reset: true))
    }

    @Test func noPipeMeansACopyNotAFailure() {
        var s = ScriptedConnection()
        s.connection.down.transfer = .spliced
        s.kernel.pipeFault = .tooManyOpenFiles
        s.kernel[ScriptedConnection.upstream].inbound = Self.bytes(10)
        #expect(s.drive(1) == .pipeShortage(.tooManyOpenFiles))
        var t = ScriptedConnection()
        t.connection.down.transfer = .spliced
        t.kernel.pipeFault = .badFileDescriptor
        t.kernel[ScriptedConnection.upstream].inbound = Self.bytes(10)
        #expect(t.drive(1) == .close(.resources(EBADF), reset: true))
    }

    // MARK: Tunnel gateway: the reply and Fast Open

    /// A gateway's connection right after its Fast Open connect: the request waits in the up
    /// direction's buffer, the down direction reads for the reply.
    static func tunnel(servers: Int, fastOpen: Bool = false) -> ScriptedConnection {
        var s = ScriptedConnection()
        let request = s.buffers.take()
        s.buffers.pointer(request).initializeMemory(as: UInt8.self, repeating: 0xAB, count: 40)
        s.connection.up.buffer = request
        s.connection.up.prefixEnd = 40
        if servers > 1 || fastOpen { s.connection.up.handshake = .holdingForReply }
        s.connection.down.buffer = s.buffers.take()
        s.connection.down.handshake = .readingReply(fill: 0, waits: 0)
        s.kernel[ScriptedConnection.upstream].readFault = .notConnectedYet
        return s
    }

    /// A reply read before the request went out (the SYN not sent yet) waits for the write,
    /// then looks again; one after it asks SO_ERROR, and backs off while nothing failed.
    @Test func fastOpenWaitsForTheRequestThenProbesTheConnect() {
        var s = Self.tunnel(servers: 1)
        #expect(s.drive(1) == .wait)
        #expect(s.connection.down.handshake == .awaitingRequest)
        #expect(s.connection.down.nextStep == .wait)
        // The up direction writes the request: the down direction resumes and now probes.
        _ = s.drive(0)
        #expect(s.trace.contains { $0.d == 0 && $0.action == .proceedAndResumeOther })
        #expect(s.trace.last { $0.d == 1 }?.action == .probeConnect)
        #expect(s.connection.step(.connectProbed(1, pendingError: nil, overdue: false)) == .waitReply(attempt: 0))
        #expect(s.connection.step(.connectProbed(1, pendingError: nil, overdue: false)) == .waitReply(attempt: 1))
        // The bytes were not held (no Fast Open hold, one server): a failure closes with a reset.
        #expect(s.connection.step(.connectProbed(1, pendingError: .connectionRefused, overdue: false))
                == .close(.refused("tunnel server: \(errnoText(ECONNREFUSED))"), reset: true))
        #expect(s.connection.step(.connectProbed(1, pendingError: nil, overdue: true)) == .close(.connectTimeout, reset: true))
        var t = Self.tunnel(servers: 2)
        #expect(t.connection.step(.connectProbed(1, pendingError: nil, overdue: true)) == .retryElseClose(.connectTimeout))
    }

    /// With Fast Open the request goes out in the SYN, and the handshake is still under way
    /// when the client's FIN arrives: the held up direction passes it on only after the
    /// server's reply (a shutdown in SYN_SENT would disconnect the socket).
    @Test func aHeldRequestPassesTheClientsFINOnOnlyAfterTheReply() {
        var s = Self.tunnel(servers: 1, fastOpen: true)
        s.kernel[ScriptedConnection.upstream].readFault = nil
        s.kernel[ScriptedConnection.client].peerFIN = true
        #expect(s.drive(0) == .wait)
        #expect(s.kernel[ScriptedConnection.upstream].sent.count == 40, "the request went out")
        #expect(!s.kernel[ScriptedConnection.upstream].shutDown, "no shutdown before the handshake is known complete")
        s.kernel[ScriptedConnection.upstream].inbound = Self.bytes(8)
        #expect(s.drive(1) == .checkReply)
        #expect(s.connection.step(.replyChecked(1, .accepted(consumed: 8))) == .replyAccepted(payload: 0, resumeOther: true))
        _ = s.drive(0)
        #expect(s.kernel[ScriptedConnection.upstream].shutDown, "the client's FIN is passed on once the server answered")
    }

    /// The request could not go out (a dead server): another server first.
    @Test func aRequestThatCannotBeSentTriesAnotherServer() {
        var s = Self.tunnel(servers: 2)
        s.kernel[ScriptedConnection.upstream].writeFault = .peerReset(.connectionRefused)
        #expect(s.drive(0) == .retryElseClose(.resetByUpstream(ECONNREFUSED)))
        // Without a SYN yet (no Fast Open cookie), the write waits for the connect instead.
        var t = Self.tunnel(servers: 2)
        t.kernel[ScriptedConnection.upstream].writeFault = .notConnectedYet
        #expect(t.drive(0) == .pollOut)
    }

    /// The held client bytes flow only once the server said yes; what followed the reply is
    /// the destination's first bytes.
    @Test func anAcceptedReplyReleasesTheHeldRequest() {
        var s = Self.tunnel(servers: 2)
        s.kernel[ScriptedConnection.upstream].readFault = nil
        _ = s.drive(0)
        #expect(s.connection.up.nextStep == .wait, "held until the reply")
        s.kernel[ScriptedConnection.upstream].inbound = Self.bytes(30)
        #expect(s.drive(1) == .checkReply)
        #expect(s.connection.step(.replyChecked(1, .needMore)) == .proceed)
        #expect(s.connection.step(.replyChecked(1, .accepted(consumed: 8))) == .replyAccepted(payload: 22, resumeOther: true))
        #expect(s.connection.down.handshake == .none)
        #expect(s.connection.down.prefixEnd - s.connection.down.prefixStart == 22)
        #expect(s.connection.up.handshake == .none)
        #expect(s.connection.up.nextStep == .releaseBuffer)
    }

    @Test func refusalsAndFailuresOfTheServer() {
        var s = Self.tunnel(servers: 2)
        #expect(s.connection.step(.replyChecked(1, .refused(.notAuthorized, retry: true))) == .serverRefused(.notAuthorized, retry: true))
        #expect(s.connection.step(.replyChecked(1, .invalid("bad TLV"))) == .close(.refused("tunnel server reply invalid: bad TLV"), reset: true))
        s.kernel[ScriptedConnection.upstream].readFault = .eof
        s.connection.up.prefixStart = s.connection.up.prefixEnd
        #expect(s.drive(1) == .retryElseClose(.refused("tunnel server closed before replying")))
        var t = Self.tunnel(servers: 1)
        t.connection.up.prefixStart = t.connection.up.prefixEnd
        t.kernel[ScriptedConnection.upstream].readFault = .peerReset(.connectionReset)
        #expect(t.drive(1) == .close(.refused("tunnel server: \(errnoText(ECONNRESET))"), reset: true))
        #expect(t.connection.step(.replyChecked(1, .refused(.notAuthorized, retry: true))) == .serverRefused(.notAuthorized, retry: false),
                "one server: nothing to retry on")
    }

    @Test func aReplyThatFillsTheBufferIsRefused() {
        var s = Self.tunnel(servers: 1)
        s.connection.down.handshake = .readingReply(fill: HandshakeBuffers.size, waits: 0)
        #expect(s.connection.step(.replyChecked(1, .needMore)) == .close(.refused("tunnel reply too long"), reset: true))
    }

    // MARK: The edge

    /// Outcomes are classified once, where the syscall returns; nothing above compares errno.
    @Test func theEdgeClassifiesEveryFailureOnce() {
        #expect(IOOutcome(result: -ENOTCONN) == .notConnectedYet)
        #expect(IOOutcome(returned: -1, errno: EINPROGRESS) == .notConnectedYet)
        #expect(IOOutcome(result: -ENOBUFS) == .shortage(.noBufferSpace))
        #expect(IOOutcome(result: -ENOMEM) == .shortage(.noMemory))
        #expect(IOOutcome(result: -ECONNRESET) == .peerReset(.connectionReset))
        #expect(IOOutcome(result: -ETIMEDOUT) == .peerReset(.timedOut))
        #expect(IOOutcome.notConnectedYet.error == .socketNotConnected)
        #expect(IOOutcome.moved(3).error == nil)
    }

    /// An illegal lifecycle transition stops the process. (A debug build cannot tell
    /// preconditionFailure from assertionFailure; the release build's behaviour is the
    /// former by construction, Connection.move.)
    @Test func anIllegalTransitionStopsTheProcess() async {
        await #expect(processExitsWith: .failure) {
            var c = Connection()
            c.move(.connected)
        }
    }
}
