#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import MPTCPSocket
import SystemPackage
import TunnelProtocol

/// A tunnel connection whose checked header asked for UDP, as the worker hands it over.
struct ServerFlowRequest: Sendable {
    let tunnel: Int32
    let peer: SocketAddress
    let destination: SocketAddress
    /// Bytes the worker read past the header: the first frames.
    let early: [UInt8]
    /// The per-key account the flow holds (TunnelKeyAccounts), released when it ends; -1: none.
    let keySlot: Int32
}

/// The server end: the worker that accepted the tunnel connection checked its header
/// (key, freshness, replay, destination policy, pre-auth budget) exactly as for TCP, then
/// handed the socket here. The flow gets a UDP socket connected to the destination, so
/// only that destination's answers come back.
extension DatagramEngine {
    func adopt(_ request: ServerFlowRequest) {
        func refuse(_ code: ErrorCode, _ why: String) {
            TunnelCodec.sendRefusal(request.tunnel, code: code.rawValue)
            close(request.tunnel)
            if request.keySlot >= 0 { accounts?.release(request.keySlot, bytesUp: 0, bytesDown: 0) }
            limitNotice("tunnel client=\(request.peer) UDP to \(request.destination) refused: \(why)")
        }
        guard openFlows < udp.maxFlows else {
            counters.drop(.flowLimit)
            refuse(.resourceExceeded, "max_flows (\(udp.maxFlows)) reached")
            return
        }
        let udpSocket = request.destination.withSockaddr { cnet_udp_flow(nil, 0, $0, $1) }
        guard udpSocket >= 0 else {
            let e = Errno(rawValue: -udpSocket)
            refuse(e == .networkUnreachable || e == .noRouteToHost ? .destinationUnreachable : .networkFailure, "\(e)")
            return
        }
        limitUnsent(request.tunnel)
        var reply = [UInt8](repeating: 0, count: 8)
        let length = reply.withUnsafeMutableBytes { TunnelHeader.encodeReply(error: nil, into: $0) }
        let slot = insert { id, generation in
            DatagramFlow(id: id, generation: generation, client: request.peer, destination: request.destination,
                         datagramSocket: udpSocket, tunnel: request.tunnel, phase: .open, awaitingReply: false,
                         prefix: Array(reply[..<length]), queueBytes: udp.queueBytes, now: now)
        }
        let flow = flows[slot]!
        flow.keySlot = request.keySlot
        flow.status = MPTCP.status(of: FileDescriptor(rawValue: request.tunnel), createdAs: .mptcp)
        logger.debug("udp flow=u\(flow.id) tunnel client=\(request.peer) destination=\(request.destination) \(flow.status!)")
        flush(slot, flow)
        if !request.early.isEmpty, flows[slot] === flow {
            request.early.withUnsafeBytes { flow.fromTunnel.append($0) }
            deliver(slot, flow)
        }
    }

    /// Called by a worker (any thread): the engine takes the socket from here on. False when
    /// the engine has stopped (the caller still owns the socket).
    func handOver(_ request: ServerFlowRequest) -> Bool { post(.adopt(request)) }

    /// A reload removed keys with `revoke = "now"`: their flows end as their TCP
    /// connections do.
    func revoke(_ slots: [Int32]) { _ = post(.revoke(slots)) }

    func revokeFlows(_ slots: [Int32]) {
        var closed = 0
        for slot in flows.indices {
            guard let flow = flows[slot], flow.keySlot >= 0, slots.contains(flow.keySlot) else { continue }
            closeFlow(slot, why: "key revoked")
            closed += 1
        }
        if closed > 0 { logger.notice("udp: ended \(closed) flow(s) of revoked key(s)") }
    }
}
