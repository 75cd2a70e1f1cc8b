#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import Logging
import MPTCPSocket
import SystemPackage
import URing

extension Worker {
    /// Takes an accepted client: finds where it goes (fixed upstream, original destination,
    /// or a tunnel header still to read) and starts the upstream connect.
    func startConnection(client: Int32, listener li: Int, peer: sockaddr_storage) {
        guard let slot = table.allocate() else {
            _ = try? Socket.setResetOnClose(FileDescriptor(rawValue: client))
            close(client)
            return
        }
        sequence += 1
        counters.add(.accepted, 1)
        let c = table[slot]
        let listener = listeners[li].settings
        metricAccepted(li)
        let readsHeader = listener.mode == .tunnelServer
        c.pointee.move(.accept(readsHeader: readsHeader))
        c.pointee.sequence = sequence
        c.pointee.listener = li
        listeners[li].connections += 1
        limits.connectionOpened()
        c.pointee.client = client
        c.pointee.openedAt = now
        c.pointee.lastActive = now
        c.pointee.peer = peer
        // The deadlines in force when the connection came: a reload changes them for later ones.
        c.pointee.idleLimit = settings.idleTimeout > 0 ? nanoseconds(settings.idleTimeout) : Int64.max
        c.pointee.headerLimit = nanoseconds(settings.headerTimeout)
        c.pointee.replyLimit = settings.connectTimeout > 0 ? nanoseconds(settings.connectTimeout) : Int64.max
        let clientFD = FileDescriptor(rawValue: client)

        if readsHeader {
            // Before authentication a client gets only its share of the header budget.
            switch headerBudget.take(for: c.pointee.peer) {
            case .granted:
                c.pointee.holdsHeaderBudget = true
            case .sourceFull:
                headerRefusals.source += 1
                refuseUnheard(slot)
                return
            case .allFull:
                headerRefusals.total += 1
                refuseUnheard(slot)
                return
            }
            c.pointee.up.buffer = handshakeBuffers.take()
            readTunnelHeader(slot)
            return
        }
        let destination: SocketAddress
        switch resolveDestination(client: clientFD, listener: listener) {
        case .success(let d): destination = d
        case .failure(let refusal):
            counters.add(.refused, 1)
            beginClose(slot, reason: .refused(refusal.text), reset: true)
            return
        }
        destination.write(to: &c.pointee.destination)
        if let tunnel = listener.tunnel, listener.tunnelsOut {
            // Before dialling: a dial that fails frees the slot at once.
            guard prepareTunnelRequest(slot, destination: destination, tunnel: tunnel) else { return }
            dialTunnelServer(slot, destination: destination, tunnel: tunnel)
        } else {
            dial(slot, to: destination, mptcp: settings.upstreamMPTCP && !listener.mode.acceptsMPTCP, fastOpen: false)
        }
    }

    private static let targetOffset = MemoryLayout<Connection>.offset(of: \.target)!

    /// A tunnel client over the pre-authentication limits: closed with a reset, unread, so
    /// it costs no buffer and no deadline. One log line a second sums these up (tick).
    private func refuseUnheard(_ slot: Int32) {
        counters.add(.refused, 1)
        counters.add(.preAuthRefused, 1)
        metricTunnelRefused("pre_auth_limit")
        beginClose(slot, reason: .refused("over the pre-authentication limits"), reset: true, quiet: true)
    }

    /// Opens the upstream socket and submits its connect, linked to the connect timeout.
    func dial(_ slot: Int32, to destination: SocketAddress, mptcp: Bool, fastOpen: Bool) {
        let c = table[slot]
        let decision = steering.decision(for: destination)
        if case .refuse(let why) = decision {
            // Every WAN is out of service: a reset now tells the client more than a SYN
            // left to time out.
            counters.add(.refused, 1)
            beginClose(slot, reason: .refused(why), reset: true)
            return
        }
        c.pointee.wantsMPTCP = mptcp
        let upstream: FileDescriptor
        do {
            (upstream, c.pointee.upstreamProtocol) = try Socket.openStream(family: destination.family, preferMPTCP: mptcp)
        } catch {
            if error.isResourceShortage { pauseAccepting(error) }
            beginClose(slot, reason: error.isResourceShortage ? .resources(error.rawValue) : .connectFailed(error.rawValue), reset: true)
            return
        }
        c.pointee.upstream = upstream.rawValue
        if case .bind(let source) = decision {
            // The WAN's `from ADDR` rule then routes the SYN (and MPTCP's initial subflow)
            // out through it. A source that just vanished leaves the main table to decide.
            do { try Socket.bindSource(upstream, source) } catch {
                logger.debug("upstream source \(source.host) (WAN \(steering.via ?? "?")) not usable: \(error); the main routing table decides")
            }
        }
        _ = try? Socket.setOption(upstream, level: Int32(IPPROTO_TCP), name: TCP_NODELAY, value: 1)
        if fastOpen {
            // connect() then returns at once and the first write goes out in the SYN.
            _ = try? Socket.setOption(upstream, level: Int32(IPPROTO_TCP), name: CNET_TCP_FASTOPEN_CONNECT, value: 1)
        }
        // The slot's own storage: the kernel reads it when the SQE is submitted, after this returns.
        let target = (UnsafeMutableRawPointer(c) + Self.targetOffset).assumingMemoryBound(to: sockaddr_storage.self)
        c.pointee.targetLength = destination.write(to: target)
        let generation = c.pointee.generation
        c.pointee.dialedAt = Self.preciseNanoseconds()
        ring.connect(upstream.rawValue, address: UnsafeRawPointer(target), length: c.pointee.targetLength,
                     userData: OperationToken(.connect, index: slot, generation: generation).raw,
                     timeout: settings.connectTimeout > 0 ? connectTimeoutSpec : nil,
                     timeoutUserData: OperationToken(.connectTimeout, index: slot, generation: generation).raw)
        c.pointee.pending += settings.connectTimeout > 0 ? 2 : 1
    }

    /// Every completion that names a connection slot comes through here.
    func connectionOperationCompleted(_ kind: OperationToken.Kind, _ token: OperationToken, _ result: Int32) {
        let slot = token.index, d = token.direction
        let c = table[slot]
        // An operation of an occupant whose slot was reclaimed at its closing deadline: its
        // descriptors and pipes are gone already, and nothing of it may touch the new one.
        guard c.pointee.generation == token.generation, c.pointee.phase != .free else {
            _ = table.strayCompleted(slot, generation: token.generation)
            return
        }
        c.pointee.pending -= 1
        if kind == .pollIn || kind == .pollOut || kind == .spliceIn || kind == .spliceOut || kind == .replyWait {
            withDirection(c, d) { $0.busy = false }
        }
        if c.pointee.phase == .closing {
            // A ring splice cannot be cancelled (its file is the pipe): what it moved still
            // counts, so a pipe that holds bytes is never pooled for another connection.
            if result > 0 && (kind == .spliceIn || kind == .spliceOut) {
                withDirection(c, d) { $0.inPipe += kind == .spliceIn ? Int(result) : -Int(result) }
            }
            if c.pointee.pending == 0 { finish(slot) }
            return
        }
        if c.pointee.phase == .readingHeader {
            if kind == .pollIn { readTunnelHeader(slot) }
            return
        }
        switch kind {
        case .connect: connectCompleted(slot, result)
        case .connectTimeout: break  // -ETIME when it fired; the connect then completes with -ECANCELED
        case .pollIn:
            withDirection(c, d) { $0.drained = false }
            pump(slot, d)
        case .pollOut, .replyWait: pump(slot, d)
        case .spliceIn: spliceCompleted(slot, d, .read, IOOutcome(spliceResult: result))
        case .spliceOut: spliceCompleted(slot, d, .write, IOOutcome(spliceResult: result))
        case .accept, .acceptResume, .wake, .tick, .cancel, .detached: break
        }
    }

    private func connectCompleted(_ slot: Int32, _ result: Int32) {
        let c = table[slot]
        let listener = listeners[c.pointee.listener].settings
        if result < 0 {
            let reason: CloseReason = result == -ECANCELED ? .connectTimeout : .connectFailed(-result)
            counters.add(.connectFailures, 1)
            if listener.tunnelsOut && retryOnAnotherServer(slot, why: reason.text) { return }
            if redialNextAddress(slot, listener: listener, after: reason) { return }
            if listener.mode == .tunnelServer {
                // The gateway learns why, then closes its client; a clean close lets the reply arrive.
                tunnelConnectFailed(slot, reason: reason)
            } else {
                beginClose(slot, reason: reason, reset: true)
            }
            return
        }
        shortageEnded()
        metricConnected(c)
        c.pointee.move(.connected)
        c.pointee.lastActive = now
        let keepUp = c.pointee.up, keepDown = c.pointee.down
        c.pointee.up = Direction(source: c.pointee.client, sink: c.pointee.upstream)
        c.pointee.down = Direction(source: c.pointee.upstream, sink: c.pointee.client)
        // The upstream has said nothing yet a microsecond after its handshake: poll before the
        // first read instead of a recv that finds it empty (one syscall per connection).
        c.pointee.down.drained = true
        // Handshake bytes prepared before the connect (tunnel header, early client data) carry over.
        c.pointee.up.buffer = keepUp.buffer
        c.pointee.up.prefixStart = keepUp.prefixStart
        c.pointee.up.prefixEnd = keepUp.prefixEnd
        c.pointee.up.bytes = keepUp.bytes
        c.pointee.up.handshake = keepUp.handshake
        c.pointee.down.buffer = keepDown.buffer

        switch listener.mode {
        case _ where listener.tunnelsOut:
            // Logged when the server's reply arrives: only then is the outcome known.
            c.pointee.down.handshake = .readingReply(fill: 0, waits: 0)
            c.pointee.down.buffer = handshakeBuffers.take()
        case .tunnelServer:
            c.pointee.status = MPTCP.status(of: FileDescriptor(rawValue: c.pointee.client), createdAs: .mptcp)
            tunnelConnected(slot)
        case .server where listener.proxyProtocol:
            c.pointee.status = MPTCP.status(of: FileDescriptor(rawValue: c.pointee.client), createdAs: .mptcp)
            logConnected(c)
            let source = peerAddress(c) ?? listener.address
            let local = (try? Socket.localAddress(FileDescriptor(rawValue: c.pointee.client))) ?? nil
            let buffer = handshakeBuffers.take()
            c.pointee.up.buffer = buffer
            c.pointee.up.prefixEnd = ProxyProtocolHeader.write(source: source, destination: local ?? listener.address, into: handshakeBuffers.pointer(buffer))
        case .server:
            c.pointee.status = MPTCP.status(of: FileDescriptor(rawValue: c.pointee.client), createdAs: .mptcp)
            logConnected(c)
        default:
            c.pointee.status = MPTCP.status(of: FileDescriptor(rawValue: c.pointee.upstream), createdAs: c.pointee.upstreamProtocol)
            logConnected(c)
        }
        if listener.mode != .tunnelServer && !listener.tunnelsOut { recordOutcome(c) }
        pump(slot, 0)
        pump(slot, 1)
    }

    /// A named upstream with more addresses: the connect that failed or timed out gives way
    /// to the next address, in the resolver's order, before the client is reset.
    private func redialNextAddress(_ slot: Int32, listener: ListenerSettings, after reason: CloseReason) -> Bool {
        let c = table[slot]
        guard let upstream = listener.mode.upstream, upstream.literal == nil,
              let addresses = upstreamAddresses[upstream.description] else { return false }
        let failed = withUnsafePointer(to: &c.pointee.target) { SocketAddress(storage: UnsafeRawPointer($0)) }
        guard let next = Self.nextUpstreamAddress(after: failed, in: addresses, attempts: c.pointee.upstreamAttempt + 1) else { return false }
        logger.debug("conn=\(index).\(c.pointee.sequence) upstream=\(targetText(c)) \(reason.text); trying the next address of \(upstream)")
        c.pointee.upstreamAttempt += 1
        close(c.pointee.upstream)
        c.pointee.upstream = -1
        c.pointee.move(.redial)
        dial(slot, to: next, mptcp: c.pointee.wantsMPTCP, fastOpen: false)
        return true
    }

    /// The address to try after `failed`, in the resolver's current list: the one after it
    /// (the list may have been re-resolved since the connection started, so a position kept
    /// from the old list would skip or repeat addresses), or the first when `failed` is no
    /// longer listed. Nil once `attempts` connects were made, as many as there are addresses.
    static func nextUpstreamAddress(after failed: SocketAddress?, in addresses: [SocketAddress], attempts: Int) -> SocketAddress? {
        guard attempts < addresses.count else { return nil }
        guard let failed, let position = addresses.firstIndex(of: failed) else { return addresses.first }
        return position + 1 < addresses.count ? addresses[position + 1] : nil
    }

    /// One line per connection: who, where, and whether the MPTCP side really runs MPTCP.
    /// At debug level: the info line comes at close, with everything known then.
    func logConnected(_ c: UnsafeMutablePointer<Connection>) {
        logger.debug("conn=\(index).\(c.pointee.sequence) client=\(peerText(c)) upstream=\(targetText(c)) \(c.pointee.status)")
    }

    /// The MPTCP side's outcome is known (at connect, or from the tunnel reply): counted once,
    /// and reported in the close line.
    func recordOutcome(_ c: UnsafeMutablePointer<Connection>) {
        c.pointee.relayed = true
        counters.add(c.pointee.status.isMPTCP ? .mptcpUpstreams : .fallbackUpstreams, 1)
        metricOutcome(c)
    }

    /// Starts closing: with `reset`, both sockets close with RST (SO_LINGER 0) so that a
    /// peer's reset or a failure reaches the other side as a reset, not as a clean EOF.
    /// `quiet`: no log line of its own (refusals summed up elsewhere).
    func beginClose(_ slot: Int32, reason: CloseReason, reset: Bool, quiet: Bool = false) {
        let c = table[slot]
        guard c.pointee.move(.close) else { return }
        c.pointee.closingSince = now
        c.pointee.reason = reason
        c.pointee.resetOnClose = reset
        c.pointee.quietClose = quiet
        releaseHeaderBudget(c)
        if c.pointee.pending == 0 {
            finish(slot)
            return
        }
        // Polls and connects hold the sockets open until they complete: cancel them.
        for fd in [c.pointee.client, c.pointee.upstream] where fd >= 0 {
            ring.cancelAll(on: fd, userData: OperationToken(.cancel).raw)
        }
    }

    /// A header that arrived, or a client that went: its pre-authentication budget is free.
    func releaseHeaderBudget(_ c: UnsafeMutablePointer<Connection>) {
        if c.pointee.holdsHeaderBudget {
            c.pointee.holdsHeaderBudget = false
            headerBudget.give(for: c.pointee.peer)
        }
    }

    /// No operation names the slot any more (or its closing deadline passed): close
    /// descriptors, return pipes, log, reuse.
    func finish(_ slot: Int32) {
        let c = table[slot]
        let up = c.pointee.up
        let down = c.pointee.down
        let lost = mptcpWasLost(c)
        // Who, where, how MPTCP went, why it ended, what it moved (Worker+CloseLog).
        if !c.pointee.quietClose { logClosed(c, lost: lost) }
        // Closed through the ring, with the loop's next submission: no system call of their own.
        for fd in [c.pointee.client, c.pointee.upstream] where fd >= 0 {
            if c.pointee.resetOnClose { _ = try? Socket.setResetOnClose(FileDescriptor(rawValue: fd)) }
            ring.close(fd, userData: OperationToken(.detached).raw)
        }
        // An operation still in flight (a reclaimed slot) may yet write into a pipe: never reuse it.
        let drained = c.pointee.pending == 0
        pipes.give(up.pipe, empty: drained && up.inPipe == 0)
        pipes.give(down.pipe, empty: drained && down.inPipe == 0)
        handshakeBuffers.give(up.buffer)
        handshakeBuffers.give(down.buffer)
        if c.pointee.keySlot >= 0 {
            tunnelContext.accounts.release(c.pointee.keySlot, bytesUp: up.bytes, bytesDown: down.bytes)
        }
        counters.add(.closed, 1)
        metricClosed(c, lost: lost)
        listeners[c.pointee.listener].connections -= 1
        limits.connectionClosed()
        c.pointee.move(.drained)
        table.release(slot)
        connectionSlotFreed()
    }

    /// Reads, once, what the close line and metrics need of the connection's MPTCP side
    /// (upstream, or the client in server modes): its subflows, while they are still up (at
    /// the first EOF), and whether it fell back to TCP after negotiating MPTCP. One
    /// MPTCP_INFO answers both. Asked of the open descriptor: once closed the question has
    /// no answer (EBADF read as "fallback" counted every MPTCP connection as lost).
    func recordSubflows(_ c: UnsafeMutablePointer<Connection>) {
        guard c.pointee.status == .active, !c.pointee.mptcpRead else { return }
        let fd = mptcpSide(c)
        guard fd >= 0 else { return }
        c.pointee.mptcpRead = true
        do {
            let info = try MPTCP.info(of: FileDescriptor(rawValue: fd))
            c.pointee.subflows = 1 + info.additionalSubflows
            c.pointee.mptcpLost = info.isFallback
        } catch {
            // A fallen-back socket hands SOL_MPTCP to its TCP subflow, which refuses it: on
            // an open descriptor that refusal is the answer "fallback"; any other, no verdict.
            c.pointee.mptcpLost = error == .protocolNotAvailable || error == .notSupported
        }
    }

    func peerAddress(_ c: UnsafeMutablePointer<Connection>) -> SocketAddress? {
        withUnsafePointer(to: &c.pointee.peer) { SocketAddress(storage: UnsafeRawPointer($0)) }
    }

    func peerText(_ c: UnsafeMutablePointer<Connection>) -> String { peerAddress(c)?.description ?? "?" }

    func targetText(_ c: UnsafeMutablePointer<Connection>) -> String {
        withUnsafePointer(to: &c.pointee.target) { SocketAddress(storage: UnsafeRawPointer($0))?.description ?? "?" }
    }

    func destinationText(_ c: UnsafeMutablePointer<Connection>) -> String {
        withUnsafePointer(to: &c.pointee.destination) { SocketAddress(storage: UnsafeRawPointer($0))?.description ?? "?" }
    }
}
