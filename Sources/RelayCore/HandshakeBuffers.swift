/// Small user-space buffers for the bytes a relay must see or add itself (tunnel headers
/// and replies, PROXY protocol headers, client bytes sent along with a header) and for the
/// copy path: a direction's first, small messages, and any bytes while no pipe can be had.
/// Held only while such bytes are in flight; the pool grows to the peak number in flight
/// and then stops allocating.
final class HandshakeBuffers {
    /// Big enough for a typical request or short answer in one read.
    static let size = 16384
    private var chunks: [UnsafeMutableRawPointer] = []
    private var free: [Int32] = []

    deinit { for c in chunks { c.deallocate() } }

    func take() -> Int32 {
        if let i = free.popLast() { return i }
        chunks.append(.allocate(byteCount: Self.size, alignment: 16))
        return Int32(chunks.count - 1)
    }

    func give(_ index: Int32) {
        guard index >= 0 else { return }
        free.append(index)
    }

    @inline(__always) func pointer(_ index: Int32) -> UnsafeMutableRawPointer { chunks[Int(index)] }

    var outstanding: Int { chunks.count - free.count }

    /// Frees spare buffers beyond as many as are in use now (the pipe pool's rule): a
    /// burst's buffers stay for the next burst, and are gone once traffic stops. Only
    /// trailing chunks can go, since indices name the others.
    func trim() {
        let inUse = outstanding
        guard free.count > inUse else { return }
        var spare = Set(free)
        while let last = chunks.indices.last, spare.count > inUse, spare.contains(Int32(last)) {
            chunks.removeLast().deallocate()
            spare.remove(Int32(last))
        }
        if spare.count != free.count { free = free.filter { spare.contains($0) } }
    }
}
