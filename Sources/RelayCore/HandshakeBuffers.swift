/// Small user-space buffers for the few bytes a relay must see or add itself: tunnel
/// headers and replies, PROXY protocol headers, and client bytes sent along with a
/// header. Taken only during a handshake and returned after, so the splice data path
/// never touches them; the pool grows to the peak number of handshakes and then stops
/// allocating.
final class HandshakeBuffers {
    static let size = 2048
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
}
