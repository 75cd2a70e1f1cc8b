import Testing
@testable import TunnelProtocol

@Suite struct ReplayCacheTests {
    @Test func rejectsANonceSeenWithinTheWindow() {
        let cache = ReplayCache(capacity: 8, window: 30)
        let n = Nonce(high: 7, low: 7)
        #expect(cache.insert(n, timestamp: 1000, now: 1000) == .fresh)
        #expect(cache.insert(n, timestamp: 1000, now: 1030) == .replayed)
    }

    @Test func forgetsANonceOnlyOnceItsTimestampLeftTheWindow() {
        let cache = ReplayCache(capacity: 8, window: 30)
        let n = Nonce(high: 1, low: 1)
        // Sent 20 s ahead of the server's clock: valid until server time 1050.
        #expect(cache.insert(n, timestamp: 1020, now: 1000) == .fresh)
        #expect(cache.insert(Nonce(high: 2, low: 2), timestamp: 1050, now: 1050) == .fresh)
        #expect(cache.insert(n, timestamp: 1020, now: 1050) == .replayed)
        // At 1051 the original would fail the timestamp check, so forgetting it is safe.
        #expect(cache.insert(Nonce(high: 3, low: 3), timestamp: 1051, now: 1051) == .fresh)
        #expect(cache.count == 2)
    }

    /// A flood cannot grow memory: past capacity, unexpired entries make new requests fail
    /// (Resource Exceeded) instead of evicting nonces that could still be replayed.
    @Test func memoryStaysBoundedUnderAFlood() {
        let cache = ReplayCache(capacity: 1000, window: 30)
        var rng = SplitMix64(state: 1)
        var refused = 0
        for i in 0..<100_000 {
            let now = 10_000 + UInt64(i / 5000)  // 5000 new connections per second
            if cache.insert(Nonce(high: rng.next(), low: rng.next()), timestamp: now, now: now) == .full {
                refused += 1
            }
            #expect(cache.count <= 1000)
        }
        #expect(refused > 0)
        // Once the window has passed, the cache drains and admits again.
        #expect(cache.insert(Nonce(high: 0, low: 0), timestamp: 20_000, now: 20_000) == .fresh)
        #expect(cache.count == 1)
    }

    @Test func fullCacheMapsToResourceExceeded() {
        let cache = ReplayCache(capacity: 1, window: 30)
        let first = encodeRequest("192.0.2.10:443", nonce: Nonce(high: 1, low: 0))
        let second = encodeRequest("192.0.2.10:443", nonce: Nonce(high: 2, low: 0))
        #expect(serverCheck(first, cache: cache) == .success(address("192.0.2.10:443")))
        #expect(serverCheck(second, cache: cache) == .failure(.resourceExceeded))
    }

    @Test func badProofsDoNotConsumeCacheSpace() {
        let cache = ReplayCache(capacity: 4, window: 30)
        for i in 0..<100 {
            let wire = encodeRequest("192.0.2.10:443", key: otherKey, nonce: Nonce(high: UInt64(i), low: 0))
            _ = serverCheck(wire, cache: cache)
        }
        #expect(cache.count == 0)
    }

    @Test func sharedAcrossThreadsAcceptsEachNonceOnce() async {
        let cache = ReplayCache(capacity: 10_000, window: 30)
        let accepted = await withTaskGroup(of: Int.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    (0..<2000).reduce(0) { n, i in
                        n + (cache.insert(Nonce(high: UInt64(i), low: 9), timestamp: 5, now: 5) == .fresh ? 1 : 0)
                    }
                }
            }
            return await group.reduce(0, +)
        }
        #expect(accepted == 2000)
    }
}
