#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import MPTCPSocket
import URing
import SystemPackage

/// The data path: per direction, splice source -> pipe, then pipe -> sink, with the
/// ring reporting readiness. A short transfer is normal; EAGAIN means "wait for poll".
extension Worker {
    @inline(__always)
    func withDirection<R>(_ c: UnsafeMutablePointer<Connection>, _ d: Int, _ body: (inout Direction) -> R) -> R {
        d == 0 ? body(&c.pointee.up) : body(&c.pointee.down)
    }

    private static let spliceFlags = UInt32(CNET_SPLICE_F_MOVE | CNET_SPLICE_F_NONBLOCK)

    /// Moves a direction forward until it must wait for the kernel.
    func pump(_ slot: Int32, _ d: Int) {
        let c = table[slot]
        while c.pointee.phase == .relaying {
            let step = withDirection(c, d) { dir -> Step in
                if dir.busy || dir.finished { return .wait }
                if dir.prefixEnd > dir.prefixStart { return .writePrefix(dir.sink, dir.buffer, dir.prefixStart, dir.prefixEnd - dir.prefixStart) }
                if dir.expectReply { return .readReply(dir.source, dir.buffer, dir.bufferFill) }
                if dir.buffer >= 0 {
                    handshakeBuffers.give(dir.buffer)
                    dir.buffer = -1
                }
                if dir.inPipe > 0 { return .write(dir.pipe.readEnd, dir.sink, dir.inPipe) }
                if dir.sourceEOF { return .passEOF(dir.sink) }
                if dir.drained {
                    // Idle direction: its pipe goes back to the pool while it waits.
                    pipes.give(dir.pipe, empty: true)
                    dir.pipe = .none
                    return .pollIn(dir.source)
                }
                if !dir.pipe.isValid {
                    do throws(Errno) { dir.pipe = try pipes.take() } catch { return .outOfPipes(error.rawValue) }
                }
                return .read(dir.source, dir.pipe.writeEnd, dir.pipe.capacity)
            }
            switch step {
            case .wait:
                return
            case .pollIn(let fd):
                arm(.pollIn, slot, d, fd, events: UInt32(POLLIN) | 0x2000 /* POLLRDHUP */)
                return
            case .passEOF(let sink):
                passEOF(slot, d, sink)
                return
            case .outOfPipes(let code):
                if code == EMFILE || code == ENFILE { pauseAccepting(code) }
                beginClose(slot, reason: .resources(code), reset: true)
                return
            case .writePrefix(let sink, let buffer, let start, let count):
                let n = send(sink, handshakeBuffers.pointer(buffer) + start, count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
                if !prefixWritten(slot, d, n >= 0 ? Int32(n) : -errno) { return }
            case .readReply(let source, let buffer, let fill):
                let n = recv(source, handshakeBuffers.pointer(buffer) + fill, HandshakeBuffers.size - fill, Int32(MSG_DONTWAIT))
                if !replyRead(slot, d, n >= 0 ? Int32(n) : -errno) { return }
            case .read(let source, let pipeIn, let capacity):
                if settings.spliceEngine == .ring {
                    submit(.spliceIn, slot, d) { ring.splice(from: source, to: pipeIn, length: UInt32(capacity), flags: Self.spliceFlags, userData: $0) }
                    return
                }
                let n = cnet_splice(source, pipeIn, capacity, Self.spliceFlags)
                if !readCompleted(slot, d, n >= 0 ? Int32(n) : -errno) { return }
            case .write(let pipeOut, let sink, let count):
                if settings.spliceEngine == .ring {
                    submit(.spliceOut, slot, d) { ring.splice(from: pipeOut, to: sink, length: UInt32(count), flags: Self.spliceFlags, userData: $0) }
                    return
                }
                let n = cnet_splice(pipeOut, sink, count, Self.spliceFlags)
                if !writeCompleted(slot, d, n >= 0 ? Int32(n) : -errno) { return }
            }
        }
    }

    private enum Step {
        case wait
        case pollIn(Int32)
        case passEOF(Int32)
        case outOfPipes(Int32)
        case read(Int32, Int32, Int)
        case write(Int32, Int32, Int)
        case writePrefix(Int32, Int32, Int, Int)
        case readReply(Int32, Int32, Int)
    }

    /// Result of sending handshake bytes (a header, or bytes read along with one).
    private func prefixWritten(_ slot: Int32, _ d: Int, _ result: Int32) -> Bool {
        let c = table[slot]
        if result > 0 {
            c.pointee.lastActive = now
            withDirection(c, d) { $0.prefixStart += Int(result) }
            return true
        }
        // EINPROGRESS: a Fast Open socket without a cookie sent a plain SYN; write once connected.
        sinkRefused(slot, d, result, retryable: result == -EINPROGRESS || result == -ENOTCONN)
        return false
    }

    /// Result of reading part of a tunnel reply off the upstream.
    private func replyRead(_ slot: Int32, _ d: Int, _ result: Int32) -> Bool {
        let c = table[slot]
        if result > 0 {
            withDirection(c, d) { $0.bufferFill += Int(result) }
            return tunnelReplyProgress(slot, d)
        }
        if result == -EAGAIN {
            let source = withDirection(c, d) { $0.source }
            arm(.pollIn, slot, d, source, events: UInt32(POLLIN))
            return false
        }
        beginClose(slot, reason: .refused(result == 0 ? "tunnel server closed before replying" : "tunnel server: \(errnoText(-result))"), reset: true)
        return false
    }

    /// Result of a source -> pipe splice; false when the direction must stop here.
    func readCompleted(_ slot: Int32, _ d: Int, _ result: Int32) -> Bool {
        let c = table[slot]
        if result > 0 {
            c.pointee.lastActive = now
            withDirection(c, d) { dir in
                dir.inPipe += Int(result)
                dir.bytes += UInt64(result)
                // A read shorter than the pipe most likely emptied the socket: poll before the next.
                dir.drained = Int(result) < dir.pipe.capacity
            }
            return true
        }
        if result == 0 {
            withDirection(c, d) { $0.sourceEOF = true }
            return true
        }
        if result == -EAGAIN {
            withDirection(c, d) { $0.drained = true }
            return true
        }
        let code = -result
        beginClose(slot, reason: d == 0 ? .resetByClient(code) : .resetByUpstream(code), reset: true)
        return false
    }

    /// Result of a pipe -> sink splice; false when the direction must stop here.
    func writeCompleted(_ slot: Int32, _ d: Int, _ result: Int32) -> Bool {
        let c = table[slot]
        if result > 0 {
            c.pointee.lastActive = now
            withDirection(c, d) { $0.inPipe -= Int(result) }
            return true
        }
        sinkRefused(slot, d, result, retryable: false)
        return false
    }

    /// A write to the sink moved nothing. EAGAIN (or 0, or a `retryable` code) means its send
    /// buffer is full: backpressure, so wait for POLLOUT and read nothing meanwhile. Anything
    /// else is the sink's peer failing: reset both sides.
    private func sinkRefused(_ slot: Int32, _ d: Int, _ result: Int32, retryable: Bool) {
        let c = table[slot]
        if result == -EAGAIN || result == 0 || retryable {
            let sink = withDirection(c, d) { $0.sink }
            arm(.pollOut, slot, d, sink, events: UInt32(POLLOUT))
            return
        }
        let code = -result
        beginClose(slot, reason: d == 0 ? .resetByUpstream(code) : .resetByClient(code), reset: true)
    }

    /// The source sent FIN and the pipe is empty: pass the half-close on with shutdown(SHUT_WR).
    private func passEOF(_ slot: Int32, _ d: Int, _ sink: Int32) {
        let c = table[slot]
        if c.pointee.subflows == 0 { recordSubflows(c) }
        shutdown(sink, Int32(SHUT_WR))
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
        prepare(OperationToken(kind, index: slot, direction: d).raw)
        c.pointee.pending += 1
        withDirection(c, d) { $0.busy = true }
    }
}
