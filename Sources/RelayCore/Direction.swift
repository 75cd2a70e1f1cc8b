/// One direction of a relayed connection: bytes from `source` go through `pipe` to `sink`.
struct Direction {
    var source: Int32 = -1
    var sink: Int32 = -1
    var pipe = SplicePipe.none
    /// Bytes sitting in the pipe, read from `source` but not yet written to `sink`.
    var inPipe = 0
    var bytes: UInt64 = 0
    /// An operation of this direction is in flight; at most one is.
    var busy = false
    /// The last read found the source empty: wait for readiness before reading again.
    var drained = false
    var sourceEOF = false
    /// EOF was passed on (shutdown(SHUT_WR) on the sink).
    var finished = false
    /// A handshake buffer (HandshakeBuffers index) or -1. Bytes [prefixStart, prefixEnd)
    /// go to the sink before any spliced byte: a header the relay adds, bytes it read while
    /// looking for one, or bytes copied while no pipe could be had.
    var buffer: Int32 = -1
    var prefixStart = 0
    var prefixEnd = 0
    /// How the bytes move: copied, spliced, or copied for good (see Transfer).
    var transfer = Transfer.copying
    /// What the tunnel makes this direction wait for before it relays (gateway side).
    var handshake = Handshake.none
    /// The answer's look-ahead (see DirectionStep.lookAhead): due now, or already done.
    var lookAhead = LookAhead.notYet

    init() {}

    init(source: Int32, sink: Int32) {
        self.source = source
        self.sink = sink
    }

    /// Bytes read but not yet written: a close now would lose them.
    var holdsBytes: Bool { inPipe > 0 || prefixEnd > prefixStart }

    /// What the direction does next, from its state alone (no syscalls): the pump performs
    /// the step, records its outcome, and asks again until a step must wait for the kernel.
    var nextStep: DirectionStep {
        if busy || finished || handshake == .awaitingRequest { return .wait }
        if lookAhead == .due { return .lookAhead }
        if prefixEnd > prefixStart { return .writePrefix }
        if case .failed = lookAhead { return .reportFailure }
        if case .readingReply = handshake { return .readReply }
        if handshake == .holdingForReply { return .wait }
        if buffer >= 0 { return .releaseBuffer }
        if inPipe > 0 { return transfer == .copyOnly ? .drainPipe : .write }
        if sourceEOF { return .passEOF }
        if drained { return pipe.isValid ? .releasePipeAndPoll : .pollIn }
        // A direction splice was refused to holds no pipe once it is empty: it copies from
        // now on, and an idle pipe would count against the pipe budget of healthy ones.
        if transfer == .copyOnly && pipe.isValid { return .releasePipeAndPoll }
        if transfer != .spliced { return .copyRead }
        if !pipe.isValid { return .takePipe }
        return .read
    }
}

/// How a direction moves its bytes.
enum Transfer: Equatable {
    /// Through a small buffer (recv + send), until a read fills it: for requests and short
    /// answers this costs no pipe and, out of an MPTCP socket (which has no splice_read and
    /// copies anyway), no freshly allocated pipe pages.
    case copying
    /// More is coming than a message's worth: source -> pipe -> sink by splice.
    case spliced
    /// splice refused this direction's files (`IOOutcome.unsupported`): copied from now on;
    /// a pipe still holding bytes is emptied by read(2) first.
    case copyOnly
}

/// What a tunnel makes a direction wait for (gateway side). One value, so that the
/// combinations the old separate flags allowed and nothing handled cannot be represented.
enum Handshake: Equatable {
    case none
    /// Down: the server's reply is read off the source before relaying; `fill` bytes of it
    /// are in the buffer. `waits`: times the socket was found not yet connected (Fast Open),
    /// which the re-check backs off with.
    case readingReply(fill: Int, waits: UInt8)
    /// Down: the reply was read for before a Fast Open connect had sent its SYN (the socket
    /// is still closed: a poll would fire at once with POLLHUP). Resumes to `readingReply`
    /// once the other direction has written the request.
    case awaitingRequest
    /// Up, with several servers: once the request is written, keep it (and the client's
    /// first bytes) and read nothing more until the server's reply, so that a refusal can be
    /// retried on another server with the same bytes.
    case holdingForReply
}

/// The look-ahead of an answer's first short read (the down direction only).
enum LookAhead: Equatable {
    case notYet
    /// The first read was short: read once more before writing it.
    case due
    case done
    /// The look-ahead found the source failed: reported once the bytes read before the
    /// failure are written, as plain TCP would have delivered them before the error (as far
    /// as the reset that follows lets them: a close with SO_LINGER 0 drops what the client's
    /// socket has not sent yet, the same race as when the next read finds the failure).
    case failed(IOOutcome)
}

/// The steps of `Direction.nextStep`, in the order they take priority.
enum DirectionStep: Equatable {
    /// An operation is in flight, or EOF was passed on: nothing until a completion.
    case wait
    /// The down direction's first read was short: one more read into the same buffer before
    /// writing it. A server that answers and closes (HTTP with `Connection: close`, most
    /// request-answer protocols) has usually sent its FIN with the answer; found here, the
    /// answer goes out with MSG_MORE and the FIN joins its last segment (one packet and
    /// one poll fewer per connection). Once per direction, so a long exchange of messages
    /// pays the extra read once.
    case lookAhead
    /// Handshake (or copied) bytes go to the sink before any spliced byte.
    case writePrefix
    /// The look-ahead's failure, now that the bytes read before it are written.
    case reportFailure
    /// The tunnel server's reply must be read and checked before relaying.
    case readReply
    /// The handshake buffer is empty and no longer needed.
    case releaseBuffer
    /// Pipe -> sink.
    case write
    /// Splice cannot write the pipe out: its bytes are read into a buffer and sent as a prefix.
    case drainPipe
    /// Source ended and everything was written: shutdown(SHUT_WR) on the sink.
    case passEOF
    /// Idle: the pipe goes back to the pool while the direction waits for input.
    case releasePipeAndPoll
    case pollIn
    /// A direction that has not turned bulk reads into a small buffer (then writes it as a prefix).
    case copyRead
    /// Bytes may be waiting and the direction has no pipe yet.
    case takePipe
    /// Source -> pipe.
    case read
}
