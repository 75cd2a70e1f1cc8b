#if canImport(Glibc)
import Glibc
#endif
import SystemPackage
@testable import RelayCore

/// A kernel a test scripts: sockets are byte queues with a peer behind them, pipes are byte
/// queues, and any call can be made to answer what the test wants (a reset, a refused
/// splice, a socket not connected yet). What the relay sent and shut down is recorded.
final class ScriptedStreamKernel: StreamKernel {
    struct FakeSocket {
        /// Bytes the peer sent, not read yet.
        var inbound: [UInt8] = []
        /// The peer sent FIN after `inbound`.
        var peerFIN = false
        /// What reads answer once `inbound` is empty (instead of wouldBlock/eof), e.g. a reset.
        var readFault: IOOutcome? = nil
        /// Bytes the relay sent to the peer.
        var sent: [UInt8] = []
        /// Bytes the send buffer takes before writes would block.
        var room = Int.max
        /// What writes answer (instead of moving bytes), e.g. notConnectedYet or a reset.
        var writeFault: IOOutcome? = nil
        var shutDown = false
        /// The last send asked for MSG_MORE (a FIN to follow at once).
        var lastSendMore = false
    }

    var sockets: [Int32: FakeSocket] = [:]
    /// Pipes by read end; the write end is read end + 1.
    var pipes: [Int32: [UInt8]] = [:]
    var nextPipe: Int32 = 100
    var pipeCapacity = 4096
    /// What splice answers, when set (e.g. `.unsupported(.invalidArgument)`).
    var spliceFault: IOOutcome? = nil
    var pipeFault: Errno? = nil
    var pipesGiven = 0
    var pipesTaken = 0

    subscript(fd: Int32) -> FakeSocket {
        get { sockets[fd, default: FakeSocket()] }
        set { sockets[fd] = newValue }
    }

    private func isPipe(_ fd: Int32) -> Bool { fd >= 100 }

    private func take(from fd: Int32, count: Int) -> [UInt8]? {
        if isPipe(fd) {
            let n = min(count, pipes[fd, default: []].count)
            let bytes = Array(pipes[fd, default: []].prefix(n))
            pipes[fd, default: []].removeFirst(n)
            return n > 0 ? bytes : nil
        }
        let n = min(count, self[fd].inbound.count)
        guard n > 0 else { return nil }
        let bytes = Array(self[fd].inbound.prefix(n))
        self[fd].inbound.removeFirst(n)
        return bytes
    }

    /// What an empty source answers.
    private func emptyRead(_ fd: Int32) -> IOOutcome {
        if let fault = self[fd].readFault { return fault }
        return self[fd].peerFIN ? .eof : .wouldBlock
    }

    /// Bytes to a socket (within its room) or to a pipe (whole): how many went.
    private func put(_ bytes: [UInt8], to fd: Int32) -> Int {
        if isPipe(fd) {
            pipes[fd - 1, default: []] += bytes
            return bytes.count
        }
        let n = min(bytes.count, self[fd].room)
        self[fd].sent += bytes.prefix(n)
        if self[fd].room != Int.max { self[fd].room -= n }
        return n
    }

    func send(_ fd: Int32, _ bytes: UnsafeRawPointer, count: Int, more: Bool) -> IOOutcome {
        if let fault = self[fd].writeFault { return fault }
        if self[fd].room == 0 { return .wouldBlock }
        let n = put(Array(UnsafeRawBufferPointer(start: bytes, count: count)), to: fd)
        if n > 0 { self[fd].lastSendMore = more }
        return .moved(n)
    }

    func receive(_ fd: Int32, into bytes: UnsafeMutableRawPointer, count: Int) -> IOOutcome {
        guard let got = take(from: fd, count: count) else { return emptyRead(fd) }
        got.withUnsafeBytes { bytes.copyMemory(from: $0.baseAddress!, byteCount: got.count) }
        return .moved(got.count)
    }

    func splice(from source: Int32, to sink: Int32, count: Int) -> IOOutcome {
        if let spliceFault { return spliceFault }
        if !isPipe(sink) {
            if let fault = self[sink].writeFault { return fault }
            if self[sink].room == 0 { return .wouldBlock }
            let n = min(count, self[sink].room)
            guard let got = take(from: source, count: n) else { return .wouldBlock }
            return .moved(put(got, to: sink))
        }
        guard let got = take(from: source, count: count) else { return emptyRead(source) }
        return .moved(put(got, to: sink))
    }

    func readPipe(_ fd: Int32, into bytes: UnsafeMutableRawPointer, count: Int) -> IOOutcome {
        receive(fd, into: bytes, count: count)
    }

    func shutdownWrite(_ fd: Int32) { self[fd].shutDown = true }

    /// Whether a poll for reading `fd` would fire now.
    func readable(_ fd: Int32) -> Bool { !self[fd].inbound.isEmpty || self[fd].peerFIN || self[fd].readFault != nil }

    /// Whether a poll for writing `fd` would fire now (not before the socket connects).
    func writable(_ fd: Int32) -> Bool {
        guard let fault = self[fd].writeFault else { return self[fd].room > 0 }
        return fault != .notConnectedYet
    }

    func takePipe() -> Result<SplicePipe, Errno> {
        if let pipeFault { return .failure(pipeFault) }
        defer { nextPipe += 2; pipesTaken += 1 }
        pipes[nextPipe] = []
        return .success(SplicePipe(readEnd: nextPipe, writeEnd: nextPipe + 1, capacity: pipeCapacity))
    }

    func givePipe(_ pipe: SplicePipe, empty: Bool) {
        if pipe.isValid { pipesGiven += 1 }
    }
}

/// A relaying connection between client fd 10 and upstream fd 11, driven against a scripted
/// kernel the way Worker.pump drives a real one: next step, perform, reduce, until an action
/// other than going on.
struct ScriptedConnection {
    static let client: Int32 = 10
    static let upstream: Int32 = 11
    var connection = Connection()
    let kernel = ScriptedStreamKernel()
    let buffers = HandshakeBuffers()
    /// Every step performed, with what the kernel answered and what the reducer said.
    var trace: [(d: Int, step: DirectionStep, outcome: IOOutcome, action: ConnectionAction)] = []

    init() {
        connection.move(.accept(readsHeader: false))
        connection.move(.connected)
        connection.up = Direction(source: Self.client, sink: Self.upstream)
        connection.down = Direction(source: Self.upstream, sink: Self.client)
    }

    /// Runs direction `d` until it must wait; returns the action that stopped it.
    /// `.proceedAndResumeOther` and `.spliceRefused` go on, as the worker does; a poll the
    /// scripted kernel would answer at once is answered (as the ring's completion would be).
    @discardableResult
    mutating func drive(_ d: Int, limit: Int = 10_000) -> ConnectionAction {
        for _ in 0..<limit {
            let step = connection.withDirection(d) { $0.nextStep }
            guard let outcome = connection.perform(d, step, kernel: kernel, buffers: buffers) else { return .wait }
            let action = connection.step(.performed(d, step, outcome))
            trace.append((d, step, outcome, action))
            switch action {
            case .proceed, .spliceRefused: continue
            case .pollIn where kernel.readable(connection.withDirection(d) { $0.source }):
                connection.update(d) { $0.drained = false }
            case .pollOut where kernel.writable(connection.withDirection(d) { $0.sink }):
                continue
            case .proceedAndResumeOther:
                // What stops the other direction is the worker's to carry out, as here.
                switch drive(1 - d) {
                case .pollIn, .pollOut, .wait: continue
                case let other: return other
                }
            default: return action
            }
        }
        return .wait
    }

    func steps(_ d: Int) -> [DirectionStep] { trace.filter { $0.d == d }.map(\.step) }

    /// Buffers and pipes the connection holds now, as Worker.finish would give them back.
    var holdings: (buffers: Int, pipes: Int) {
        (buffers.outstanding, kernel.pipesTaken - kernel.pipesGiven)
    }
}
