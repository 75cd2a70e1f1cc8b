#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import MPTCPSocket
import URing
import SystemPackage

/// The data path's loop: per direction, what to do next is `Direction.nextStep` (pure), the
/// step runs against the kernel (`Connection.perform`, the syscall edge), the reducer takes
/// its outcome (`Connection.step`, pure), and `carryOut` does what the reducer answers: arm a
/// poll, submit a ring splice, close, retry on another server. A short transfer is normal;
/// "would block" means "wait for poll".
extension Worker {
    @inline(__always)
    func withDirection<R>(_ c: UnsafeMutablePointer<Connection>, _ d: Int, _ body: (inout Direction) -> R) -> R {
        c.pointee.update(d, body)
    }

    /// A step moved bytes: the connection is active, and bytes read from the source count
    /// (the connection's own total and the live ones a scrape reads).
    @inline(__always)
    private func noteProgress(_ c: UnsafeMutablePointer<Connection>, _ d: Int, _ step: DirectionStep, _ outcome: IOOutcome) {
        guard case .moved(let n) = outcome, n > 0 else { return }
        switch step {
        case .read, .copyRead, .lookAhead:
            c.pointee.lastActive = now
            countBytes(c, d, n)
        case .write, .writePrefix, .drainPipe:
            c.pointee.lastActive = now
        case .wait, .readReply, .releaseBuffer, .passEOF, .releasePipeAndPoll, .pollIn, .takePipe, .reportFailure:
            break
        }
    }

    /// Moves a direction forward until it must wait for the kernel: the direction says its
    /// next step (`Direction.nextStep`), the step is performed against the kernel
    /// (`Connection.perform`), the reducer takes the outcome (`Connection.step`), and this
    /// file carries out the action it answers.
    func pump(_ slot: Int32, _ d: Int) {
        let c = table[slot]
        let ringSplices = settings.spliceEngine == .ring
        while c.pointee.phase == .relaying {
            let step = withDirection(c, d) { $0.nextStep }
            if step == .passEOF { recordSubflows(c) }
            guard let outcome = c.pointee.perform(d, step, kernel: WorkerKernel(worker: self), buffers: handshakeBuffers, ringSplices: ringSplices) else {
                if step == .read || step == .write { submitSplice(slot, d, step) }
                return
            }
            noteProgress(c, d, step, outcome)
            if !carryOut(slot, d, c.pointee.step(.performed(d, step, outcome))) { return }
        }
    }

    /// A ring splice completed: the reducer takes its outcome as it takes a syscall's.
    func spliceCompleted(_ slot: Int32, _ d: Int, _ step: DirectionStep, _ outcome: IOOutcome) {
        let c = table[slot]
        noteProgress(c, d, step, outcome)
        if carryOut(slot, d, c.pointee.step(.performed(d, step, outcome))) { pump(slot, d) }
    }

    private func submitSplice(_ slot: Int32, _ d: Int, _ step: DirectionStep) {
        let dir = withDirection(table[slot], d) { $0 }
        if step == .read {
            submit(.spliceIn, slot, d) { ring.splice(from: dir.source, to: dir.pipe.writeEnd, length: UInt32(dir.pipe.capacity), flags: spliceFlags, userData: $0) }
        } else {
            submit(.spliceOut, slot, d) { ring.splice(from: dir.pipe.readEnd, to: dir.sink, length: UInt32(dir.inPipe), flags: spliceFlags, userData: $0) }
        }
    }

    /// Carries out what the reducer answered; true when direction `d` goes on.
    func carryOut(_ slot: Int32, _ d: Int, _ action: ConnectionAction) -> Bool {
        let c = table[slot]
        switch action {
        case .proceed:
            return true
        case .proceedAndResumeOther:
            pump(slot, 1 - d)
            return c.pointee.phase == .relaying
        case .pollIn:
            let source = withDirection(c, d) { $0.source }
            arm(.pollIn, slot, d, source, events: UInt32(POLLIN) | 0x2000 /* POLLRDHUP */)
            return false
        case .pollOut:
            let sink = withDirection(c, d) { $0.sink }
            arm(.pollOut, slot, d, sink, events: UInt32(POLLOUT))
            return false
        case .wait:
            return false
        case .spliceRefused(let e):
            warnSpliceRefused(e)
            return true
        case .pipeShortage(let e):
            // No descriptors for a pipe: this connection is healthy, so its bytes go through a
            // small buffer instead (a copy) until a pipe can be had again.
            if e.isDescriptorShortage { pauseAccepting(e) }
            guard let outcome = c.pointee.perform(d, .copyRead, kernel: WorkerKernel(worker: self), buffers: handshakeBuffers) else { return false }
            noteProgress(c, d, .copyRead, outcome)
            return carryOut(slot, d, c.pointee.step(.performed(d, .copyRead, outcome)))
        case .checkReply:
            return carryOut(slot, d, c.pointee.step(.replyChecked(d, checkTunnelReply(c, d))))
        case .probeConnect:
            // A Fast Open socket with its request written and still no connection: SO_ERROR
            // says whether the connect failed (reading it clears it, so it is read once, here);
            // else the reply is looked for again, backing off, until the connect timeout.
            let pending = Socket.pendingError(FileDescriptor(rawValue: withDirection(c, d) { $0.source }))
            let overdue = c.pointee.replyOverdue(at: Self.preciseNanoseconds())
            if overdue && pending == 0 { counters.add(.connectFailures, 1) }
            return carryOut(slot, d, c.pointee.step(.connectProbed(d, pendingError: pending != 0 ? Errno(rawValue: pending) : nil, overdue: overdue)))
        case .waitReply(let attempt):
            submit(.replyWait, slot, d) { ring.timeout(replyWaitSpecs + min(attempt, Self.replyWaitSteps - 1), userData: $0) }
            return false
        case .replyAccepted(let payload, let resumeOther):
            tunnelReplyAccepted(c, payload: payload)
            if resumeOther { pump(slot, 1 - d) }
            return c.pointee.phase == .relaying
        case .retryElseClose(let reason):
            if !retryOnAnotherServer(slot, why: reason.text) { beginClose(slot, reason: reason, reset: true) }
            return false
        case .serverRefused(let code, let retry):
            if retry && retryOnAnotherServer(slot, why: "answered \(code)") { return false }
            counters.add(.refused, 1)
            metricTunnelRefused("server_refused")
            beginClose(slot, reason: .refused("tunnel server answered \(code) for destination=\(destinationText(c))"), reset: true)
            return false
        case .close(let reason, let reset):
            beginClose(slot, reason: reason, reset: reset)
            return false
        }
    }

    /// The kernel granted a smaller pipe than asked: once per process, say so and why.
    func warnPipeShortfall(_ granted: Int) {
        guard !limits.pipeShortfallWarned.exchange(true, ordering: .relaxed) else { return }
        logger.warning("the kernel grants \(granted)-byte pipes, not the \(pipes.size) asked (pipe_size): bursts move in smaller steps. Unprivileged users get at most fs.pipe-user-pages-soft pages of pipe in all (and fs.pipe-max-size per pipe): raise them (sysctl), give the relay CAP_SYS_RESOURCE, or set pipe_memory / pipe_size lower")
    }

    /// Splice will not move a direction's bytes (a seccomp filter, an odd socket): the
    /// connection is healthy and copies from now on; the operator hears of it once.
    private func warnSpliceRefused(_ error: Errno) {
        if !limits.spliceRefusedWarned.exchange(true, ordering: .relaxed) {
            logger.warning("splice refused (\(errnoText(error.rawValue))): connections that meet this copy through a buffer instead (more CPU per byte). A seccomp filter or a container profile that blocks splice(2) does this; allow splice, or run with splice = \"inline\" to rule out io_uring's splice")
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
