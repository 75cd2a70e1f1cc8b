import Crypto
import Foundation  // DataProtocol conformance of UnsafeRawBufferPointer, for HMAC.update
import MPTCPSocket

extension TunnelHeader {
    /// Prefixed to the MAC input so a MAC made with this key means nothing anywhere else.
    static let macContext: [UInt8] = Array("mptcp-relay tunnel request v1".utf8)

    /// HMAC-SHA256(key, context || authenticated bytes), first 16 bytes as two big-endian halves.
    static func mac(key: TunnelKey, over message: UnsafeRawBufferPointer) -> (UInt64, UInt64) {
        var hmac = HMAC<SHA256>(key: key.symmetricKey)
        macContext.withUnsafeBytes { hmac.update(data: $0) }
        hmac.update(data: message)
        return hmac.finalize().withUnsafeBytes { ($0.be64(0), $0.be64(8)) }
    }

    /// Checks a parsed request: key id, MAC (constant time), timestamp window, nonce reuse,
    /// then the destination policy. The nonce is remembered only once the MAC is good, so
    /// clients without the key cannot fill the replay cache.
    public static func verify(_ request: ConnectRequest, key: TunnelKey, now: UInt64,
                              replayCache: ReplayCache,
                              policy: DestinationPolicy? = nil) -> Result<SocketAddress, Rejection> {
        guard request.keyID == key.id else {
            return .failure(Rejection(.notAuthorized, .unknownKey(id: request.keyID)))
        }
        let expected = withUnsafeTemporaryAllocation(byteCount: request.macOffset, alignment: 8) { buffer in
            writeAuthenticatedPart(request, into: buffer)
            return mac(key: key, over: UnsafeRawBufferPointer(buffer))
        }
        // Constant time: OR of XORs, no early exit that would time how many bytes matched.
        let difference = (expected.0 ^ request.macHigh) | (expected.1 ^ request.macLow)
        guard difference == 0 else { return .failure(Rejection(.notAuthorized, .badMAC)) }

        // Only holders of the key learn whether their clock or nonce was the problem.
        let window = replayCache.window
        if request.timestamp < now, now - request.timestamp > window {
            return .failure(Rejection(.notAuthorized, .timestampTooOld(by: now - request.timestamp - window)))
        }
        if request.timestamp > now, request.timestamp - now > window {
            return .failure(Rejection(.notAuthorized, .timestampInFuture(by: request.timestamp - now - window)))
        }
        switch replayCache.insert(request.nonce, timestamp: request.timestamp, now: now) {
        case .fresh: break
        case .replayed: return .failure(Rejection(.notAuthorized, .replayed))
        case .full: return .failure(Rejection(.resourceExceeded, .replayCacheFull(capacity: replayCache.capacity)))
        }
        // A ping connects nowhere: no destination to judge.
        if let policy, !request.isPing {
            let decision = policy.decide(request.destination)
            guard decision.permitted else {
                return .failure(Rejection(.notAuthorized, .destinationDenied(decision.reason)))
            }
        }
        return .success(request.destination)
    }
}
