#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import SystemPackage

/// The kernel as a relaying connection's steps see it: the data-path syscalls, each
/// answering an IOOutcome, and the pipes they move bytes through. The worker's is Linux
/// (WorkerKernel); a test's is a fake, so a connection runs event by event without root.
protocol StreamKernel {
    /// send(2), non-blocking, without SIGPIPE; `more`: MSG_MORE (the FIN follows at once,
    /// and joins the last segment instead of a packet of its own).
    func send(_ fd: Int32, _ bytes: UnsafeRawPointer, count: Int, more: Bool) -> IOOutcome
    /// recv(2), non-blocking.
    func receive(_ fd: Int32, into bytes: UnsafeMutableRawPointer, count: Int) -> IOOutcome
    /// splice(2) between a socket and a pipe end, non-blocking.
    func splice(from source: Int32, to sink: Int32, count: Int) -> IOOutcome
    /// read(2) of a pipe's read end.
    func readPipe(_ fd: Int32, into bytes: UnsafeMutableRawPointer, count: Int) -> IOOutcome
    /// shutdown(SHUT_WR): the peer sees FIN once what was written has gone.
    func shutdownWrite(_ fd: Int32)
    /// A pipe for a direction turning bulk, or why none could be had.
    func takePipe() -> Result<SplicePipe, Errno>
    func givePipe(_ pipe: SplicePipe, empty: Bool)
}

extension Connection {
    /// Performs direction `d`'s `step` against `kernel`, the syscall edge of the data path.
    /// Nil when the step is not done here: `.wait`, or a splice the ring performs (`ringSplices`).
    /// Buffers and pipes a step takes are recorded in the direction at once, so whatever
    /// the outcome, the direction's state says what it holds.
    mutating func perform<K: StreamKernel>(_ d: Int, _ step: DirectionStep, kernel: K, buffers: HandshakeBuffers,
                                           ringSplices: Bool = false) -> IOOutcome? {
        let otherFinished = withDirection(1 - d) { $0.finished }
        return update(d) { dir -> IOOutcome? in
            switch step {
            case .wait:
                return nil
            case .writePrefix:
                return kernel.send(dir.sink, buffers.pointer(dir.buffer) + dir.prefixStart, count: dir.prefixEnd - dir.prefixStart,
                                   more: dir.sourceEOF && dir.inPipe == 0 && dir.handshake == .none)
            case .lookAhead:
                return kernel.receive(dir.source, into: buffers.pointer(dir.buffer) + dir.prefixEnd, count: HandshakeBuffers.size - dir.prefixEnd)
            case .reportFailure:
                guard case .failed(let outcome) = dir.lookAhead else { preconditionFailure("reportFailure without a failure") }
                return outcome
            case .readReply:
                guard case .readingReply(let fill, _) = dir.handshake else { preconditionFailure("readReply without a reply to read") }
                return kernel.receive(dir.source, into: buffers.pointer(dir.buffer) + fill, count: HandshakeBuffers.size - fill)
            case .releaseBuffer:
                buffers.give(dir.buffer)
                return .moved(0)
            case .write:
                if ringSplices { return nil }
                return kernel.splice(from: dir.pipe.readEnd, to: dir.sink, count: dir.inPipe)
            case .drainPipe:
                dir.buffer = buffers.take()
                return kernel.readPipe(dir.pipe.readEnd, into: buffers.pointer(dir.buffer), count: min(dir.inPipe, HandshakeBuffers.size))
            case .passEOF:
                // The last direction to end needs no shutdown: the close that follows sends the
                // FIN (nothing is left unread on that socket: its own direction saw EOF).
                if !otherFinished { kernel.shutdownWrite(dir.sink) }
                kernel.givePipe(dir.pipe, empty: true)
                return .moved(0)
            case .releasePipeAndPoll:
                // Idle direction: its pipe goes back to the pool while it waits.
                kernel.givePipe(dir.pipe, empty: true)
                return .moved(0)
            case .pollIn:
                return .wouldBlock
            case .copyRead:
                dir.buffer = buffers.take()
                return kernel.receive(dir.source, into: buffers.pointer(dir.buffer), count: HandshakeBuffers.size)
            case .takePipe:
                switch kernel.takePipe() {
                case .success(let pipe):
                    dir.pipe = pipe
                    return .moved(pipe.capacity)
                case .failure(let e):
                    return e.isResourceShortage ? .shortage(e) : .peerReset(e)
                }
            case .read:
                if ringSplices { return nil }
                return kernel.splice(from: dir.source, to: dir.pipe.writeEnd, count: dir.pipe.capacity)
            }
        }
    }
}

/// Linux, for a worker: DataPath's syscalls and the worker's pipe pool.
struct WorkerKernel: StreamKernel {
    unowned(unsafe) let worker: Worker

    @inline(__always) func send(_ fd: Int32, _ bytes: UnsafeRawPointer, count: Int, more: Bool) -> IOOutcome {
        DataPath.send(fd, bytes, count: count, more: more)
    }

    @inline(__always) func receive(_ fd: Int32, into bytes: UnsafeMutableRawPointer, count: Int) -> IOOutcome {
        DataPath.receive(fd, into: bytes, count: count)
    }

    @inline(__always) func splice(from source: Int32, to sink: Int32, count: Int) -> IOOutcome {
        DataPath.splice(from: source, to: sink, count: count, flags: worker.spliceFlags)
    }

    @inline(__always) func readPipe(_ fd: Int32, into bytes: UnsafeMutableRawPointer, count: Int) -> IOOutcome {
        DataPath.read(fd, into: bytes, count: count)
    }

    /// A direct call, not IORING_OP_SHUTDOWN: the ring always hands a shutdown to a worker
    /// thread of its own (io-wq), a thread wake-up per connection where this is one syscall.
    @inline(__always) func shutdownWrite(_ fd: Int32) {
        _ = Glibc.shutdown(fd, Int32(SHUT_WR))
    }

    func takePipe() -> Result<SplicePipe, Errno> {
        do throws(Errno) {
            let pipe = try worker.pipes.take()
            if pipe.capacity < worker.pipes.size { worker.warnPipeShortfall(pipe.capacity) }
            return .success(pipe)
        } catch {
            return .failure(error)
        }
    }

    @inline(__always) func givePipe(_ pipe: SplicePipe, empty: Bool) {
        worker.pipes.give(pipe, empty: empty)
    }
}
