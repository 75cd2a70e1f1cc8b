#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket
import Testing
@testable import RelayCore

@Suite struct OperationTokenTests {
    @Test func roundTripsEveryField() {
        let t = OperationToken(.spliceOut, index: 123_456, direction: 1)
        let back = OperationToken(raw: t.raw)
        #expect(back.kind == .spliceOut)
        #expect(back.index == 123_456)
        #expect(back.direction == 1)
        #expect(OperationToken(raw: 0).kind == nil)
    }
}

@Suite struct ConnectionTableTests {
    @Test func allocatesUntilFullAndReusesReleasedSlots() {
        let table = ConnectionTable(capacity: 3)
        let a = table.allocate(), b = table.allocate(), c = table.allocate()
        #expect([a, b, c].compactMap { $0 }.count == 3)
        #expect(table.isFull)
        #expect(table.allocate() == nil)
        table.release(b!)
        #expect(table.active == 2)
        #expect(table.allocate() == b)
        #expect(table[b!].pointee.phase == .free)
    }
}

@Suite struct PipePoolTests {
    @Test func reusesEmptyPipesAndClosesDirtyOnes() throws {
        let pool = PipePool(size: 65536, keepIdle: 1)
        let p1 = try pool.take()
        #expect(p1.isValid)
        pool.give(p1, empty: true)
        #expect(pool.idleCount == 1)
        let p2 = try pool.take()
        #expect(p2.readEnd == p1.readEnd)
        // A pipe that may hold bytes must never serve another connection. Other tests run in
        // this process at the same time and may get the descriptor number at once: the pipe is
        // recognised by its inode, not by its number.
        var before = stat(), after = stat()
        #expect(fstat(p2.readEnd, &before) == 0)
        pool.give(p2, empty: false)
        #expect(pool.idleCount == 0)
        #expect(fstat(p2.readEnd, &after) != 0 || after.st_ino != before.st_ino || after.st_dev != before.st_dev, "the dirty pipe was closed")
        #expect(pool.inUse == 0)
    }

    @Test func beyondKeepIdlePipesAreClosed() throws {
        let pool = PipePool(size: 65536, keepIdle: 1)
        let a = try pool.take(), b = try pool.take()
        pool.give(a, empty: true)
        pool.give(b, empty: true)
        #expect(pool.idleCount == 1)
        #expect(fcntl(b.readEnd, F_GETFD) == -1)
    }

    @Test func trimKeepsNoMoreSparesThanPipesInUse() throws {
        let pool = PipePool(size: 65536, keepIdle: 8)
        let a = try pool.take(), b = try pool.take(), c = try pool.take()
        pool.give(a, empty: true)
        pool.give(b, empty: true)
        pool.trim()
        #expect(pool.idleCount == 1)  // c is still in use
        pool.give(c, empty: true)
        pool.trim()
        #expect(pool.idleCount == 0)
        #expect(fcntl(c.readEnd, F_GETFD) == -1)
    }
}

@Suite struct LoopGuardTests {
    let local = LocalAddresses(hosts: ["192.168.50.1", "10.1.0.1", "::1"])

    @Test func refusesTheListenerItself() throws {
        let listener = try SocketAddress(parsing: "[::]:7000")
        #expect(local.loops(try SocketAddress(parsing: "192.168.50.1:7000"), into: listener))
        #expect(local.loops(try SocketAddress(parsing: "[::1]:7000"), into: listener))
    }

    @Test func relaysOtherDestinations() throws {
        let listener = try SocketAddress(parsing: "[::]:7000")
        #expect(!local.loops(try SocketAddress(parsing: "192.168.50.1:80"), into: listener))
        #expect(!local.loops(try SocketAddress(parsing: "203.0.113.9:7000"), into: listener))
        let specific = try SocketAddress(parsing: "192.168.50.1:7000")
        #expect(!local.loops(try SocketAddress(parsing: "10.1.0.1:7000"), into: specific))
    }
}
