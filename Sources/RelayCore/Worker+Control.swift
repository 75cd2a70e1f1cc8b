#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import URing

/// The control side of a worker: requests from the control thread (stop, reload, new
/// address lists) and the 1 s tick that enforces deadlines.
extension Worker {
    func wakeCompleted(_ result: Int32) {
        let requests = mailbox.take()
        for plan in requests.reloads {
            if stopping {
                // Sockets bound for a reload that will never be applied.
                for case .open(_, let fd) in plan.listeners { close(fd) }
            } else {
                applyReload(plan)
            }
        }
        if let addresses = requests.localAddresses { localAddresses = addresses }
        if let resolved = requests.upstreamAddresses { upstreamAddresses = resolved }
        if let steering = requests.steering { self.steering = steering }
        if let out = requests.serversOut { serversOut = out }
        if !requests.revokedKeys.isEmpty { revoke(requests.revokedKeys) }
        // A slot came free in another worker at the connection limit.
        if requests.rearm { armAccepts() }
        for request in requests.snapshots { answerSnapshot(request) }
        if requests.abort {
            beginStop(grace: 0)
        } else if requests.stop {
            beginStop(grace: settings.gracePeriod)
        }
        armWake()
    }

    /// Swaps in new settings; established connections keep running untouched: each keeps the
    /// listener record it was accepted under, and a kept socket whose settings changed moves
    /// to a new record. Removed listeners stop accepting.
    private func applyReload(_ plan: ReloadPlan) {
        var live = Set<Int>()
        for (config, socket) in zip(plan.settings.listeners, plan.listeners) {
            switch socket {
            case .keep(let id):
                guard let i = listeners.indices.first(where: { listeners[$0].isLive && listeners[$0].socketID == id }) else {
                    assertionFailure("reload names socket \(id), which worker \(index) does not have")
                    continue
                }
                if listeners[i].settings == config {
                    live.insert(i)
                } else {
                    let fd = listeners[i].fd
                    listeners[i].fd = -1
                    // Nothing refers to the old record (no connection, no accept in flight):
                    // addRecord may hand back the same record, updated in place.
                    let j = addRecord(settings: config, socketID: id, fd: fd)
                    if j != i {
                        for k in listeners.indices where listeners[k].successor == i { listeners[k].successor = j }
                        listeners[i].successor = j
                    }
                    live.insert(j)
                }
            case .open(let id, let fd):
                live.insert(addRecord(settings: config, socketID: id, fd: fd))
            }
        }
        for i in listeners.indices where listeners[i].isLive && !live.contains(i) {
            cancelAccepts(servingRecord: i)
            close(listeners[i].fd)
            listeners[i].fd = -1
            listeners[i].successor = nil
        }
        settings = plan.settings
        connectTimeoutSpec.pointee = RingTimespec(duration: settings.connectTimeout)
        armAccepts()
    }

    /// Cancels the accepts in flight on record `i`'s socket: its own, and one still armed on a
    /// retired record whose socket it took over (that accept holds the socket open too).
    private func cancelAccepts(servingRecord i: Int) {
        for r in listeners.indices where listeners[r].armed && (r == i || listeners[r].successor == i) {
            ring.cancel(userData: OperationToken(.accept, index: Int32(r)).raw, userData: OperationToken(.cancel).raw)
        }
    }

    /// A listener record for `settings`, in a retired slot nothing refers to, or a new one:
    /// the array stays as long as the most listeners ever live at once plus those still draining.
    private func addRecord(settings config: ListenerSettings, socketID: Int, fd: Int32) -> Int {
        if let k = listeners.indices.first(where: { k in
            listeners[k].isReusable && !listeners.contains { $0.successor == k }
        }) {
            listeners[k].reuse(settings: config, socketID: socketID, fd: fd, counters: Self.registerCounters(config, counters))
            return k
        }
        listeners.append(WorkerListener(settings: config, socketID: socketID, fd: fd, counters: Self.registerCounters(config, counters)))
        return listeners.count - 1
    }

    /// A reload removed these keys with `revoke = "now"`: their gateways' open connections
    /// are reset (every other gateway's are untouched).
    private func revoke(_ slots: [Int32]) {
        var closed = 0
        for i in table.slotIndices {
            let c = table[i]
            guard c.pointee.keySlot >= 0, slots.contains(c.pointee.keySlot) else { continue }
            switch c.pointee.phase {
            case .connecting, .relaying:
                beginClose(i, reason: .refused("key \(c.pointee.keyName.map(\.description) ?? "?") revoked"), reset: true)
                closed += 1
            default: break
            }
        }
        if closed > 0 { logger.notice("worker \(index): reset \(closed) connection(s) of revoked key(s)") }
    }

    private func beginStop(grace: Double) {
        if !stopping {
            stopping = true
            for i in listeners.indices where listeners[i].isLive {
                cancelAccepts(servingRecord: i)
                // The pending accept keeps its own file reference until the cancel lands.
                close(listeners[i].fd)
                listeners[i].fd = -1
            }
            stopDeadline = now + nanoseconds(grace)
        } else {
            stopDeadline = min(stopDeadline, now + nanoseconds(grace))
        }
        if grace == 0 { abortAll() }
    }

    /// Seconds a closing slot may wait for its operations to drain before it is reclaimed.
    static let closingDeadline: Int64 = 10_000_000_000

    func tick() {
        ring.timeout(tickSpec, userData: OperationToken(.tick).raw)
        pipes.trim()
        handshakeBuffers.trim()
        if stopping && now >= stopDeadline {
            abortAll()
        }
        // Each connection's limits are its own (set at accept): a reload does not change them.
        for i in table.slotIndices {
            let c = table[i]
            switch c.pointee.phase {
            case .readingHeader where now - c.pointee.openedAt > c.pointee.headerLimit:
                // A silent or slow client cannot hold a slot (and its buffer) for longer.
                rejectTunnel(i, code: TunnelCodec.malformed, reason: "no complete tunnel header within \(Double(c.pointee.headerLimit) / 1e9) s")
            case .relaying where c.pointee.down.handshake != .none && c.pointee.replyOverdue(at: Self.preciseNanoseconds()):
                // With Fast Open the connect completes at once (the link timeout never fires), so
                // the gateway bounds the wait for the server's reply by the connect timeout,
                // counted from the dial (a retry on another server starts a new one).
                counters.add(.connectFailures, 1)
                if !retryOnAnotherServer(i, why: CloseReason.connectTimeout.text) { beginClose(i, reason: .connectTimeout, reset: true) }
            case .relaying where now - c.pointee.lastActive > c.pointee.idleLimit:
                // Bytes not yet delivered, held by the relay or still unacknowledged in a
                // socket (a transfer stalled by a dead link), would be lost: a clean FIN would
                // pass a truncated stream as whole, so such a connection is reset.
                beginClose(i, reason: .idleTimeout, reset: c.pointee.holdsBytes || Self.bytesInFlight(c))
            case .relaying:
                checkStall(i)
            case .closing where now - c.pointee.closingSince > Self.closingDeadline:
                logger.warning("conn=\(index).\(c.pointee.sequence): \(c.pointee.pending) operation(s) still pending \(Self.closingDeadline / 1_000_000_000) s after close; reclaiming the slot")
                finish(i)
            default:
                break
            }
        }
        if headerRefusals.total > 0 || headerRefusals.source > 0 {
            logger.notice("tunnel: refused \(headerRefusals.source) client(s) over the per-source limit (\(headerBudget.perSource) per address or /64 on this worker) and \(headerRefusals.total) over the limit of \(headerBudget.total) headers in progress, in the last second")
            headerRefusals = (0, 0)
        }
    }

    /// Bytes written to either socket that its peer has not acknowledged (SIOCOUTQ; false
    /// where the kernel cannot say, as MPTCP before 6.4).
    static func bytesInFlight(_ c: UnsafeMutablePointer<Connection>) -> Bool {
        [c.pointee.client, c.pointee.upstream].contains { $0 >= 0 && cnet_bytes_unsent($0) > 0 }
    }

    func abortAll() {
        for i in table.slotIndices {
            switch table[i].pointee.phase {
            case .relaying, .connecting, .readingHeader: beginClose(i, reason: .shutdown, reset: true)
            case .free, .closing: break
            }
        }
    }
}
