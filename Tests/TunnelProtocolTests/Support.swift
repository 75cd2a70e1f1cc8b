import MPTCPSocket
@testable import TunnelProtocol

/// The key of docs/tunnel-protocol.md's worked example: bytes 0x00...0x1f.
let exampleKey = try! TunnelKey(bytes: Array(0..<32))
let otherKey = try! TunnelKey(bytes: Array(repeating: 0xa5, count: 32))
let exampleNonce = Nonce(high: 0x0011_2233_4455_6677, low: 0x8899_aabb_ccdd_eeff)
let exampleTime: UInt64 = 1_700_000_000

func address(_ text: String) -> SocketAddress { try! SocketAddress(parsing: text) }

func encodeRequest(_ destination: String, key: TunnelKey = exampleKey, now: UInt64 = exampleTime,
                   nonce: Nonce = exampleNonce) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: TunnelHeader.requestLength)
    let n = out.withUnsafeMutableBytes {
        TunnelHeader.encodeRequest(destination: address(destination), key: key, now: now, nonce: nonce, into: $0)
    }
    return Array(out[..<n])
}

func parseRequest(_ bytes: [UInt8]) -> RequestParse {
    bytes.withUnsafeBytes { TunnelHeader.parseRequest($0) }
}

func parseReply(_ bytes: [UInt8]) -> ReplyParse {
    bytes.withUnsafeBytes { TunnelHeader.parseReply($0) }
}

func encodeReply(_ error: ErrorCode?) -> [UInt8] {
    var out = [UInt8](repeating: 0, count: TunnelHeader.maximumReplyLength)
    let n = out.withUnsafeMutableBytes { TunnelHeader.encodeReply(error: error, into: $0) }
    return Array(out[..<n])
}

/// Parses and verifies in one step, as the server does; `.invalid` codes come back as failures.
func serverCheck(_ bytes: [UInt8], key: TunnelKey = exampleKey, now: UInt64 = exampleTime,
                 cache: ReplayCache = ReplayCache(capacity: 64),
                 policy: DestinationPolicy? = nil) -> Result<SocketAddress, ErrorCode> {
    switch parseRequest(bytes) {
    case .needMore: return .failure(.malformedMessage)  // what the server does at end of stream
    case .invalid(let code): return .failure(code)
    case .request(let request, _):
        return TunnelHeader.verify(request, key: key, now: now, replayCache: cache, policy: policy)
            .mapError { $0.code }
    }
}

func hex(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

func bytes(hex: String) -> [UInt8] {
    let digits = Array(hex.utf8.filter { $0 != 0x20 && $0 != 0x0a })
    return stride(from: 0, to: digits.count, by: 2).map {
        UInt8(String(decoding: digits[$0..<$0 + 2], as: UTF8.self), radix: 16)!
    }
}

/// SplitMix64: a seeded generator, so a failing property run can be replayed exactly.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9e37_79b9_7f4a_7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }
}
