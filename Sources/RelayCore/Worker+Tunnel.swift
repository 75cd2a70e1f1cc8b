#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import MPTCPSocket
import SystemPackage
import TunnelProtocol

/// Both ends of the tunnel: the gateway writes a request header (plus the client's first
/// bytes) and reads the server's reply; the server reads and checks the request, connects
/// to the destination it names and answers. The wire format lives in TunnelCodec.
extension Worker {
    // MARK: Gateway side

    /// Writes the request header into the up direction's buffer, then whatever the client
    /// already sent, so that with Fast Open both ride in the SYN. False when the client has
    /// reset already: the connection is closed with a reset and nothing is dialled (the
    /// error is reported once; a later read would see a clean EOF and pass a truncated
    /// stream on as whole).
    func prepareTunnelRequest(_ slot: Int32, destination: SocketAddress, tunnel: TunnelSettings) -> Bool {
        let c = table[slot]
        let buffer = handshakeBuffers.take()
        let base = handshakeBuffers.pointer(buffer)
        var length = encodeTunnelRequest(base, destination: destination, tunnel: tunnel)
        c.pointee.up.buffer = buffer
        // With a second server to fall back on, the request and these first bytes stay until
        // the reply says whether they must go to another server. With Fast Open, the up
        // direction also waits for the reply: the socket's handshake is still under way when
        // the request has gone (in the SYN), and a client's FIN passed on then would be a
        // shutdown(SHUT_WR) on a socket in SYN_SENT, which Linux turns into a disconnect (no
        // error, no SYN-ACK ever, the connection hung until the connect timeout; measured
        // 5-18 of ~450 short tunnelled connections in 6 s).
        if tunnel.servers.count > 1 || tunnel.fastOpen { c.pointee.up.handshake = .holdingForReply }
        let outcome = DataPath.receive(c.pointee.client, into: base + length, count: HandshakeBuffers.size - length)
        switch outcome {
        case .moved(let early):
            length += early
            countBytes(c, 0, early)
        case .eof, .wouldBlock:
            // EOF stays readable: the up direction passes it on after the request.
            break
        case .shortage(let e):
            beginClose(slot, reason: .resources(e.rawValue), reset: true)
            return false
        case .notConnectedYet, .unsupported, .peerReset:
            beginClose(slot, reason: .resetByClient(outcome.error?.rawValue ?? EIO), reset: true)
            return false
        }
        c.pointee.up.prefixStart = 0
        c.pointee.up.prefixEnd = length
        return true
    }

    private func encodeTunnelRequest(_ base: UnsafeMutableRawPointer, destination: SocketAddress, tunnel: TunnelSettings) -> Int {
        guard let key = tunnel.key else { preconditionFailure("a gateway listener has a key (config and CLI require key_file with via)") }
        return TunnelCodec.encodeRequest(destination: destination, key: key, keyName: tunnel.keyName, now: wallClock(),
                                         into: UnsafeMutableRawBufferPointer(start: base, count: HandshakeBuffers.size))
    }

    /// The server a new connection to `destination` goes to (TunnelServerChoice).
    func dialTunnelServer(_ slot: Int32, destination: SocketAddress, tunnel: TunnelSettings) {
        let c = table[slot]
        let server = TunnelServerChoice.pick(tunnel.servers, destination: destination, tried: 0, out: serversOut) ?? 0
        c.pointee.server = server
        c.pointee.serversTried = 1 << UInt32(server)
        dial(slot, to: tunnel.servers[server], mptcp: true, fastOpen: tunnel.fastOpen)
    }

    /// The server refused or failed before the client was sent anything, and the client's
    /// bytes are all still held: the same request (with a fresh nonce) goes to another server
    /// not tried yet. False when that cannot be (one server, all tried, bytes already passed
    /// on, or an operation still in flight on the old socket): the caller closes as before.
    func retryOnAnotherServer(_ slot: Int32, why: String) -> Bool {
        let c = table[slot]
        let listener = listeners[c.pointee.listener].settings
        guard listener.tunnelsOut, let tunnel = listener.tunnel, tunnel.servers.count > 1,
              c.pointee.up.handshake == .holdingForReply, c.pointee.up.buffer >= 0, !c.pointee.up.busy, !c.pointee.down.busy,
              c.pointee.phase == .connecting || c.pointee.down.handshake != .none,
              let destination = withUnsafePointer(to: &c.pointee.destination, { SocketAddress(storage: UnsafeRawPointer($0)) }),
              let next = TunnelServerChoice.pick(tunnel.servers, destination: destination, tried: c.pointee.serversTried, out: serversOut)
        else { return false }
        logger.info("conn=\(index).\(c.pointee.sequence) destination=\(destinationText(c)) tunnel server \(targetText(c)) \(why): trying \(tunnel.servers[next])")
        counters.add(.serverRetries, 1)
        let held = c.pointee.up
        handshakeBuffers.give(c.pointee.down.buffer)
        if c.pointee.upstream >= 0 { close(c.pointee.upstream) }
        c.pointee.upstream = -1
        // Same length (same key name), so the client's bytes behind it stay where they are.
        _ = encodeTunnelRequest(handshakeBuffers.pointer(held.buffer), destination: destination, tunnel: tunnel)
        var up = Direction()
        up.buffer = held.buffer
        up.prefixEnd = held.prefixEnd
        up.bytes = held.bytes
        up.handshake = .holdingForReply
        c.pointee.up = up
        c.pointee.down = Direction()
        c.pointee.server = next
        c.pointee.serversTried |= 1 << UInt32(next)
        c.pointee.move(.redial)
        dial(slot, to: tunnel.servers[next], mptcp: true, fastOpen: tunnel.fastOpen)
        return true
    }

    /// The bytes of the server's reply read so far in direction `d`, checked.
    func checkTunnelReply(_ c: UnsafeMutablePointer<Connection>, _ d: Int) -> ReplyVerdict {
        let (buffer, handshake) = withDirection(c, d) { ($0.buffer, $0.handshake) }
        guard case .readingReply(let fill, _) = handshake else { preconditionFailure("reply checked while not reading one") }
        switch TunnelCodec.parseReply(UnsafeRawBufferPointer(start: handshakeBuffers.pointer(buffer), count: fill)) {
        case .needMore: return .needMore
        case .success(let consumed): return .accepted(consumed: consumed)
        // Another server reaches the same destination the same way: only a refusal of the
        // server's own (key, limits, resources) is worth another try.
        case .failure(let code): return .refused(code, retry: code != .connectionReset && code != .destinationUnreachable)
        case .invalid(let text): return .invalid(text)
        }
    }

    /// The server took the request: the MPTCP outcome is known now.
    func tunnelReplyAccepted(_ c: UnsafeMutablePointer<Connection>, payload: Int) {
        countBytes(c, 1, payload)
        c.pointee.status = MPTCP.status(of: FileDescriptor(rawValue: c.pointee.upstream), createdAs: c.pointee.upstreamProtocol)
        recordOutcome(c)
        logger.debug("conn=\(index).\(c.pointee.sequence) client=\(peerText(c)) destination=\(destinationText(c)) via=\(targetText(c)) tunnel=connected \(c.pointee.status)")
    }

    // MARK: Server side

    /// Reads the request header off a new tunnel client; connects once it checks out.
    func readTunnelHeader(_ slot: Int32) {
        let c = table[slot]
        let buffer = c.pointee.up.buffer
        let base = handshakeBuffers.pointer(buffer)
        while true {
            let fill = c.pointee.headerFill
            let n: Int
            let outcome = DataPath.receive(c.pointee.client, into: base + fill, count: HandshakeBuffers.size - fill)
            switch outcome {
            case .moved(let count): n = count
            case .wouldBlock:
                arm(.pollIn, slot, 0, c.pointee.client, events: UInt32(POLLIN))
                return
            case .eof:
                rejectTunnel(slot, code: TunnelCodec.malformed, reason: "client closed before sending a complete header")
                return
            case .shortage(let e):
                // Ours, not the gateway's: no refusal code blames its header.
                beginClose(slot, reason: .resources(e.rawValue), reset: true)
                return
            case .notConnectedYet, .unsupported, .peerReset:
                rejectTunnel(slot, code: TunnelCodec.malformed, reason: errnoText(outcome.error?.rawValue ?? EIO))
                return
            }
            c.pointee.headerFill += n
            c.pointee.lastActive = now
            let bytes = UnsafeRawBufferPointer(start: base, count: c.pointee.headerFill)
            let listener = listeners[c.pointee.listener].settings
            switch tunnelContext.parseRequest(bytes, settings: listener.tunnel, now: wallClock()) {
            case .needMore:
                if c.pointee.headerFill == HandshakeBuffers.size {
                    rejectTunnel(slot, code: TunnelCodec.malformed, reason: "header longer than \(HandshakeBuffers.size) bytes")
                    return
                }
            case .rejected(let code, let reason):
                rejectTunnel(slot, code: code, reason: reason)
                return
            case .ping(let consumed, let key):
                answerPing(slot, key: key, trailing: c.pointee.headerFill - consumed)
                return
            case .accepted(let destination, .datagram, let consumed, let key, let keySlot):
                c.pointee.keyName = key
                c.pointee.keySlot = keySlot
                handOverDatagramFlow(slot, destination: destination, early: UnsafeRawBufferPointer(rebasing: bytes[consumed...]))
                return
            case .accepted(let destination, .stream, let consumed, let key, let keySlot):
                c.pointee.keyName = key
                c.pointee.keySlot = keySlot
                destination.write(to: &c.pointee.destination)
                c.pointee.up.prefixStart = consumed
                c.pointee.up.prefixEnd = c.pointee.headerFill
                countBytes(c, 0, c.pointee.headerFill - consumed)
                c.pointee.headerFill = 0
                c.pointee.move(.headerComplete)
                releaseHeaderBudget(c)
                dial(slot, to: destination, mptcp: false, fastOpen: false)
                return
            }
        }
    }

    /// A UDP flow: the datagram engine takes the socket (and what came after the header);
    /// the slot is freed without closing it.
    func handOverDatagramFlow(_ slot: Int32, destination: SocketAddress, early: UnsafeRawBufferPointer) {
        let c = table[slot]
        guard let engine = tunnelContext.datagrams else {
            rejectTunnel(slot, code: ErrorCode.unsupportedMessage.rawValue, reason: "UDP flow requested, but this server has no datagram engine")
            return
        }
        guard let peer = peerAddress(c) else {
            rejectTunnel(slot, code: TunnelCodec.malformed, reason: "peer address unknown")
            return
        }
        // The key's account goes with the socket: the flow counts against its key's limit and
        // is ended by a revocation until the engine forgets it.
        guard engine.handOver(ServerFlowRequest(tunnel: c.pointee.client, peer: peer, destination: destination, early: Array(early),
                                                keySlot: c.pointee.keySlot)) else {
            rejectTunnel(slot, code: ErrorCode.networkFailure.rawValue, reason: "UDP flow requested while the relay stops")
            return
        }
        c.pointee.keySlot = -1
        c.pointee.client = -1
        beginClose(slot, reason: .completed, reset: false, quiet: true)
    }

    /// A gateway's health probe got through: say so and close. Quiet (no close line): every
    /// gateway with several servers sends one a second.
    private func answerPing(_ slot: Int32, key: KeyName, trailing: Int) {
        let c = table[slot]
        var reply: (UInt64, UInt64) = (0, 0)
        let n = withUnsafeMutableBytes(of: &reply) { TunnelCodec.encodeReply(error: nil, into: $0) }
        _ = withUnsafeBytes(of: &reply) { send(c.pointee.client, $0.baseAddress, n, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT)) }
        counters.add(.pings, 1)
        if trailing > 0 { logger.debug("conn=\(index).\(c.pointee.sequence) ping from key \(key) carried \(trailing) byte(s) after the header: ignored") }
        shutdown(c.pointee.client, Int32(SHUT_WR))
        c.pointee.move(.headerComplete)
        beginClose(slot, reason: .completed, reset: false, quiet: true)
    }

    /// The destination answered: tell the gateway, then relay.
    func tunnelConnected(_ slot: Int32) {
        let c = table[slot]
        let buffer = handshakeBuffers.take()
        c.pointee.down.buffer = buffer
        c.pointee.down.prefixEnd = TunnelCodec.encodeReply(error: nil, into: UnsafeMutableRawBufferPointer(start: handshakeBuffers.pointer(buffer), count: HandshakeBuffers.size))
        recordOutcome(c)
        logger.debug("conn=\(index).\(c.pointee.sequence) tunnel client=\(peerText(c)) destination=\(destinationText(c)) result=connected \(c.pointee.status)")
    }

    /// The destination could not be reached: the gateway gets the RFC 8803 error code.
    func tunnelConnectFailed(_ slot: Int32, reason: CloseReason) {
        let code: UInt8
        switch reason {
        case .connectFailed(ECONNREFUSED): code = TunnelCodec.connectionRefused
        case .connectFailed(ENETUNREACH), .connectFailed(EHOSTUNREACH): code = TunnelCodec.destinationUnreachable
        case .connectTimeout: code = TunnelCodec.destinationUnreachable
        default: code = TunnelCodec.networkFailure
        }
        rejectTunnel(slot, code: code, reason: reason.text)
    }

    /// Answers with an Error TLV (when the peer got far enough to deserve one) and closes
    /// cleanly so the answer arrives; nothing was or will be connected for this client.
    func rejectTunnel(_ slot: Int32, code: UInt8?, reason: String) {
        let c = table[slot]
        TunnelCodec.sendRefusal(c.pointee.client, code: code)
        counters.add(.refused, 1)
        metricTunnelRefused(TunnelCodec.metricLabel(code))
        logger.notice("conn=\(index).\(c.pointee.sequence) tunnel client=\(peerText(c)) refused: \(reason)")
        beginClose(slot, reason: .refused(reason), reset: false)
    }

    func wallClock() -> UInt64 { UInt64(time(nil)) }
}
