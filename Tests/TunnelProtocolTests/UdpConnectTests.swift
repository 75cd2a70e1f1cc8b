import MPTCPSocket
import Testing
@testable import TunnelProtocol

/// The UDP Connect TLV (type 193, docs/tunnel-protocol.md "UDP flows"): the bytes below were
/// computed with Python's hmac/hashlib from the document, not with the Swift encoder.
let exampleUdpHex = "01120000c105003500000000000000000000ffffc0000235c00c0100630dcd29000000006553f100"
    + "00112233445566778899aabbccddeeff428697529f0d27a86da3d7c22786a74a"

@Suite struct UdpConnectTests {
    func encode(_ destination: String, transport: TunnelTransport) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: TunnelHeader.requestLength)
        let n = out.withUnsafeMutableBytes {
            TunnelHeader.encodeRequest(destination: address(destination), transport: transport, key: exampleKey,
                                       now: exampleTime, nonce: exampleNonce, into: $0)
        }
        return Array(out[..<n])
    }

    @Test func workedExampleMatchesDocumentation() {
        #expect(hex(encode("192.0.2.53:53", transport: .datagram)) == exampleUdpHex)
    }

    @Test(arguments: ["192.0.2.53:53", "[2001:db8::1]:443"])
    func parsesAsDatagramAndVerifies(destination: String) throws {
        let wire = encode(destination, transport: .datagram)
        guard case .request(let request, let consumed) = parseRequest(wire) else {
            Issue.record("UDP request did not parse")
            return
        }
        #expect(consumed == wire.count)
        #expect(request.transport == .datagram)
        let verdict = TunnelHeader.verify(request, key: exampleKey, now: exampleTime, replayCache: ReplayCache())
        #expect(verdict == .success(address(destination)))
    }

    /// The type byte is authenticated: a TCP request relabelled as UDP (or back) fails the
    /// MAC, so nobody can turn one kind into the other without the key.
    @Test func switchingTheTypeBreaksTheMAC() throws {
        for (transport, other) in [(TunnelTransport.stream, UInt8(193)), (.datagram, UInt8(10))] {
            var wire = encode("192.0.2.53:53", transport: transport)
            wire[4] = other
            guard case .request(let request, _) = parseRequest(wire) else {
                Issue.record("relabelled request did not parse")
                continue
            }
            let verdict = TunnelHeader.verify(request, key: exampleKey, now: exampleTime, replayCache: ReplayCache())
            #expect(verdict.failureReason == .badMAC, "type \(other): \(verdict)")
        }
    }

    @Test func tcpRequestsStayStream() {
        guard case .request(let request, _) = parseRequest(encode("192.0.2.10:443", transport: .stream)) else {
            Issue.record("TCP request did not parse")
            return
        }
        #expect(request.transport == .stream)
    }
}

extension Result where Success == SocketAddress, Failure == Rejection {
    var failureReason: Rejection.Reason? {
        if case .failure(let r) = self { return r.reason }
        return nil
    }
}
