#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Testing
import WanManager

/// Issue 24, finding 8: a second WAN manager in one namespace is refused, naming the first.
@Suite struct OwnershipLockTests {
    @Test func aSecondManagerIsRefusedWithTheHoldersPid() throws {
        let dir = NSTemporaryDirectory() + "wan-lock-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let lock = WanOwnershipLock(recordPath: dir + "/wan-endpoints-c1")
        let fd = try lock.acquire()
        #expect(lock.path.hasSuffix("wan-endpoints-c1.lock"))
        do {
            _ = try WanOwnershipLock(recordPath: dir + "/wan-endpoints-c1").acquire()
            Issue.record("a second manager took the lock")
        } catch let held as WanOwnershipLock.Held {
            #expect(held.holder == getpid())
            #expect(held.description.contains("pid \(getpid())") && held.description.contains("one relay with [[wan]] per namespace"))
        }
        // Released when the holder goes (here: its descriptor closes), as at exit or SIGKILL.
        close(fd)
        let again = try WanOwnershipLock(recordPath: dir + "/wan-endpoints-c1").acquire()
        close(again)
    }
}
