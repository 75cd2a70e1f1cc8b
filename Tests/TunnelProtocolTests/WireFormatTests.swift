import MPTCPSocket
import Testing
@testable import TunnelProtocol

/// The bytes below were computed independently (Python hashlib/hmac) and appear in
/// docs/tunnel-protocol.md; the Swift encoder must produce exactly them.
let exampleV4Hex = "011200000a0501bb00000000000000000000ffffc000020ac00c0100630dcd29000000006553f100"
    + "00112233445566778899aabbccddeeff5e99c368f41e749f77073e4fbfb71213"
let exampleV6Hex = "011200000a05005020010db8000000000000000000000001c00c0100630dcd29000000006553f100"
    + "00112233445566778899aabbccddeeff308f12e11d039507479715378b0e2d86"

@Suite struct WireFormatTests {
    @Test func keyIDIsSHA256Prefix() {
        #expect(exampleKey.id == 0x630d_cd29)
        #expect(exampleKey.idString == "630dcd29")
    }

    @Test func workedExampleIPv4MatchesDocumentation() {
        #expect(hex(encodeRequest("192.0.2.10:443")) == exampleV4Hex)
    }

    @Test func workedExampleIPv6MatchesDocumentation() {
        #expect(hex(encodeRequest("[2001:db8::1]:80")) == exampleV6Hex)
    }

    @Test(arguments: ["192.0.2.10:443", "203.0.113.7:1", "[2001:db8::1]:80", "[2001:db8:ffff::abcd]:65535"])
    func roundTrip(destination: String) throws {
        var wire = encodeRequest(destination, now: exampleTime + 5, nonce: .random())
        #expect(wire.count == TunnelHeader.requestLength)
        let payload: [UInt8] = Array("GET / HTTP/1.1\r\n".utf8)
        wire += payload  // the client's first bytes travel in the same segment
        guard case .request(let request, let consumed) = parseRequest(wire) else {
            Issue.record("not parsed: \(parseRequest(wire))")
            return
        }
        #expect(consumed == TunnelHeader.requestLength)
        #expect(Array(wire[consumed...]) == payload)
        #expect(request.destination == address(destination))
        #expect(request.destination.family == address(destination).family)
        #expect(request.keyID == exampleKey.id)
        #expect(request.timestamp == exampleTime + 5)
        let verified = try TunnelHeader.verify(request, key: exampleKey, now: exampleTime,
                                               replayCache: ReplayCache(capacity: 8)).get()
        #expect(verified == address(destination))
    }

    @Test func incrementalParseAsksForTheRightAmount() {
        let wire = encodeRequest("192.0.2.10:443")
        #expect(parseRequest([]) == .needMore(total: 4))
        #expect(parseRequest([1]) == .needMore(total: 4))
        for n in 2..<wire.count {
            #expect(parseRequest(Array(wire[..<n])) == .needMore(total: 72), "prefix \(n)")
        }
        guard case .request(_, 72) = parseRequest(wire) else {
            Issue.record("full header not parsed")
            return
        }
    }

    @Test func successReplyIsABareFixedHeader() {
        let reply = encodeReply(nil)
        #expect(reply == [0x01, 0x01, 0x00, 0x00])
        #expect(parseReply(reply) == .success(consumed: 4))
        #expect(parseReply(reply + [0x48, 0x54]) == .success(consumed: 4))  // data follows
    }

    @Test(arguments: [ErrorCode.malformedMessage, .notAuthorized, .resourceExceeded, .networkFailure,
                      .connectionReset, .destinationUnreachable, .unsupportedTCPOption])
    func errorReplyRoundTrips(code: ErrorCode) {
        let reply = encodeReply(code)
        #expect(reply == [0x01, 0x02, 0x00, 0x00, 0x1e, 0x01, code.rawValue, 0x00])
        #expect(parseReply(reply) == .failure(code, consumed: 8))
    }

    @Test func unsupportedVersionReplyNamesTheSupportedVersion() {
        #expect(encodeReply(.unsupportedVersion) == [0x01, 0x02, 0x00, 0x00, 0x1e, 0x01, 0x00, 0x01])
    }

    @Test func replyParserSkipsUnknownTLVsAndHandlesTruncation() {
        // An RFC 8803 converter may add an Info TLV (type 1) before the Error TLV.
        let reply: [UInt8] = [0x01, 0x03, 0, 0, 0x01, 0x01, 0, 0, 0x1e, 0x01, 97, 0]
        #expect(parseReply(reply) == .failure(.destinationUnreachable, consumed: 12))
        #expect(parseReply([]) == .needMore(total: 4))
        #expect(parseReply([1]) == .needMore(total: 4))
        #expect(parseReply(Array(reply[..<7])) == .needMore(total: 12))
        #expect(parseReply([2, 1, 0, 0]) == .invalid)
        #expect(parseReply([1, 0, 0, 0]) == .invalid)
        #expect(parseReply([1, 2, 0, 0, 0x1e, 0x02, 1, 0]) == .invalid)  // TLV overruns the header
        #expect(parseReply([1, 2, 0, 0, 0x1e, 0x00, 1, 0]) == .invalid)  // zero-length TLV
    }

    @Test func errorCodesHaveRegistryNames() {
        #expect(ErrorCode.notAuthorized.description == "Not Authorized (32)")
        #expect(ErrorCode(rawValue: 200).description == "error code 200")
    }
}
