#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Synchronization
import Testing
import RelayLog

@Suite struct LogSinkTests {
    /// Reads what the pipe holds now (nonblocking).
    func drain(_ fd: Int32) -> String {
        var out: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &chunk, chunk.count)
            if n <= 0 { break }
            out += chunk[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    func waitUntil(_ condition: () -> Bool) -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            var pause = timespec(tv_sec: 0, tv_nsec: 10_000_000)
            nanosleep(&pause, nil)
        }
        return condition()
    }

    @Test func linesArriveInOrderFromTheWriterThread() {
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        let sink = LogSink(fd: fds[1], capacity: 1 << 16, shards: 2)
        for i in 0..<100 { sink.write("line \(i)") }
        sink.close()
        close(fds[1])
        let text = drain(fds[0])
        #expect(text == (0..<100).map { "line \($0)\n" }.joined())
    }

    /// A sink nobody reads: writers are never blocked, excess lines are dropped and counted,
    /// and once the sink drains again one line says how many were lost.
    @Test func aStalledSinkDropsAndCountsInsteadOfBlocking() {
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        _ = fcntl(fds[1], 1031 /* F_SETPIPE_SZ */, 4096)
        let sink = LogSink(fd: fds[1], capacity: 8192, shards: 1)
        let line = String(repeating: "x", count: 200)
        // Far more than the pipe (4 KiB) and the buffer (8 KiB) hold: returns at once.
        for _ in 0..<2000 { sink.write(line) }
        #expect(waitUntil { sink.droppedTotal.load(ordering: .relaxed) > 0 })
        let dropped = sink.droppedTotal.load(ordering: .relaxed)
        #expect(dropped > 1000)
        var text = ""
        #expect(waitUntil {
            text += drain(fds[0])
            return text.contains("line(s) dropped while the log output was not keeping up")
        })
        // Keep reading while the sink closes: what it still buffers goes out then.
        let reader = fds[0]
        let rest = Mutex("")
        let draining = Atomic<Bool>(true)
        let thread = Thread {
            while draining.load(ordering: .relaxed) {
                let more = drain(reader)
                rest.withLock { $0 += more }
                usleep(5_000)
            }
        }
        thread.start()
        sink.close()
        draining.store(false, ordering: .relaxed)
        while !thread.isFinished { usleep(5_000) }
        text += rest.withLock { $0 } + drain(fds[0])
        let written = text.split(separator: "\n").filter { $0 == Substring(line) }.count
        #expect(written + dropped == 2000, "written \(written), dropped \(dropped)")
    }

    /// A sink nobody ever reads again: close() returns within its timeout instead of waiting
    /// for the blocked writer forever (the relay must exit when the journal stalls).
    @Test func closeReturnsWhileTheOutputIsStalled() {
        var fds: [Int32] = [-1, -1]
        #expect(pipe(&fds) == 0)
        // Both ends stay open for the rest of the process: closing the read end would send the
        // blocked writer SIGPIPE, which ends a test process that has not ignored it.
        _ = fcntl(fds[1], 1031 /* F_SETPIPE_SZ */, 4096)
        let sink = LogSink(fd: fds[1], capacity: 65536, shards: 1)
        for _ in 0..<200 { sink.write(String(repeating: "y", count: 200)) }
        usleep(200_000)  // the writer is now blocked in write(2) on the full pipe
        sink.close(timeout: 0.5)
        // Reaching this line is the test; the writer stays blocked until the pipe closes.
        #expect(Bool(true))
    }
}
