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
        var c = Connection()
        c.generation = slots[Int(index)].generation &+ 1
        c.nextFree = freeHead
        slots[Int(index)] = c
        freeHead = index
        active -= 1
    }

    @inline(__always) subscript(_ index: Int32) -> UnsafeMutablePointer<Connection> { slots + Int(index) }
}
