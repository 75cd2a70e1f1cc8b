import MPTCPSocket
import Testing
@testable import TunnelProtocol

/// Seeded random and mutated inputs (reproducible: the seed is in the failure message).
/// Properties: nothing crashes or reads out of bounds; parse results are self-consistent;
/// and nothing verifies unless it is byte for byte a header made with the key.
@Suite struct PropertyTests {
    static let iterations = 100_000

    @Test func mutatedHeadersNeverVerifyWithoutTheKey() {
        let seed: UInt64 = 0x5eed_0001
        var rng = SplitMix64(state: seed)
        var stats = (parsed: 0, verified: 0, invalid: 0, needMore: 0)
        let destinations = ["192.0.2.10:443", "[2001:db8::1]:80", "198.51.100.77:8080"]

        for iteration in 0..<Self.iterations {
            let nonce = Nonce(high: rng.next(), low: rng.next())
            let original = encodeRequest(destinations[iteration % destinations.count], nonce: nonce)
            let input = mutate(original, rng: &rng, iteration: iteration)

            let result = parseRequest(input)
            switch result {
            case .needMore(let total):
                stats.needMore += 1
                #expect(total > input.count && total <= TunnelHeader.maximumLength && total % 4 == 0,
                        "seed \(seed) iteration \(iteration): needMore(\(total)) for \(input.count) bytes")
            case .invalid:
                stats.invalid += 1
            case .request(let request, let consumed):
                stats.parsed += 1
                #expect(consumed == TunnelHeader.requestLength(keyName: request.keyName) && consumed <= input.count)
                // Fresh cache: replay protection must not be what saves us here.
                let verdict = TunnelHeader.verify(request, key: exampleKey, now: exampleTime,
                                                  replayCache: ReplayCache(capacity: 2))
                if case .success = verdict {
                    stats.verified += 1
                    #expect(Array(input[..<consumed]) == original,
                            "seed \(seed) iteration \(iteration): accepted a header the key did not make: \(hex(input))")
                }
            }
            if case .invalid(let code) = result {
                #expect([ErrorCode.unsupportedVersion, .malformedMessage, .unsupportedMessage,
                         .notAuthorized, .unsupportedTCPOption].contains(code))
            }
        }
        print("property: \(Self.iterations) inputs: \(stats.parsed) parsed, \(stats.verified) verified "
              + "(unmutated), \(stats.invalid) invalid, \(stats.needMore) need more")
        #expect(stats.parsed > 1000 && stats.invalid > 1000 && stats.needMore > 1000)
    }

    @Test func repliesNeverOverreadOrMiscount() {
        var rng = SplitMix64(state: 0x5eed_0002)
        for _ in 0..<Self.iterations {
            var input = (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            if !input.isEmpty && rng.next() % 2 == 0 { input[0] = 1 }
            if input.count > 1 && rng.next() % 2 == 0 { input[1] = UInt8.random(in: 0...10, using: &rng) }
            switch parseReply(input) {
            case .needMore(let total): #expect(total > input.count && total % 4 == 0)
            case .success(let consumed), .failure(_, let consumed):
                #expect(consumed <= input.count && consumed >= 4 && consumed % 4 == 0)
            case .invalid: break
            }
        }
    }

    /// Mixes the mutations a fuzzer would try: bit flips, byte overwrites with boundary
    /// values, length-field edits, truncation, insertion, deletion, and plain noise.
    func mutate(_ original: [UInt8], rng: inout SplitMix64, iteration: Int) -> [UInt8] {
        var bytes = original
        let interesting: [UInt8] = [0, 1, 2, 4, 5, 6, 10, 12, 13, 17, 18, 19, 30, 0x7f, 0x80, 0xc0, 0xfe, 0xff]
        for _ in 0..<Int.random(in: 1...3, using: &rng) {
            switch rng.next() % 9 {
            case 0 where !bytes.isEmpty:
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= 1 << UInt8(rng.next() % 8)
            case 1 where !bytes.isEmpty:
                bytes[Int.random(in: 0..<bytes.count, using: &rng)] = interesting.randomElement(using: &rng)!
            case 2 where bytes.count > 25:
                // Length fields: fixed header, Connect TLV, Auth TLV.
                bytes[[1, 5, 25].randomElement(using: &rng)!] = interesting.randomElement(using: &rng)!
            case 3:
                bytes = Array(bytes.prefix(Int.random(in: 0...bytes.count, using: &rng)))
            case 4:
                let at = Int.random(in: 0...bytes.count, using: &rng)
                bytes.insert(contentsOf: (0..<4).map { _ in UInt8.random(in: 0...255, using: &rng) }, at: at)
            case 5 where bytes.count > 4:
                let at = Int.random(in: 0..<(bytes.count - 4), using: &rng)
                bytes.removeSubrange(at..<at + 4)
            case 6:
                bytes = (0..<Int.random(in: 0...300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
                if rng.next() % 2 == 0, !bytes.isEmpty { bytes[0] = 1 }  // get past the version check
            case 7:
                bytes += (0..<Int.random(in: 1...64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            default:
                // Leave every 50th input intact so the success path is exercised too.
                if iteration % 50 == 0 { return original }
            }
        }
        return bytes
    }
}
