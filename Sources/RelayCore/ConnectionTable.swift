/// A fixed slab of connection slots with a free list: no allocation per connection,
/// and stable addresses for the sockaddrs the kernel reads asynchronously.
final class ConnectionTable {
    let capacity: Int
    let slots: UnsafeMutablePointer<Connection>
    private var freeHead: Int32
    private(set) var active = 0

    init(capacity: Int) {
        self.capacity = capacity
        slots = .allocate(capacity: capacity)
        for i in 0..<capacity {
            var c = Connection()
            c.nextFree = i + 1 < capacity ? Int32(i + 1) : -1
            (slots + i).initialize(to: c)
        }
        freeHead = capacity > 0 ? 0 : -1
    }

    deinit {
        slots.deinitialize(count: capacity)
        slots.deallocate()
    }

    var isFull: Bool { freeHead < 0 }

    func allocate() -> Int32? {
        guard freeHead >= 0 else { return nil }
        let index = freeHead
        freeHead = slots[Int(index)].nextFree
        active += 1
        return index
    }

    /// Resets the slot for its next occupant, under a new generation.
    func release(_ index: Int32) {
        let pending = slots[Int(index)].pending
        var c = Connection()
        c.generation = slots[Int(index)].generation &+ 1
        active -= 1
        if pending > 0 {
            // Reclaimed with operations still in flight: the slot waits out of the free list
            // until they complete (`strayCompleted`), so none can land on a new occupant.
            c.strays = pending
            slots[Int(index)] = c
            quarantined += 1
            return
        }
        c.nextFree = freeHead
        slots[Int(index)] = c
        freeHead = index
    }

    /// Reclaimed slots still waiting for stray completions (a cancel that never lands keeps
    /// its slot out of use for good: one slot, with the warning the reclaim logged).
    private(set) var quarantined = 0

    /// A completion for the slot's previous occupant arrived; true when it was one the slot
    /// waits for (the slot may then be free again).
    func strayCompleted(_ index: Int32, generation: UInt32) -> Bool {
        let c = slots + Int(index)
        guard c.pointee.strays > 0, generation == c.pointee.generation &- 1 else { return false }
        c.pointee.strays -= 1
        if c.pointee.strays == 0 {
            c.pointee.nextFree = freeHead
            freeHead = index
            quarantined -= 1
        }
        return true
    }

    @inline(__always) subscript(_ index: Int32) -> UnsafeMutablePointer<Connection> { slots + Int(index) }
}
