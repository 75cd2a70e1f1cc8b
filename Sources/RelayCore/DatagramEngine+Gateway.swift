#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import MPTCPSocket
import SystemPackage
import TunnelProtocol

/// The gateway end: LAN datagrams arrive on the TPROXY listener with their original
/// destination; each new (client, destination) pair gets a transparent UDP socket that
/// answers from the destination's address, and a tunnel connection whose header asks the
/// server for UDP to that destination.
extension DatagramEngine {
    /// Datagrams on a listener: the first of each flow (later ones reach the flow's own
    /// socket, which the kernel prefers as the exact match), or stragglers queued before it.
    func readListener(_ index: Int) {
        let listener = gatewayListeners[index]
        var source = sockaddr_storage()
        var original = sockaddr_storage()
        for _ in 0..<64 {
            let n = cnet_udp_receive(listener.fd, scratch, 65536, &source, &original)
            if n < 0 {
                if -n == EAGAIN || -n == EINTR { return }
                // EMSGSIZE cannot happen below 64 KiB; anything else is this datagram's own.
                continue
            }
            let datagram = UnsafeRawBufferPointer(start: scratch, count: n)
            guard let client = withUnsafePointer(to: &source, { SocketAddress(storage: UnsafeRawPointer($0)) }),
                  let destination = withUnsafePointer(to: &original, { SocketAddress(storage: UnsafeRawPointer($0)) }) else {
                counters.drop(.notIntercepted)
                continue
            }
            if let slot = byKey[FlowKey(client: client, destination: destination)], let flow = flows[slot] {
                enqueue(flow, datagram)
                flush(slot, flow)
                continue
            }
            openFlow(client: client, destination: destination, listener: listener.settings, first: datagram)
        }
    }

    private func openFlow(client: SocketAddress, destination: SocketAddress, listener: ListenerSettings, first: UnsafeRawBufferPointer) {
        guard let tunnel = listener.tunnel, let key = tunnel.key, !tunnel.servers.isEmpty else { return }
        // The same server a TCP connection to this host would take (rendezvous hash over the
        // servers in service), so a host sees one address for the site.
        let out = serversOut.withLock { $0 }
        let via = tunnel.servers[TunnelServerChoice.pick(tunnel.servers, destination: destination, tried: 0, out: out) ?? 0]
        let host = client.withoutPort  // caps count per LAN host
        if openFlows >= udp.maxFlows {
            counters.drop(.flowLimit)
            limitNotice("max_flows (\(udp.maxFlows)) reached: new UDP flows are dropped until some end")
            return
        }
        if perClient[host, default: 0] >= udp.maxFlowsPerClient {
            counters.drop(.clientLimit)
            limitNotice("client \(host.host) has max_flows_per_client (\(udp.maxFlowsPerClient)) UDP flows open: its new flows are dropped")
            return
        }
        let decision = steering?.current.withLock { $0 }.decision(for: via) ?? .mainTable
        if case .refuse = decision {
            counters.drop(.tunnelDown)
            return
        }
        // The LAN side: bound (transparently) to the address the client wrote to, so the
        // answers come from its real peer; connected to the client, so the kernel hands
        // this flow's next datagrams to this socket rather than to the listener.
        let lan = destination.withSockaddr { local, localLength in
            client.withSockaddr { peer, peerLength in cnet_udp_flow(local, localLength, peer, peerLength) }
        }
        guard lan >= 0 else {
            counters.drop(.sendFailed)
            limitNotice("cannot open a UDP socket answering from \(destination) to \(client): \(Errno(rawValue: -lan))")
            return
        }
        let opened: (FileDescriptor, StreamProtocol)
        do {
            opened = try Socket.openStream(family: via.family, preferMPTCP: upstreamMPTCP)
        } catch {
            close(lan)
            counters.drop(.tunnelDown)
            limitNotice("cannot open a tunnel socket for UDP: \(error)")
            return
        }
        let fd = opened.0
        if case .bind(let source) = decision { try? Socket.bindSource(fd, source) }
        _ = try? Socket.setOption(fd, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
        // Datagrams wait in the flow's queue, where their age is known and bounded, not in
        // the socket: the kernel keeps only this much unsent beyond what is in flight.
        limitUnsent(fd.rawValue)
        var phase = DatagramFlow.Phase.connecting
        do {
            try Socket.connect(fd, to: via)
            phase = .open
        } catch where error == .nowInProgress {
        } catch {
            close(lan)
            try? fd.close()
            counters.drop(.tunnelDown)
            limitNotice("tunnel connect to \(via) failed: \(error)")
            return
        }
        var header = [UInt8](repeating: 0, count: TunnelHeader.requestLength(keyName: tunnel.keyName))
        _ = header.withUnsafeMutableBytes {
            TunnelCodec.encodeRequest(destination: destination, transport: .datagram, key: key, keyName: tunnel.keyName, now: UInt64(time(nil)), into: $0)
        }
        let slot = insert { id, generation in
            DatagramFlow(id: id, generation: generation, client: client, destination: destination, datagramSocket: lan,
                         tunnel: fd.rawValue, phase: phase, awaitingReply: true, prefix: header,
                         queueBytes: udp.queueBytes, now: now)
        }
        let flow = flows[slot]!
        flow.tunnelProtocol = opened.1
        byKey[FlowKey(client: client, destination: destination)] = slot
        perClient[host, default: 0] += 1
        logger.debug("udp flow=u\(flow.id) client=\(client) destination=\(destination) via=\(via): opening")
        enqueue(flow, first)
        if phase == .open { flush(slot, flow) }
    }

    /// The tunnel's connect finished (EPOLLOUT while connecting).
    func tunnelConnected(_ slot: Int, _ flow: DatagramFlow) {
        let error = Socket.pendingError(FileDescriptor(rawValue: flow.tunnel))
        guard error == 0 else {
            let via = flow.tunnelProtocol == .mptcp ? "MPTCP" : "TCP"
            closeFlow(slot, why: "tunnel connect (\(via)) failed: \(Errno(rawValue: error))", holdDown: true)
            return
        }
        flow.phase = .open
        flow.toTunnel.restamp(now)
        flush(slot, flow)
    }

    /// The server's reply, first thing on the tunnel; false when the flow ended.
    func readReply(_ slot: Int, _ flow: DatagramFlow) -> Bool {
        switch TunnelCodec.parseReply(flow.fromTunnel.unread) {
        case .needMore:
            return false
        case .success(let consumed):
            flow.fromTunnel.skip(consumed)
            flow.awaitingReply = false
            flow.status = MPTCP.status(of: FileDescriptor(rawValue: flow.tunnel), createdAs: flow.tunnelProtocol)
            logger.debug("udp flow=u\(flow.id) client=\(flow.client) destination=\(flow.destination) tunnel=connected \(flow.status!)")
            return true
        case .failure(let text):
            // Unsupported Message to a UDP header: a server that predates UDP flows.
            let hint = text == .unsupportedMessage ? " (a server without UDP support: upgrade it; TCP is unaffected)" : ""
            closeFlow(slot, why: "refused: tunnel server answered \(text)\(hint)", holdDown: true)
            return false
        case .invalid(let text):
            closeFlow(slot, why: "refused: tunnel server reply invalid: \(text)", holdDown: true)
            return false
        }
    }

    /// One notice every 5 s at most for conditions that repeat per datagram.
    func limitNotice(_ text: String) {
        guard now - lastLimitLog >= 5_000_000_000 else { return }
        lastLimitLog = now
        logger.notice("udp: \(text) (further such notices held back 5 s; counts in mptcp_relay_udp_drops_total)")
    }
}
