#if canImport(Glibc)
import Glibc
#endif
import SystemPackage
import TunnelProtocol

/// What happened to a relaying connection, as the worker saw it: the outcome of a step a
/// direction performed (decoded once at the syscall edge into an IOOutcome), or the answer
/// to a question the reducer asked.
enum ConnectionEvent: Equatable {
    /// Direction `d` performed `step` and the kernel answered (at once, or as a ring completion).
    case performed(Int, DirectionStep, IOOutcome)
    /// Direction `d`'s reply read found the socket without a connection: SO_ERROR (nil: none)
    /// and whether the connect deadline has passed.
    case connectProbed(Int, pendingError: Errno?, overdue: Bool)
    /// The bytes of the tunnel reply in direction `d`'s buffer, as TunnelCodec read them.
    case replyChecked(Int, ReplyVerdict)
}

/// TunnelCodec.parseReply's answer, without the codec's types.
enum ReplyVerdict: Equatable {
    case needMore
    case accepted(consumed: Int)
    /// The server refused with an RFC 8803 code; `retry`: a refusal of the server's own
    /// (key, limits, resources) that another server may not give.
    case refused(ErrorCode, retry: Bool)
    case invalid(String)
}

/// What the worker does next for a connection. One value per event, so no list is
/// allocated on the data path.
enum ConnectionAction: Equatable {
    /// Ask the direction's `nextStep` again.
    case proceed
    /// As `proceed`, and the other direction, which waited for this one, goes on too.
    case proceedAndResumeOther
    /// Wait for the direction's source to be readable, or its sink writable.
    case pollIn
    case pollOut
    /// Nothing until another event (the other direction's request write, a completion).
    case wait
    /// splice refused this direction's files: it copies from now on (warn once), and goes on.
    case spliceRefused(Errno)
    /// No pipe to be had (descriptors or memory): copy this read through a buffer instead.
    case pipeShortage(Errno)
    /// Bytes of the tunnel reply arrived: check them (TunnelCodec), then `replyChecked`.
    case checkReply
    /// The reply read found the socket unconnected with the request written: read SO_ERROR
    /// and the connect deadline, then `connectProbed`.
    case probeConnect
    /// Look for the reply again after the `attempt`-th back-off step.
    case waitReply(attempt: Int)
    /// The tunnel server took the request: `payload` bytes that followed the reply are the
    /// destination's; the outcome is known (log, count), and the held up direction resumes
    /// when `resumeOther`.
    case replyAccepted(payload: Int, resumeOther: Bool)
    /// A tunnel server failed before the client was sent anything, and the client's bytes are
    /// all still held: try another server when there is one, else close with a reset.
    case retryElseClose(CloseReason)
    /// The server answered with an error code (`retry`: worth another server first, and the
    /// bytes are still held for one).
    case serverRefused(ErrorCode, retry: Bool)
    case close(CloseReason, reset: Bool)
}

extension Connection {
    /// The reducer: one event in, the state moved on, one action out. Pure: no syscalls and
    /// nothing of the worker's, so a test drives a connection event by event without a kernel.
    mutating func step(_ event: ConnectionEvent) -> ConnectionAction {
        switch event {
        case .performed(let d, let step, let outcome):
            return performed(d, step, outcome)
        case .connectProbed(let d, let pendingError, let overdue):
            if let pendingError { return retryElseClose(.refused("tunnel server: \(errnoText(pendingError.rawValue))")) }
            if overdue { return retryElseClose(.connectTimeout) }
            return update(d) { dir in
                guard case .readingReply(let fill, let waits) = dir.handshake else { preconditionFailure("connect probed while not reading a reply") }
                dir.handshake = .readingReply(fill: fill, waits: waits &+ 1)
                return .waitReply(attempt: Int(waits))
            }
        case .replyChecked(let d, let verdict):
            return replyChecked(d, verdict)
        }
    }

    private mutating func performed(_ d: Int, _ step: DirectionStep, _ outcome: IOOutcome) -> ConnectionAction {
        switch step {
        case .wait:
            return .wait
        case .writePrefix:
            guard case .moved(let n) = outcome else { return sinkRefused(d, outcome, retry: d == 0) }
            update(d) { $0.prefixStart += n }
            // The request went out with the SYN: the reply can now be waited for.
            return update(1 - d) { other in
                guard other.handshake == .awaitingRequest else { return .proceed }
                other.handshake = .readingReply(fill: 0, waits: 0)
                return .proceedAndResumeOther
            }
        case .readReply:
            return replyRead(d, outcome)
        case .releaseBuffer:
            update(d) { dir in
                dir.buffer = -1
                dir.prefixStart = 0
                dir.prefixEnd = 0
            }
            return .proceed
        case .write:
            switch outcome {
            case .moved(let n):
                update(d) { $0.inPipe -= n }
                return .proceed
            case .unsupported(let e):
                // The bytes stay in the pipe; drainPipe copies them out next.
                update(d) { $0.transfer = .copyOnly }
                return .spliceRefused(e)
            case .notConnectedYet:
                // A spliced direction's sink was connected long ago: this socket is gone.
                return .close(d == 0 ? .resetByUpstream(ENOTCONN) : .resetByClient(ENOTCONN), reset: true)
            default:
                return sinkRefused(d, outcome, retry: false)
            }
        case .drainPipe:
            // The pipe is the relay's own: failing to read it is a resource problem, not a peer's.
            guard case .moved(let n) = outcome else { return .close(.resources(outcome.error?.rawValue ?? EIO), reset: true) }
            update(d) { dir in
                dir.inPipe -= n
                dir.prefixStart = 0
                dir.prefixEnd = n
            }
            return .proceed
        case .passEOF:
            update(d) { dir in
                dir.finished = true
                dir.pipe = .none
            }
            return up.finished && down.finished ? .close(.completed, reset: false) : .proceed
        case .releasePipeAndPoll:
            update(d) { $0.pipe = .none }
            return .pollIn
        case .pollIn:
            return .pollIn
        case .copyRead:
            guard case .moved(let n) = outcome else { return sourceRead(d, outcome) }
            update(d) { dir in
                dir.prefixStart = 0
                dir.prefixEnd = n
                dir.drained = n < HandshakeBuffers.size
                // A full buffer: more is coming than a message's worth. Splice from now on.
                if n == HandshakeBuffers.size && dir.transfer == .copying { dir.transfer = .spliced }
                if d == 1 && dir.lookAhead == .notYet { dir.lookAhead = dir.drained && dir.handshake == .none ? .due : .done }
            }
            return .proceed
        case .lookAhead:
            update(d) { dir in
                dir.lookAhead = .done
                switch outcome {
                case .moved(let n):
                    dir.prefixEnd += n
                    dir.drained = dir.prefixEnd < HandshakeBuffers.size
                    // As a full first read would have: more is coming than a message's worth.
                    if !dir.drained && dir.transfer == .copying { dir.transfer = .spliced }
                case .eof:
                    dir.sourceEOF = true
                case .wouldBlock:
                    break
                case .notConnectedYet, .unsupported, .shortage, .peerReset:
                    dir.lookAhead = .failed(outcome)
                }
            }
            return .proceed
        case .reportFailure:
            update(d) { $0.lookAhead = .done }
            return sourceRead(d, outcome)
        case .takePipe:
            switch outcome {
            case .moved: return .proceed
            case .shortage(let e): return .pipeShortage(e)
            default: return .close(.resources(outcome.error?.rawValue ?? EIO), reset: true)
            }
        case .read:
            guard case .moved(let n) = outcome else { return sourceRead(d, outcome) }
            update(d) { dir in
                dir.inPipe += n
                // A read shorter than the pipe most likely emptied the socket: poll before the next.
                dir.drained = n < dir.pipe.capacity
            }
            return .proceed
        }
    }

    /// A read that moved nothing: EOF, empty, or the source failing.
    private mutating func sourceRead(_ d: Int, _ outcome: IOOutcome) -> ConnectionAction {
        switch outcome {
        case .moved:
            return .proceed
        case .eof:
            update(d) { $0.sourceEOF = true }
            return .proceed
        case .wouldBlock:
            update(d) { $0.drained = true }
            return .proceed
        case .unsupported(let e):
            update(d) { $0.transfer = .copyOnly }
            return .spliceRefused(e)
        case .shortage(let e):
            return .close(.resources(e.rawValue), reset: true)
        case .notConnectedYet, .peerReset:
            let code = outcome.error?.rawValue ?? EIO
            return .close(d == 0 ? .resetByClient(code) : .resetByUpstream(code), reset: true)
        }
    }

    /// A write to the sink moved nothing. Would-block (or 0), or a socket that is not
    /// connected yet (a Fast Open SYN without a cookie): wait for POLLOUT and read nothing
    /// meanwhile. A failure is the sink's peer failing: reset both sides (after another
    /// server, when `retry` and there is one: the request could not go out).
    private func sinkRefused(_ d: Int, _ outcome: IOOutcome, retry: Bool) -> ConnectionAction {
        switch outcome {
        case .moved, .eof, .wouldBlock, .notConnectedYet:
            return .pollOut
        case .shortage(let e):
            return .close(.resources(e.rawValue), reset: true)
        case .unsupported(let e), .peerReset(let e):
            let reason: CloseReason = d == 0 ? .resetByUpstream(e.rawValue) : .resetByClient(e.rawValue)
            return retry ? retryElseClose(reason) : .close(reason, reset: true)
        }
    }

    /// Part of a tunnel reply read off the upstream.
    private mutating func replyRead(_ d: Int, _ outcome: IOOutcome) -> ConnectionAction {
        switch outcome {
        case .moved(let n):
            return update(d) { dir in
                guard case .readingReply(let fill, let waits) = dir.handshake else { preconditionFailure("reply read while not reading one") }
                dir.handshake = .readingReply(fill: fill + n, waits: waits)
                return .checkReply
            }
        case .wouldBlock:
            return .pollIn
        case .eof:
            return retryElseClose(.refused("tunnel server closed before replying"))
        case .notConnectedYet where withDirection(1 - d, { $0.prefixEnd > $0.prefixStart }):
            // A Fast Open socket sends its SYN with the first write, which the other direction
            // has not made yet: wait for it (the write resumes this direction).
            update(d) { $0.handshake = .awaitingRequest }
            return .wait
        case .notConnectedYet:
            // The request went out (with the SYN, TCP_FASTOPEN_CONNECT), yet the socket says
            // it has no connection: a poll would fire at once with POLLHUP and spin. Whether
            // the connect failed is SO_ERROR's to say; else look again after a back-off. (On
            // Linux 6.18 every socket seen here had been shut down in SYN_SENT, which is why
            // a Fast Open request is now held until the reply: Worker+Tunnel.)
            return .probeConnect
        case .shortage(let e):
            // This host's shortage, not the server's: another server would not help.
            return .close(.resources(e.rawValue), reset: true)
        case .unsupported(let e), .peerReset(let e):
            return retryElseClose(.refused("tunnel server: \(errnoText(e.rawValue))"))
        }
    }

    private mutating func replyChecked(_ d: Int, _ verdict: ReplyVerdict) -> ConnectionAction {
        switch verdict {
        case .needMore:
            let full = withDirection(d) { dir -> Bool in
                if case .readingReply(let fill, _) = dir.handshake { return fill == HandshakeBuffers.size }
                return false
            }
            return full ? .close(.refused("tunnel reply too long"), reset: true) : .proceed
        case .accepted(let consumed):
            let fill = update(d) { dir -> Int in
                guard case .readingReply(let fill, _) = dir.handshake else { preconditionFailure("reply accepted while not reading one") }
                dir.handshake = .none
                dir.prefixStart = consumed
                dir.prefixEnd = fill
                return fill
            }
            // The server took the request: the client's bytes flow from now on.
            let resume = update(1 - d) { other -> Bool in
                guard other.handshake == .holdingForReply else { return false }
                other.handshake = .none
                return true
            }
            return .replyAccepted(payload: fill - consumed, resumeOther: resume)
        case .refused(let code, let retry):
            return .serverRefused(code, retry: retry && up.handshake == .holdingForReply)
        case .invalid(let text):
            return .close(.refused("tunnel server reply invalid: \(text)"), reset: true)
        }
    }

    /// A tunnel server failed before the client was sent anything. Another server can take
    /// the same bytes only while the up direction still holds them (several servers).
    private func retryElseClose(_ reason: CloseReason) -> ConnectionAction {
        up.handshake == .holdingForReply ? .retryElseClose(reason) : .close(reason, reset: true)
    }

    @inline(__always) @discardableResult
    mutating func update<R>(_ d: Int, _ body: (inout Direction) -> R) -> R {
        d == 0 ? body(&up) : body(&down)
    }

    @inline(__always)
    func withDirection<R>(_ d: Int, _ body: (Direction) -> R) -> R {
        d == 0 ? body(up) : body(down)
    }
}
