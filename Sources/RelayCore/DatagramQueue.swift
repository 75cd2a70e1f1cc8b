#if canImport(Glibc)
import Glibc
#endif

/// One UDP flow's datagrams waiting for the tunnel socket, framed as they go on the wire
/// (16-bit big-endian length, then the payload; docs/tunnel-protocol.md "UDP flows").
///
/// Bounded in bytes and in age, because a datagram protocol's congestion control (QUIC's,
/// a VPN's, a game's) must see loss rather than queueing: a datagram that cannot be queued
/// is dropped (tail drop), and `expire` drops datagrams that waited too long (head drop).
/// A frame the socket took part of is never dropped: the stream must stay parseable.
///
/// The storage is one ring allocated at the first push (a flow that sends one DNS query
/// touches one page of it) and never grown: no allocation per datagram.
final class DatagramQueue {
    /// Bytes of one frame's length prefix.
    static let frameHeader = 2
    /// Frames held at most, whatever their size (bounds the metadata ring).
    static let maxFrames = 4096

    let byteLimit: Int
    private var ring: UnsafeMutableRawPointer?
    /// Ring offset of the first byte not yet written to the socket, and bytes held from there.
    private var start = 0
    private(set) var count = 0
    /// Per frame, oldest first: its length on the wire and when it was queued.
    private var frameLengths: UnsafeMutablePointer<Int32>?
    private var frameTimes: UnsafeMutablePointer<Int64>?
    private var frameHead = 0
    private(set) var frames = 0
    /// Bytes of the oldest frame already written.
    private var headSent = 0

    init(byteLimit: Int) {
        self.byteLimit = max(byteLimit, Self.frameHeader + 65535)
    }

    deinit {
        ring?.deallocate()
        frameLengths?.deallocate()
        frameTimes?.deallocate()
    }

    var isEmpty: Bool { count == 0 }

    /// Queues one datagram; false (nothing queued) when it does not fit.
    func push(_ payload: UnsafeRawBufferPointer, now: Int64) -> Bool {
        let length = Self.frameHeader + payload.count
        guard payload.count <= 65535, count + length <= byteLimit, frames < Self.maxFrames else { return false }
        if ring == nil {
            ring = UnsafeMutableRawPointer.allocate(byteCount: byteLimit, alignment: 16)
            frameLengths = .allocate(capacity: Self.maxFrames)
            frameTimes = .allocate(capacity: Self.maxFrames)
        }
        var header = UInt16(payload.count).bigEndian
        withUnsafeBytes(of: &header) { copyIn($0, at: count) }
        copyIn(payload, at: count + Self.frameHeader)
        count += length
        let slot = (frameHead + frames) % Self.maxFrames
        frameLengths![slot] = Int32(length)
        frameTimes![slot] = now
        frames += 1
        return true
    }

    /// Drops untouched frames at the head that were queued before `now - maxAge`; returns
    /// how many.
    func expire(now: Int64, maxAge: Int64) -> Int {
        var dropped = 0
        while frames > 0, headSent == 0, now - frameTimes![frameHead] > maxAge {
            let length = Int(frameLengths![frameHead])
            start = (start + length) % byteLimit
            count -= length
            frameHead = (frameHead + 1) % Self.maxFrames
            frames -= 1
            dropped += 1
        }
        return dropped
    }

    /// Every frame counts as queued `now` (the tunnel just connected: the handshake was not
    /// queueing).
    func restamp(_ now: Int64) {
        for i in 0..<frames { frameTimes![(frameHead + i) % Self.maxFrames] = now }
    }

    /// How long the oldest frame has waited.
    func oldestAge(now: Int64) -> Int64 { frames > 0 ? now - frameTimes![frameHead] : 0 }

    /// The queued bytes in order, as at most two spans of the ring.
    func spans() -> (UnsafeRawBufferPointer, UnsafeRawBufferPointer) {
        guard let ring, count > 0 else { return (UnsafeRawBufferPointer(start: nil, count: 0), UnsafeRawBufferPointer(start: nil, count: 0)) }
        let first = min(count, byteLimit - start)
        return (UnsafeRawBufferPointer(start: ring + start, count: first),
                UnsafeRawBufferPointer(start: ring, count: count - first))
    }

    /// The socket took `n` bytes from the front.
    func consume(_ n: Int) {
        precondition(n <= count, "consumed more than queued")
        start = (start + n) % byteLimit
        count -= n
        var left = n
        while left > 0 {
            let remaining = Int(frameLengths![frameHead]) - headSent
            if left >= remaining {
                left -= remaining
                headSent = 0
                frameHead = (frameHead + 1) % Self.maxFrames
                frames -= 1
            } else {
                headSent += left
                left = 0
            }
        }
    }

    private func copyIn(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        guard let ring, !bytes.isEmpty else { return }
        let at = (start + offset) % byteLimit
        let first = min(bytes.count, byteLimit - at)
        (ring + at).copyMemory(from: bytes.baseAddress!, byteCount: first)
        if first < bytes.count {
            ring.copyMemory(from: bytes.baseAddress! + first, byteCount: bytes.count - first)
        }
    }
}

/// The other direction: bytes read off the tunnel socket, cut back into datagrams. Holds
/// at most one partial frame between reads (storage allocated at the first read).
final class DatagramDeframer {
    /// Room for one largest frame plus more behind it, so one read brings many datagrams.
    static let capacity = 4 * (DatagramQueue.frameHeader + 65535)
    private var buffer: UnsafeMutableRawPointer?
    private var offset = 0
    private(set) var fill = 0

    deinit { buffer?.deallocate() }

    /// Where the next read goes.
    func space() -> UnsafeMutableRawBufferPointer {
        if buffer == nil { buffer = .allocate(byteCount: Self.capacity, alignment: 16) }
        if offset > 0 {
            // Keep the partial frame at the front so the next read has the most room.
            (buffer!).copyMemory(from: buffer! + offset, byteCount: fill - offset)
            fill -= offset
            offset = 0
        }
        return UnsafeMutableRawBufferPointer(start: buffer! + fill, count: Self.capacity - fill)
    }

    func appended(_ n: Int) { fill += n }

    /// Copies bytes in (a tunnel server's worker read them along with the header).
    func append(_ bytes: UnsafeRawBufferPointer) {
        let room = space()
        let n = min(bytes.count, room.count)
        if n > 0 { room.baseAddress!.copyMemory(from: bytes.baseAddress!, byteCount: n) }
        fill += n
    }

    /// The unparsed bytes (the gateway reads the server's reply from here first).
    var unread: UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: buffer.map { $0 + offset }, count: fill - offset)
    }

    func skip(_ n: Int) { offset += n }

    /// The next whole datagram, or nil until more bytes arrive.
    func next() -> UnsafeRawBufferPointer? {
        guard let buffer, fill - offset >= DatagramQueue.frameHeader else { return nil }
        let p = UnsafeRawBufferPointer(start: buffer + offset, count: fill - offset)
        let length = Int(p[0]) << 8 | Int(p[1])
        guard p.count >= DatagramQueue.frameHeader + length else { return nil }
        offset += DatagramQueue.frameHeader + length
        return UnsafeRawBufferPointer(start: p.baseAddress! + DatagramQueue.frameHeader, count: length)
    }
}
