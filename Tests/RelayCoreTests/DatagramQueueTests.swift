import Testing
@testable import RelayCore

/// The UDP flow's queue toward the tunnel and the deframer back: framing, bounds, age drops
/// (issue 23), without sockets.
@Suite struct DatagramQueueTests {
    /// Everything queued, as the socket would get it.
    func drain(_ q: DatagramQueue, max: Int = .max) -> [UInt8] {
        let (a, b) = q.spans()
        let bytes = Array(a) + Array(b)
        let n = min(max, bytes.count)
        q.consume(n)
        return Array(bytes[..<n])
    }

    /// The frames in `bytes`, fed to a deframer in reads of `chunk` bytes.
    func frames(_ bytes: [UInt8], chunk: Int = 9_000) -> [[UInt8]] {
        let d = DatagramDeframer()
        var out: [[UInt8]] = []
        var i = 0
        while i < bytes.count {
            let n = min(chunk, bytes.count - i)
            bytes.withUnsafeBytes { d.append(UnsafeRawBufferPointer(rebasing: $0[i..<(i + n)])) }
            i += n
            while let f = d.next() { out.append(Array(f)) }
        }
        return out
    }

    @Test func framesKeepOrderAcrossTheRingsWrap() {
        let q = DatagramQueue(byteLimit: 70_000)
        var sent: [[UInt8]] = []
        var refused = 0
        var wire: [UInt8] = []
        // Sizes that make the ring wrap several times, a zero-length datagram among them.
        for i in 0..<200 {
            let d = [UInt8](repeating: UInt8(i & 0xff), count: (i * 7919) % 3000)
            if d.withUnsafeBytes({ q.push($0, now: 0) }) { sent.append(d) } else { refused += 1 }
            wire += drain(q, max: 1400 + i)  // partial writes: frames cut anywhere
        }
        wire += drain(q)
        #expect(q.isEmpty && q.frames == 0)
        // Compared outside #expect: a failure would print megabytes of arrays.
        let got = frames(wire)
        let same = got == sent
        #expect(same, "\(got.count) frames out, \(sent.count) in")
        #expect(refused == 0, "the queue never filled: \(refused) refused")
    }

    @Test func fullQueueDropsTheNewDatagram() {
        let q = DatagramQueue(byteLimit: 70_000)
        let big = [UInt8](repeating: 1, count: 30_000)
        #expect(big.withUnsafeBytes { q.push($0, now: 0) })
        #expect(big.withUnsafeBytes { q.push($0, now: 0) })
        #expect(!big.withUnsafeBytes { q.push($0, now: 0) })
        #expect(q.count == 2 * 30_002)
    }

    @Test func ageDropsOnlyUntouchedFramesAtTheHead() {
        let q = DatagramQueue(byteLimit: 70_000)
        for t in [0, 10, 20, 30] as [Int64] {
            #expect([UInt8](repeating: UInt8(t), count: 100).withUnsafeBytes { q.push($0, now: t) })
        }
        // The socket took half of the first frame: it must go out whole, however old.
        let firstHalf = drain(q, max: 51)
        #expect(q.expire(now: 1000, maxAge: 15) == 0)
        let rest = drain(q, max: 51)  // the first frame's other half
        #expect(frames(firstHalf + rest) == [[UInt8](repeating: 0, count: 100)])
        // Now frames queued at 10 and 20 are older than 15 at time 40; the one at 30 is not.
        #expect(q.expire(now: 40, maxAge: 15) == 2)
        #expect(frames(drain(q)) == [[UInt8](repeating: 30, count: 100)])
    }

    @Test func deframerReassemblesFramesSplitAcrossReads() {
        let d = DatagramDeframer()
        let payloads: [[UInt8]] = [[], [1, 2, 3], [UInt8](repeating: 9, count: 65_535)]
        var wire: [UInt8] = []
        for p in payloads { wire += [UInt8(p.count >> 8), UInt8(p.count & 0xff)] + p }
        var got: [[UInt8]] = []
        var i = 0
        while i < wire.count {
            let n = min(7_001, wire.count - i)
            let room = d.space()
            wire.withUnsafeBytes { room.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[i..<(i + n)])) }
            d.appended(n)
            i += n
            while let f = d.next() { got.append(Array(f)) }
        }
        #expect(got == payloads)
    }
}
