#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import MPTCPSocket
import URing
import SystemPackage

/// The data path: per direction, splice source -> pipe, then pipe -> sink, with the
/// ring reporting readiness. A short transfer is normal; "would block" means "wait for poll".
/// What to do next is `Direction.nextStep` (pure); this file performs the steps.
extension Worker {
    @inline(__always)
    func withDirection<R>(_ c: UnsafeMutablePointer<Connection>, _ d: Int, _ body: (inout Direction) -> R) -> R {
        d == 0 ? body(&c.pointee.up) : body(&c.pointee.down)
    }

    /// Moves a direction forward until it must wait for the kernel.
    func pump(_ slot: Int32, _ d: Int) {
        let c = table[slot]
        while c.pointee.phase == .relaying {
            let dir = d == 0 ? c.pointee.up : c.pointee.down
            switch dir.nextStep {
            case .wait:
                return
            case .writePrefix:
                let outcome = DataPath.send(dir.sink, handshakeBuffers.pointer(dir.buffer) + dir.prefixStart, count: dir.prefixEnd - dir.prefixStart)
                if !prefixWritten(slot, d, outcome) { return }
            case .readReply:
                let outcome = DataPath.receive(dir.source, into: handshakeBuffers.pointer(dir.buffer) + dir.bufferFill, count: HandshakeBuffers.size - dir.bufferFill)
                if !replyRead(slot, d, outcome) { return }
            case .releaseBuffer:
                handshakeBuffers.give(dir.buffer)
                withDirection(c, d) { $0.buffer = -1; $0.prefixStart = 0; $0.prefixEnd = 0; $0.bufferFill = 0 }
            case .write:
                if settings.spliceEngine == .ring {
                    submit(.spliceOut, slot, d) { ring.splice(from: dir.pipe.readEnd, to: dir.sink, length: UInt32(dir.inPipe), flags: spliceFlags, userData: $0) }
                    return
                }
                if !writeCompleted(slot, d, DataPath.splice(from: dir.pipe.readEnd, to: dir.sink, count: dir.inPipe, flags: spliceFlags)) { return }
            case .drainPipe:
                if !drainPipe(slot, d) { return }
            case .passEOF:
                passEOF(slot, d, dir.sink)
                return
            case .releasePipeAndPoll:
                // Idle direction: its pipe goes back to the pool while it waits.
                pipes.give(dir.pipe, empty: true)
                withDirection(c, d) { $0.pipe = .none }
                arm(.pollIn, slot, d, dir.source, events: UInt32(POLLIN) | 0x2000 /* POLLRDHUP */)
                return
            case .pollIn:
                arm(.pollIn, slot, d, dir.source, events: UInt32(POLLIN) | 0x2000 /* POLLRDHUP */)
                return
            case .copyRead:
                if !copyThroughBuffer(slot, d) { return }
            case .takePipe:
                do throws(Errno) {
                    let pipe = try pipes.take()
                    withDirection(c, d) { $0.pipe = pipe }
                    if pipe.capacity < pipes.size { warnPipeShortfall(pipe.capacity) }
                } catch where error.isResourceShortage {
                    // No descriptors for a pipe: this connection is healthy, so its bytes go
                    // through a small buffer instead (a copy) until a pipe can be had again.
                    if error.isDescriptorShortage { pauseAccepting(error) }
                    if !copyThroughBuffer(slot, d) { return }
                } catch {
                    beginClose(slot, reason: .resources(error.rawValue), reset: true)
                    return
                }
            case .read:
                if settings.spliceEngine == .ring {
                    submit(.spliceIn, slot, d) { ring.splice(from: dir.source, to: dir.pipe.writeEnd, length: UInt32(dir.pipe.capacity), flags: spliceFlags, userData: $0) }
                    return
                }
                if !readCompleted(slot, d, DataPath.splice(from: dir.source, to: dir.pipe.writeEnd, count: dir.pipe.capacity, flags: spliceFlags)) { return }
            }
        }
    }

    /// The kernel granted a smaller pipe than asked: once per process, say so and why.
    private func warnPipeShortfall(_ granted: Int) {
        guard !limits.pipeShortfallWarned.exchange(true, ordering: .relaxed) else { return }
        logger.warning("the kernel grants \(granted)-byte pipes, not the \(pipes.size) asked (pipe_size): bursts move in smaller steps. Unprivileged users get at most fs.pipe-user-pages-soft pages of pipe in all (and fs.pipe-max-size per pipe): raise them (sysctl), give the relay CAP_SYS_RESOURCE, or set pipe_memory / pipe_size lower")
    }

    /// The copy path beside splice: read what the source has into a handshake buffer, which
    /// the next steps write to the sink as a prefix. False when the direction must stop here.
    private func copyThroughBuffer(_ slot: Int32, _ d: Int) -> Bool {
        let c = table[slot]
        let buffer = handshakeBuffers.take()
        let source = withDirection(c, d) { $0.source }
        let outcome = DataPath.receive(source, into: handshakeBuffers.pointer(buffer), count: HandshakeBuffers.size)
        if case .moved(let n) = outcome {
            c.pointee.lastActive = now
            countBytes(c, d, n)
            withDirection(c, d) { dir in
                dir.buffer = buffer
                dir.prefixStart = 0
                dir.prefixEnd = n
                dir.drained = n < HandshakeBuffers.size
                // A full buffer: more is coming than a message's worth. Splice from now on.
                if n == HandshakeBuffers.size { dir.bulk = true }
            }
            return true
        }
        handshakeBuffers.give(buffer)
        return sourceRead(slot, d, outcome)
    }

    /// Result of sending handshake bytes (a header, bytes read along with one, or copied bytes).
    private func prefixWritten(_ slot: Int32, _ d: Int, _ outcome: IOOutcome) -> Bool {
        let c = table[slot]
        if case .moved(let n) = outcome {
            c.pointee.lastActive = now
            withDirection(c, d) { $0.prefixStart += n }
            if withDirection(c, 1 - d, { $0.awaitingConnect }) {
                // The request went out with the SYN: the reply can now be waited for.
                withDirection(c, 1 - d) { $0.awaitingConnect = false }
                pump(slot, 1 - d)
            }
            return true
        }
        // EINPROGRESS/ENOTCONN: a Fast Open socket without a cookie sent a plain SYN; write once connected.
        if case .failed(let e) = outcome, e == .nowInProgress || e == .socketNotConnected {
            sinkBlocked(slot, d)
            return false
        }
        // The request could not go out (a dead server refuses the SYN): another server, if any.
        if d == 0, case .failed(let e) = outcome, retryOnAnotherServer(slot, why: "failed: \(errnoText(e.rawValue))") { return false }
        sinkRefused(slot, d, outcome)
        return false
    }

    /// Result of reading part of a tunnel reply off the upstream.
    private func replyRead(_ slot: Int32, _ d: Int, _ outcome: IOOutcome) -> Bool {
        let c = table[slot]
        switch outcome {
        case .moved(let n):
            withDirection(c, d) { $0.bufferFill += n }
            return tunnelReplyProgress(slot, d)
        case .wouldBlock:
            let source = withDirection(c, d) { $0.source }
            arm(.pollIn, slot, d, source, events: UInt32(POLLIN))
            return false
        case .eof:
            if retryOnAnotherServer(slot, why: "closed before replying") { return false }
            beginClose(slot, reason: .refused("tunnel server closed before replying"), reset: true)
            return false
        case .failed(let e) where e == .socketNotConnected && withDirection(c, 1 - d, { $0.prefixEnd > $0.prefixStart }):
            // A Fast Open socket sends its SYN with the first write, which the other direction
            // has not made yet: wait for it (prefixWritten resumes this direction).
            withDirection(c, d) { $0.awaitingConnect = true }
            return false
        case .failed(let e) where e == .socketNotConnected:
            // The request went out with the SYN (TCP_FASTOPEN_CONNECT), and until the SYN-ACK
            // an MPTCP socket reports TCP_CLOSE: recv says ENOTCONN, and poll reports POLLHUP at
            // once, so a poll would spin. Nothing failed while SO_ERROR is 0 (reading it clears
            // it, so it is read once, here): look again shortly, backing off 2 ms to 64 ms,
            // until the connect timeout. Measured before this (Linux 6.18): 19-30 of ~460
            // short tunnelled connections reset, every one 0-1 ms after the dial, state 7.
            let pending = Socket.pendingError(FileDescriptor(rawValue: withDirection(c, d) { $0.source }))
            if pending != 0 {
                let cause = Errno(rawValue: pending)
                if retryOnAnotherServer(slot, why: "failed: \(errnoText(cause.rawValue))") { return false }
                beginClose(slot, reason: .refused("tunnel server: \(errnoText(cause.rawValue))"), reset: true)
                return false
            }
            if settings.connectTimeout > 0, Self.preciseNanoseconds() - c.pointee.dialedAt > nanoseconds(settings.connectTimeout) {
                counters.add(.connectFailures, 1)
                if retryOnAnotherServer(slot, why: "no answer within connect_timeout") { return false }
                beginClose(slot, reason: .connectTimeout, reset: true)
                return false
            }
            let attempt = withDirection(c, d) { dir -> Int in
                defer { dir.replyWaits = dir.replyWaits &+ 1 }
                return Int(dir.replyWaits)
            }
            submit(.replyWait, slot, d) { ring.timeout(replyWaitSpecs + min(attempt, Self.replyWaitSteps - 1), userData: $0) }
            return false
        case .failed(let e), .unsupported(let e):
            if retryOnAnotherServer(slot, why: "failed: \(errnoText(e.rawValue))") { return false }
            beginClose(slot, reason: .refused("tunnel server: \(errnoText(e.rawValue))"), reset: true)
            return false
        }
    }

    /// Result of a source -> pipe splice; false when the direction must stop here.
    func readCompleted(_ slot: Int32, _ d: Int, _ outcome: IOOutcome) -> Bool {
        let c = table[slot]
        if case .moved(let n) = outcome {
            c.pointee.lastActive = now
            countBytes(c, d, n)
            withDirection(c, d) { dir in
                dir.inPipe += n
                // A read shorter than the pipe most likely emptied the socket: poll before the next.
                dir.drained = n < dir.pipe.capacity
            }
            return true
        }
        return sourceRead(slot, d, outcome)
    }

    /// A read that moved nothing: EOF, empty, or the source failing.
    private func sourceRead(_ slot: Int32, _ d: Int, _ outcome: IOOutcome) -> Bool {
        let c = table[slot]
        switch outcome {
        case .moved: return true
        case .eof:
            withDirection(c, d) { $0.sourceEOF = true }
            return true
        case .wouldBlock:
            withDirection(c, d) { $0.drained = true }
            return true
        case .unsupported(let e):
            spliceRefused(slot, d, e)
            return true
        case .failed(let e):
            beginClose(slot, reason: d == 0 ? .resetByClient(e.rawValue) : .resetByUpstream(e.rawValue), reset: true)
            return false
        }
    }

    /// Splice will not move this direction's bytes (a seccomp filter, an odd socket): the
    /// connection is healthy, so it copies from now on instead of being reset.
    private func spliceRefused(_ slot: Int32, _ d: Int, _ error: Errno) {
        withDirection(table[slot], d) { $0.copyOnly = true }
        if !limits.spliceRefusedWarned.exchange(true, ordering: .relaxed) {
            logger.warning("splice refused (\(errnoText(error.rawValue))): connections that meet this copy through a buffer instead (more CPU per byte). A seccomp filter or a container profile that blocks splice(2) does this; allow splice, or run with splice = \"inline\" to rule out io_uring's splice")
        }
    }

    /// The copy path's way out of a pipe that splice cannot write: up to a buffer's worth of
    /// its bytes become the direction's prefix. False when the direction must stop here.
    private func drainPipe(_ slot: Int32, _ d: Int) -> Bool {
        let c = table[slot]
        let buffer = handshakeBuffers.take()
        let (readEnd, inPipe) = withDirection(c, d) { ($0.pipe.readEnd, $0.inPipe) }
        let outcome = DataPath.read(readEnd, into: handshakeBuffers.pointer(buffer), count: min(inPipe, HandshakeBuffers.size))
        guard case .moved(let n) = outcome else {
            // The pipe is the relay's own: failing to read it is a resource problem, not a peer's.
            handshakeBuffers.give(buffer)
            if case .failed(let e) = outcome { beginClose(slot, reason: .resources(e.rawValue), reset: true) }
            else { beginClose(slot, reason: .resources(EIO), reset: true) }
            return false
        }
        withDirection(c, d) { dir in
            dir.inPipe -= n
            dir.buffer = buffer
            dir.prefixStart = 0
            dir.prefixEnd = n
        }
        return true
    }

    /// Result of a pipe -> sink splice; false when the direction must stop here.
    func writeCompleted(_ slot: Int32, _ d: Int, _ outcome: IOOutcome) -> Bool {
        let c = table[slot]
        if case .moved(let n) = outcome {
            c.pointee.lastActive = now
            withDirection(c, d) { $0.inPipe -= n }
            return true
        }
        if case .unsupported(let e) = outcome {
            // The bytes stay in the pipe; drainPipe copies them out next.
            spliceRefused(slot, d, e)
            return true
        }
        sinkRefused(slot, d, outcome)
        return false
    }

    /// A write to the sink moved nothing. Would-block (or 0) means its send buffer is full:
    /// backpressure, so wait for POLLOUT and read nothing meanwhile. A failure is the sink's
    /// peer failing: reset both sides.
    private func sinkRefused(_ slot: Int32, _ d: Int, _ outcome: IOOutcome) {
        switch outcome {
        case .moved, .eof, .wouldBlock:
            sinkBlocked(slot, d)
        case .failed(let e), .unsupported(let e):
            beginClose(slot, reason: d == 0 ? .resetByUpstream(e.rawValue) : .resetByClient(e.rawValue), reset: true)
        }
    }

    private func sinkBlocked(_ slot: Int32, _ d: Int) {
        let sink = withDirection(table[slot], d) { $0.sink }
        arm(.pollOut, slot, d, sink, events: UInt32(POLLOUT))
    }

    /// The source sent FIN and the pipe is empty: pass the half-close on with shutdown(SHUT_WR).
    private func passEOF(_ slot: Int32, _ d: Int, _ sink: Int32) {
        let c = table[slot]
        if c.pointee.subflows == 0 { recordSubflows(c) }
        // The last direction to end needs no shutdown: the close that follows sends the FIN
        // (nothing is left unread on that socket: its own direction already saw EOF).
        if !withDirection(c, 1 - d, { $0.finished }) { shutdown(sink, Int32(SHUT_WR)) }
        withDirection(c, d) { dir in
            dir.finished = true
            pipes.give(dir.pipe, empty: true)
            dir.pipe = .none
        }
        if c.pointee.up.finished && c.pointee.down.finished {
            beginClose(slot, reason: .completed, reset: false)
        }
    }

    func arm(_ kind: OperationToken.Kind, _ slot: Int32, _ d: Int, _ fd: Int32, events: UInt32) {
        submit(kind, slot, d) { ring.poll(fd, events: events, userData: $0) }
    }

    @inline(__always)
    private func submit(_ kind: OperationToken.Kind, _ slot: Int32, _ d: Int, _ prepare: (UInt64) -> Void) {
        let c = table[slot]
        prepare(OperationToken(kind, index: slot, direction: d, generation: c.pointee.generation).raw)
        c.pointee.pending += 1
        withDirection(c, d) { $0.busy = true }
    }
}
