import MPTCPSocket
import Testing
@testable import TunnelProtocol

/// Every rejection the issue lists, each with the code the client is sent.
@Suite struct RejectionTests {
    let valid = encodeRequest("192.0.2.10:443")

    @Test func acceptsTheValidBaseline() {
        #expect(serverCheck(valid) == .success(address("192.0.2.10:443")))
    }

    @Test func noKeyTLVIsNotAuthorized() {
        // A plain RFC 8803 Connect request: fixed header + Connect TLV only.
        var plain = Array(valid[..<24])
        plain[1] = 6
        #expect(serverCheck(plain) == .failure(.notAuthorized))
    }

    @Test func wrongKeyIsNotAuthorizedAndLoggedAsUnknownKey() {
        let wire = encodeRequest("192.0.2.10:443", key: otherKey)
        #expect(serverCheck(wire) == .failure(.notAuthorized))
        guard case .request(let r, _) = parseRequest(wire) else { Issue.record("not parsed"); return }
        let result = TunnelHeader.verify(r, key: exampleKey, now: exampleTime, replayCache: ReplayCache(capacity: 4))
        #expect(result == .failure(Rejection(.notAuthorized, .unknownKey(id: otherKey.id))))
    }

    /// Every byte is covered by the MAC: flipping any bit anywhere in the header fails.
    @Test func everyBitIsAuthenticated() {
        for i in 0..<valid.count {
            for bit in 0..<8 {
                var wire = valid
                wire[i] ^= 1 << bit
                let result = serverCheck(wire)
                guard case .failure = result else {
                    Issue.record("byte \(i) bit \(bit) flipped still accepted: \(result)")
                    return
                }
            }
        }
    }

    @Test func tamperedDestinationIsBadMAC() {
        var wire = valid
        wire[23] ^= 0x01  // last byte of the address: 192.0.2.11
        guard case .request(let r, _) = parseRequest(wire) else { Issue.record("not parsed"); return }
        let result = TunnelHeader.verify(r, key: exampleKey, now: exampleTime, replayCache: ReplayCache(capacity: 4))
        #expect(result == .failure(Rejection(.notAuthorized, .badMAC)))
    }

    @Test func replayedHeaderIsRejected() {
        let cache = ReplayCache(capacity: 64)
        #expect(serverCheck(valid, cache: cache) == .success(address("192.0.2.10:443")))
        #expect(serverCheck(valid, cache: cache) == .failure(.notAuthorized))
        // Same nonce, new timestamp and a valid MAC: still the same nonce.
        let again = encodeRequest("192.0.2.10:443", now: exampleTime + 1)
        #expect(serverCheck(again, now: exampleTime + 1, cache: cache) == .failure(.notAuthorized))
        // A fresh nonce goes through.
        let fresh = encodeRequest("192.0.2.10:443", nonce: Nonce(high: 1, low: 2))
        #expect(serverCheck(fresh, cache: cache) == .success(address("192.0.2.10:443")))
    }

    @Test func timestampWindowIsEnforcedBothWays() {
        let window: UInt64 = 30
        func check(_ skew: Int64) -> Result<SocketAddress, Rejection> {
            let sent = UInt64(Int64(exampleTime) + skew)
            let wire = encodeRequest("192.0.2.10:443", now: sent, nonce: .random())
            guard case .request(let r, _) = parseRequest(wire) else { fatalError("not parsed") }
            return TunnelHeader.verify(r, key: exampleKey, now: exampleTime,
                                       replayCache: ReplayCache(capacity: 4, window: window))
        }
        #expect(check(-30) == .success(address("192.0.2.10:443")))
        #expect(check(30) == .success(address("192.0.2.10:443")))
        #expect(check(-31) == .failure(Rejection(.notAuthorized, .timestampTooOld(by: 1))))
        #expect(check(31) == .failure(Rejection(.notAuthorized, .timestampInFuture(by: 1))))
        #expect(check(-3600) == .failure(Rejection(.notAuthorized, .timestampTooOld(by: 3570))))
    }

    @Test func extremeTimestampsDoNotOverflow() {
        for sent in [UInt64.max, 0] {
            let wire = encodeRequest("192.0.2.10:443", now: sent)
            #expect(serverCheck(wire) == .failure(.notAuthorized))
        }
    }

    @Test func truncatedHeaderAtEveryLengthIsNeverAccepted() {
        for n in 0..<valid.count {
            let result = parseRequest(Array(valid[..<n]))
            #expect(result == .needMore(total: n < 2 ? 4 : 72), "prefix \(n)")
            #expect(serverCheck(Array(valid[..<n])) == .failure(.malformedMessage))
        }
    }

    @Test func wrongVersionIsUnsupportedVersion() {
        for v: UInt8 in [0, 2, 0x16, 0x47, 0xff] {  // 0x16: a TLS handshake, 0x47: "GET"
            var wire = valid
            wire[0] = v
            #expect(serverCheck(wire) == .failure(.unsupportedVersion))
            #expect(parseRequest([v]) == .invalid(.unsupportedVersion))
        }
    }

    @Test func inconsistentTotalLengths() {
        var zero = valid
        zero[1] = 0
        #expect(serverCheck(zero) == .failure(.malformedMessage))

        var short = valid  // Total Length ends inside the Auth TLV
        short[1] = 17
        #expect(serverCheck(short) == .failure(.malformedMessage))

        var headerOnly = valid  // 4-byte header claiming no TLVs
        headerOnly[1] = 1
        #expect(serverCheck(headerOnly) == .failure(.malformedMessage))

        // Longer than the TLVs: padding after the Auth TLV is a TLV after Auth.
        var long = valid + [UInt8](repeating: 0, count: 8)
        long[1] = 20
        #expect(serverCheck(long) == .failure(.malformedMessage))

        // The largest header the length byte allows, filled: never more than 1020 bytes read.
        var oversized = valid + [UInt8](repeating: 0x41, count: 2000)
        oversized[1] = 255
        #expect(serverCheck(oversized) == .failure(.malformedMessage))
        #expect(parseRequest(Array(oversized[..<100])) == .needMore(total: 1020))
    }

    @Test func tlvLengthOverruns() {
        var connect = valid
        connect[5] = 30  // Connect TLV claims more than the header holds
        #expect(serverCheck(connect) == .failure(.malformedMessage))

        var auth = valid
        auth[25] = 13  // Auth TLV one word past Total Length
        #expect(serverCheck(auth) == .failure(.malformedMessage))

        var zeroLength = valid
        zeroLength[5] = 0  // a zero-length TLV would loop forever in a naive parser
        #expect(serverCheck(zeroLength) == .failure(.malformedMessage))

        var shortConnect = valid
        shortConnect[5] = 4
        #expect(serverCheck(shortConnect) == .failure(.malformedMessage))
    }

    @Test func connectWithTCPOptionsIsUnsupportedTCPOption() {
        // Connect TLV of 6 words (one word of TCP options), header grown to match.
        var wire = Array(valid[..<24]) + [1, 1, 0, 0] + Array(valid[24...])
        wire[1] = 19
        wire[5] = 6
        #expect(serverCheck(wire) == .failure(.unsupportedTCPOption))
    }

    @Test func otherTLVsAreUnsupportedMessages() {
        for type: UInt8 in [1, 22, 30, 191, 255] {  // Info, Cookie, Error, unassigned, private
            var wire = Array(valid[..<4]) + [type, 1, 0, 0] + Array(valid[4...])
            wire[1] = 19
            #expect(serverCheck(wire) == .failure(.unsupportedMessage), "type \(type)")
        }
    }

    @Test func duplicateOrMisplacedTLVsAreMalformed() {
        var twoConnects = Array(valid[..<24]) + Array(valid[4..<24]) + Array(valid[24...])
        twoConnects[1] = 23
        #expect(serverCheck(twoConnects) == .failure(.malformedMessage))

        // Auth before Connect: Auth must be last so its MAC covers everything.
        var swapped = Array(valid[..<4]) + Array(valid[24...]) + Array(valid[4..<24])
        swapped[1] = 18
        #expect(serverCheck(swapped) == .failure(.malformedMessage))

        var noConnect = Array(valid[..<4]) + Array(valid[24...])
        noConnect[1] = 13
        #expect(serverCheck(noConnect) == .failure(.malformedMessage))
    }

    @Test func authTLVFieldsAreChecked() {
        var algorithm = valid
        algorithm[26] = 2
        #expect(serverCheck(algorithm) == .failure(.notAuthorized))
        var reserved = valid
        reserved[27] = 1
        #expect(serverCheck(reserved) == .failure(.malformedMessage))
    }

    @Test func randomBytesAreRejectedWithoutReadingPastTheBuffer() {
        var rng = SplitMix64(state: 42)
        for _ in 0..<2000 {
            let wire = (0..<Int.random(in: 1...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            guard case .failure = serverCheck(wire) else {
                Issue.record("random bytes accepted: \(hex(wire))")
                return
            }
        }
        #expect(serverCheck(Array("GET / HTTP/1.1\r\nHost: x\r\n\r\n".utf8)) == .failure(.unsupportedVersion))
    }

    @Test func deniedDestinationIsNotAuthorizedAfterTheProof() {
        let policy = DestinationPolicy(serverAddresses: [address("198.51.100.1:0")])
        for target in ["127.0.0.1:22", "10.1.2.3:80", "[::1]:22", "[fe80::1]:80", "198.51.100.1:8080",
                       "[::ffff:127.0.0.1]:22", "169.254.169.254:80"] {
            let wire = encodeRequest(target, nonce: .random())
            guard case .request(let r, _) = parseRequest(wire) else { Issue.record("not parsed"); return }
            let result = TunnelHeader.verify(r, key: exampleKey, now: exampleTime,
                                             replayCache: ReplayCache(capacity: 4), policy: policy)
            guard case .failure(let rejection) = result, case .destinationDenied = rejection.reason else {
                Issue.record("\(target) not denied: \(result)")
                continue
            }
            #expect(rejection.code == .notAuthorized)
        }
        let ok = encodeRequest("192.0.2.10:443")
        #expect(serverCheck(ok, policy: policy) == .success(address("192.0.2.10:443")))
    }

    @Test func rejectionsExplainThemselves() {
        #expect(Rejection(.notAuthorized, .unknownKey(id: 0xab)).description.contains("000000ab"))
        #expect(Rejection(.notAuthorized, .timestampTooOld(by: 5)).description.contains("clock"))
    }
}
