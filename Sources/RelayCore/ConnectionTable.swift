/// Connection slots with a free list: no allocation per connection, and stable addresses
/// for the sockaddrs the kernel reads asynchronously.
///
/// Slots are made in chunks as connections need them, up to `capacity`: every worker may
/// hold all of the process's max_connections (the limit is shared, see SharedLimits), but an
/// idle relay pays for none of them, and a busy one for what it holds (about 0.7 KB a slot).
/// A chunk is allocated once per `chunkSize` connections at a new peak and never moves.
final class ConnectionTable {
    static let chunkSize = 1024
    let capacity: Int
    private let chunks: UnsafeMutablePointer<UnsafeMutablePointer<Connection>?>
    private let chunkCount: Int
    /// Slots made so far (the first `allocated` indices are valid).
    private(set) var allocated = 0
    private var freeHead: Int32 = -1
    private(set) var active = 0

    init(capacity: Int) {
        // A slot's index rides in 24 bits of every operation token.
        precondition(capacity <= OperationToken.indexLimit, "a connection table of \(capacity) slots does not fit the token's index bits")
        self.capacity = capacity
        chunkCount = (capacity + Self.chunkSize - 1) / Self.chunkSize
        chunks = .allocate(capacity: max(chunkCount, 1))
        chunks.initialize(repeating: nil, count: max(chunkCount, 1))
    }

    deinit {
        for k in 0..<chunkCount {
            guard let chunk = chunks[k] else { continue }
            chunk.deinitialize(count: min(Self.chunkSize, capacity - k * Self.chunkSize))
            chunk.deallocate()
        }
        chunks.deallocate()
    }

    var isFull: Bool { freeHead < 0 && allocated == capacity }

    func allocate() -> Int32? {
        if freeHead < 0 && !grow() { return nil }
        let index = freeHead
        freeHead = self[index].pointee.nextFree
        active += 1
        return index
    }

    /// Makes the next chunk of slots; false at capacity.
    private func grow() -> Bool {
        guard allocated < capacity else { return false }
        let k = allocated / Self.chunkSize
        let count = min(Self.chunkSize, capacity - allocated)
        let chunk = UnsafeMutablePointer<Connection>.allocate(capacity: count)
        for i in 0..<count {
            var c = Connection()
            c.nextFree = i + 1 < count ? Int32(allocated + i + 1) : freeHead
            (chunk + i).initialize(to: c)
        }
        chunks[k] = chunk
        freeHead = Int32(allocated)
        allocated += count
        return true
    }

    /// Resets the slot for its next occupant, under a new generation.
    func release(_ index: Int32) {
        let slot = self[index]
        let pending = slot.pointee.pending
        var c = Connection()
        c.generation = slot.pointee.generation &+ 1
        active -= 1
        if pending > 0 {
            // Reclaimed with operations still in flight: the slot waits out of the free list
            // until they complete (`strayCompleted`), so none can land on a new occupant.
            c.strays = pending
            slot.pointee = c
            quarantined += 1
            return
        }
        c.nextFree = freeHead
        slot.pointee = c
        freeHead = index
    }

    /// Reclaimed slots still waiting for stray completions (a cancel that never lands keeps
    /// its slot out of use for good: one slot, with the warning the reclaim logged).
    private(set) var quarantined = 0

    /// A completion for the slot's previous occupant arrived; true when it was one the slot
    /// waits for (the slot may then be free again).
    func strayCompleted(_ index: Int32, generation: UInt32) -> Bool {
        guard Int(index) < allocated else { return false }
        let c = self[index]
        guard c.pointee.strays > 0, generation == c.pointee.generation &- 1 else { return false }
        c.pointee.strays -= 1
        if c.pointee.strays == 0 {
            c.pointee.nextFree = freeHead
            freeHead = index
            quarantined -= 1
        }
        return true
    }

    @inline(__always) subscript(_ index: Int32) -> UnsafeMutablePointer<Connection> {
        chunks[Int(index) / Self.chunkSize].unsafelyUnwrapped + Int(index) % Self.chunkSize
    }

    /// Every slot made so far, free ones included (for the tick's sweep and snapshots).
    var slotIndices: Range<Int32> { 0..<Int32(allocated) }
}
