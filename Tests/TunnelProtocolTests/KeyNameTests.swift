import MPTCPSocket
import Testing
@testable import TunnelProtocol

/// Issue 26: the Key Name TLV (type 194), the keyring a server looks keys up in, and the ping.
@Suite struct KeyNameTests {
    static let siteA = KeyName("site-a")!
    /// docs/tunnel-protocol.md, "Key Name TLV": the worked example request naming "site-a".
    static let documented = bytes(hex: """
        011500000a0501bb00000000000000000000ffffc000020a
        c20306736974652d61000000
        c00c0100630dcd29000000006553f10000112233445566778899aabbccddeeff
        d50106a605db0eacc8e8744f55f4084f
        """)
    static let documentedPing = bytes(hex: """
        011500000a05000000000000000000000000000000000000
        c20306736974652d61000000
        c00c0100630dcd29000000006553f10000112233445566778899aabbccddeeff
        2c05f62ba70fc1882b359654bcac7a87
        """)

    func encode(_ destination: SocketAddress, name: KeyName?, key: TunnelKey = exampleKey, nonce: Nonce = exampleNonce) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: TunnelHeader.maximumRequestLength)
        let n = out.withUnsafeMutableBytes {
            TunnelHeader.encodeRequest(destination: destination, key: key, keyName: name, now: exampleTime, nonce: nonce, into: $0)
        }
        return Array(out[..<n])
    }

    @Test func encoderWritesTheDocumentedBytes() {
        #expect(hex(encode(address("192.0.2.10:443"), name: Self.siteA)) == hex(Self.documented))
        #expect(hex(encode(TunnelHeader.pingDestination, name: Self.siteA)) == hex(Self.documentedPing))
        // Without a name: the 72-byte single-key form, unchanged.
        #expect(encode(address("192.0.2.10:443"), name: nil) == encodeRequest("192.0.2.10:443"))
    }

    @Test func parsesTheNameAndVerifiesWithTheNamedKey() throws {
        guard case .request(let request, let consumed) = parseRequest(Self.documented + [0x47]) else {
            Issue.record("documented request did not parse"); return
        }
        #expect(consumed == 84)
        #expect(request.keyName == Self.siteA)
        #expect(!request.isPing)
        let ring = try TunnelKeyring([TunnelKeyring.Entry(name: KeyName("site-b")!, key: otherKey), TunnelKeyring.Entry(name: Self.siteA, key: exampleKey)])
        let entry = try ring.lookup(request).get()
        #expect(ring.entries[entry].name == Self.siteA)
        let verdict = TunnelHeader.verify(request, key: ring.entries[entry].key, now: exampleTime, replayCache: ReplayCache(capacity: 4))
        #expect(verdict == .success(address("192.0.2.10:443")))
    }

    @Test func aPingIsAuthenticatedAndSkipsThePolicy() throws {
        guard case .request(let request, _) = parseRequest(Self.documentedPing) else { Issue.record("ping did not parse"); return }
        #expect(request.isPing)
        let verdict = TunnelHeader.verify(request, key: exampleKey, now: exampleTime, replayCache: ReplayCache(capacity: 4),
                                          policy: DestinationPolicy())
        #expect((try? verdict.get()) != nil)
        // A ping is a request like any: replayed, it is refused.
        let cache = ReplayCache(capacity: 4)
        _ = TunnelHeader.verify(request, key: exampleKey, now: exampleTime, replayCache: cache)
        let replay = TunnelHeader.verify(request, key: exampleKey, now: exampleTime, replayCache: cache)
        #expect(replay == .failure(Rejection(.notAuthorized, .replayed)))
        // With the wrong key: refused like any header.
        #expect(TunnelHeader.verify(request, key: otherKey, now: exampleTime, replayCache: ReplayCache(capacity: 4))
                == .failure(Rejection(.notAuthorized, .unknownKey(id: exampleKey.id))))
    }

    @Test func keyringFindsUnnamedRequestsByIDAndRefusesUnknownOnes() throws {
        let ring = try TunnelKeyring([TunnelKeyring.Entry(name: Self.siteA, key: exampleKey)])
        guard case .request(let unnamed, _) = parseRequest(encodeRequest("192.0.2.10:443")),
              case .request(let other, _) = parseRequest(encodeRequest("192.0.2.10:443", key: otherKey)),
              case .request(let unknownName, _) = parseRequest(encode(address("192.0.2.10:443"), name: KeyName("site-z")!)) else {
            Issue.record("requests did not parse"); return
        }
        #expect(try ring.lookup(unnamed).get() == 0)
        #expect(ring.lookup(other) == .failure(Rejection(.notAuthorized, .unknownKey(id: otherKey.id))))
        #expect(ring.lookup(unknownName) == .failure(Rejection(.notAuthorized, .unknownKeyName(KeyName("site-z")!))))
        // A name that exists but a key that is not its key: the MAC check refuses it.
        guard case .request(let wrongKey, _) = parseRequest(encode(address("192.0.2.10:443"), name: Self.siteA, key: otherKey)) else { return }
        let i = try ring.lookup(wrongKey).get()
        #expect(TunnelHeader.verify(wrongKey, key: ring.entries[i].key, now: exampleTime, replayCache: ReplayCache(capacity: 4))
                == .failure(Rejection(.notAuthorized, .unknownKey(id: otherKey.id))))
    }

    @Test func keyringRefusesOneKeyUnderTwoNames() {
        #expect(throws: TunnelKeyringError.sameKey("a", "b")) {
            try TunnelKeyring([TunnelKeyring.Entry(name: KeyName("a")!, key: exampleKey), TunnelKeyring.Entry(name: KeyName("b")!, key: exampleKey)])
        }
    }

    /// Every malformed Key Name TLV is Malformed Message, before any key is looked at.
    @Test(arguments: [
        ("name length 0", [(26, 0)]),
        ("name length 33", [(26, 33)]),
        ("TLV length not the name's", [(25, 4)]),
        ("a byte outside the alphabet", [(28, UInt8(ascii: "/"))]),
        ("a leading dot", [(27, UInt8(ascii: "."))]),
        ("non-zero padding", [(35, 1)]),
        ("a NUL inside the name", [(30, 0)]),
    ] as [(String, [(Int, UInt8)])])
    func malformedNamesAreRefused(_ what: String, _ damage: [(Int, UInt8)]) {
        var b = Self.documented
        for (offset, value) in damage { b[offset] = value }
        #expect(parseRequest(b) == .invalid(.malformedMessage), "\(what)")
    }

    @Test func theNameComesOnceAndAfterConnect() {
        let tlv = Array(Self.documented[24..<36])
        // Before Connect.
        var before = Array(Self.documented[0..<4]) + tlv + Array(Self.documented[4..<24]) + Array(Self.documented[36...])
        #expect(parseRequest(before) == .invalid(.malformedMessage))
        // Twice.
        var twice = Array(Self.documented[0..<36]) + tlv + Array(Self.documented[36...])
        twice[1] = UInt8(twice.count / 4)
        #expect(parseRequest(twice) == .invalid(.malformedMessage))
        // After Auth.
        before = Array(Self.documented[0..<24]) + Array(Self.documented[36...]) + tlv
        #expect(parseRequest(before) == .invalid(.malformedMessage))
    }

    @Test(arguments: ["a", "site-berlin.01", "A_b-c", String(repeating: "x", count: 32)])
    func validNames(_ text: String) {
        #expect(KeyName.problem(text) == nil)
        #expect(KeyName(text)?.description == text)
    }

    @Test(arguments: ["", ".hidden", "..", "a/b", "a b", "é", String(repeating: "x", count: 33)])
    func invalidNames(_ text: String) {
        #expect(KeyName(text) == nil)
        #expect(KeyName.problem(text) != nil)
    }
}
