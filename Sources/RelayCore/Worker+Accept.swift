#if canImport(Glibc)
import Glibc
#endif
import MPTCPSocket
import SystemPackage

/// Accepting: one accept in flight per listener while there is room, paused (never
/// spinning) while the process is short of descriptors.
extension Worker {
    /// Arms one accept per listener unless paused by the connection limit or a descriptor shortage.
    func armAccepts() {
        guard !stopping, acceptPausedSince == nil || !backoffArmed, !listeners.isEmpty else { return }
        // Start one listener further each time, so that near the connection limit, where only
        // some listeners can have an accept armed, no listener is always the one left out.
        acceptCursor = (acceptCursor + 1) % listeners.count
        for step in listeners.indices {
            let i = (acceptCursor + step) % listeners.count
            guard !listeners[i].armed && listeners[i].isLive && !hasArmedPredecessor(i) else { continue }
            // Not counting this worker's accepts in flight: a worker whose other listener holds
            // one would otherwise never re-arm this one at limit - 1 (no close wakes it then).
            // The limit can so be passed by one accept per listener and worker; every table
            // holds max_connections, so that overshoot always fits.
            if table.isFull || limits.atConnectionLimit { break }
            listeners[i].peerLength.pointee = UInt32(MemoryLayout<sockaddr_storage>.size)
            ring.accept(listeners[i].fd, address: UnsafeMutableRawPointer(listeners[i].peer), length: listeners[i].peerLength,
                        userData: OperationToken(.accept, index: Int32(i)).raw)
            listeners[i].armed = true
        }
    }

    /// A retired record whose accept is still in flight on the socket `i` took over: that
    /// accept serves `i`, so `i` needs none of its own yet.
    private func hasArmedPredecessor(_ i: Int) -> Bool {
        listeners.contains { $0.armed && $0.successor == i }
    }

    /// The live record an accept on record `i` belongs to (itself, or whoever took its socket over).
    func liveRecord(from i: Int) -> Int? {
        var r = i
        var hops = 0
        while !listeners[r].isLive {
            guard let next = listeners[r].successor, hops < listeners.count else { return nil }
            r = next
            hops += 1
        }
        return r
    }

    func acceptCompleted(listener li: Int, _ result: Int32) {
        listeners[li].armed = false
        guard !stopping, let owner = liveRecord(from: li) else {
            // Stopped or removed by a reload: the cancel landed, or a client slipped in just before.
            if result >= 0 { close(result) }
            return
        }
        if result >= 0 {
            // The kernel wrote the peer address into the record the accept was armed on.
            startConnection(client: result, listener: owner, peer: listeners[li].peer.pointee)
            armAccepts()
            return
        }
        let error = Errno(rawValue: -result)
        if error.isResourceShortage {
            pauseAccepting(error)
            return
        }
        switch error {
        case .resourceTemporarilyUnavailable, .interrupted, .connectionAbort, .protocolError, .notPermitted:
            // This one client's trouble (or a firewall's verdict on it): take the next.
            armAccepts()
        default:
            // Unknown trouble: retry after the backoff instead of spinning on it.
            logger.error("accept on \(listeners[owner].settings.address) failed: \(errnoText(error.rawValue))")
            pauseAccepting(error)
        }
    }

    /// Stops accepting for a moment; the 100 ms backoff timer resumes it.
    func pauseAccepting(_ error: Errno) {
        if acceptPausedSince == nil {
            acceptPausedSince = now
            counters.add(.acceptPauses, 1)
            // Under a lasting shortage pauses come and go with every connection that gets
            // through: warn once per ten seconds, not once per pause.
            if now - lastPauseWarning > 10_000_000_000 {
                lastPauseWarning = now
                pauseWarned = true
                let hint = error.isDescriptorShortage ? "resuming when descriptors free up (raise LimitNOFILE / ulimit -n)" : "retrying every 100 ms"
                logger.warning("accept paused: \(errnoText(error.rawValue)); \(hint)")
            }
        }
        if !backoffArmed {
            backoffArmed = true
            ring.timeout(backoffSpec, userData: OperationToken(.acceptResume).raw)
        }
    }

    /// A connection got through to its upstream: a descriptor shortage, if any, is over.
    /// (An accept alone proves little: the upstream socket() right after may still fail.)
    func shortageEnded() {
        guard let since = acceptPausedSince else { return }
        acceptPausedSince = nil
        if pauseWarned {
            pauseWarned = false
            logger.notice("accepting again after \(Double((now - since) / 1_000_000) / 1000) s of descriptor shortage")
        }
    }

    /// A slot came free: accept again if only the connection limit held accepting back.
    /// A descriptor shortage is left to the backoff timer, so that a connection reset for
    /// want of descriptors cannot re-arm accept at once (and be followed by the next one).
    func connectionSlotFreed() {
        armAccepts()
    }
}
