#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import CoreMetrics
import MPTCPSocket
import SystemPackage

/// The worker's side of the operator view: answering snapshot requests on its own loop, and
/// the per-connection metric events, counted in the listener record's own counters
/// (ListenerCounters: no lock, no allocation) and summed at scrape time. Everything here
/// runs at most once per connection event or per request, never per byte.
extension Worker {
    /// Copies the plain fields of every open slot; the subflows of MPTCP connections are read
    /// from the kernel for at most `request.detailBudget` of them.
    func answerSnapshot(_ request: SnapshotRequest) {
        let started = Self.threadCPUNanoseconds()
        defer {
            // What the data path gave up for this request, in the worker thread's own CPU
            // time (wall time would count whatever else ran on the core meanwhile).
            Timer(label: "mptcp_relay_snapshot_worker_cpu_seconds").recordNanoseconds(Self.threadCPUNanoseconds() - started)
        }
        var connections: [ConnectionSnapshot] = []
        var omitted = 0
        if request.withConnections {
            connections.reserveCapacity(table.active)
            // The budget covers a window of the MPTCP connections, starting at the request's
            // offset (wrapping), so successive requests read different ones.
            var mptcpCount = 0
            for i in table.slotIndices where Self.hasSubflows(table[i]) { mptcpCount += 1 }
            let start = mptcpCount > 0 ? request.detailOffset % mptcpCount : 0
            var rank = 0
            for i in table.slotIndices {
                let c = table[i]
                guard c.pointee.phase != .free else { continue }
                var snapshot = plainSnapshot(c)
                if Self.hasSubflows(c) {
                    if (rank - start + mptcpCount) % mptcpCount < request.detailBudget {
                        snapshot.subflows = subflows(mptcpSide(c))
                    } else {
                        omitted += 1
                    }
                    rank += 1
                }
                connections.append(snapshot)
            }
        }
        // Counted as they move: no walk over the table for totals.
        let up = counters.value(.bytesUp), down = counters.value(.bytesDown)
        request.answer(WorkerSnapshot(worker: index, openConnections: table.active, pipesInUse: pipes.inUse,
                                      bytesUp: up, bytesDown: down, connections: connections, detailsOmitted: omitted))
    }

    private static func hasSubflows(_ c: UnsafeMutablePointer<Connection>) -> Bool {
        c.pointee.status == .active && c.pointee.phase == .relaying
    }

    private func plainSnapshot(_ c: UnsafeMutablePointer<Connection>) -> ConnectionSnapshot {
        let listener = listeners[c.pointee.listener].settings
        let phase: String
        switch c.pointee.phase {
        case .readingHeader: phase = "reading-header"
        case .connecting: phase = "connecting"
        case .relaying: phase = "relaying"
        case .closing: phase = "closing"
        case .free: phase = "free"
        }
        let connected = c.pointee.phase == .relaying || (c.pointee.phase == .closing && c.pointee.up.source >= 0)
        let destination = listener.mode == .tunnelServer || listener.tunnel?.via != nil
            ? withUnsafePointer(to: &c.pointee.destination) { SocketAddress(storage: UnsafeRawPointer($0)) }
            : withUnsafePointer(to: &c.pointee.target) { SocketAddress(storage: UnsafeRawPointer($0)) }
        var snapshot = ConnectionSnapshot(
            worker: index, sequence: c.pointee.sequence, listener: listener.address, mode: Self.modeName(listener),
            client: peerAddress(c), destination: destination, phase: phase,
            mptcp: connected && c.pointee.down.handshake == .none ? MPTCPOutcome(c.pointee.status, wanted: mptcpWanted(listener)) : nil,
            bytesUp: c.pointee.up.bytes, bytesDown: c.pointee.down.bytes,
            ageSeconds: Double(max(0, now - c.pointee.openedAt)) / 1e9, subflows: nil)
        snapshot.key = c.pointee.keyName?.description
        if listener.tunnelsOut, let servers = listener.tunnel?.servers, c.pointee.server < servers.count {
            snapshot.server = servers[c.pointee.server]
        }
        return snapshot
    }

    /// MPTCP_SUBFLOW_ADDRS and MPTCP_TCPINFO on the worker's own descriptor (never a
    /// borrowed one that another connection may have taken over by now).
    private func subflows(_ fd: Int32) -> [ConnectionSnapshot.Subflow]? {
        guard fd >= 0, let addresses = try? MPTCP.subflowAddresses(of: FileDescriptor(rawValue: fd)) else { return nil }
        let info = (try? MPTCP.subflowTCPInfo(of: FileDescriptor(rawValue: fd))) ?? []
        return addresses.enumerated().map { i, a in
            // Both answers list subflows in the kernel's conn_list order.
            let tcp = i < info.count ? info[i] : nil
            return ConnectionSnapshot.Subflow(local: a.local, remote: a.remote, rttMicroseconds: tcp?.rttMicroseconds,
                                              bytesSent: tcp?.bytesAcked, bytesReceived: tcp?.bytesReceived)
        }
    }

    func mptcpSide(_ c: UnsafeMutablePointer<Connection>) -> Int32 {
        listeners[c.pointee.listener].settings.mode.acceptsMPTCP ? c.pointee.client : c.pointee.upstream
    }

    private func mptcpWanted(_ listener: ListenerSettings) -> Bool {
        listener.mode.acceptsMPTCP || listener.tunnel?.via != nil || settings.upstreamMPTCP
    }

    static func modeName(_ listener: ListenerSettings) -> String {
        switch listener.mode {
        case .forward: return "forward"
        case .transparent: return listener.tunnel?.via != nil ? "transparent+tunnel" : "transparent"
        case .redirect: return listener.tunnel?.via != nil ? "redirect+tunnel" : "redirect"
        case .server: return "server"
        case .tunnelServer: return "tunnel-server"
        }
    }

    // MARK: metric events

    /// mptcp_relay_connections_accepted_total, under listener record `li`.
    func metricAccepted(_ li: Int) {
        listeners[li].counters.countAccepted()
    }

    /// The MPTCP side's outcome, once known (connect, or the tunnel reply).
    func metricOutcome(_ c: UnsafeMutablePointer<Connection>) {
        let outcome = MPTCPOutcome(c.pointee.status, wanted: mptcpWanted(listeners[c.pointee.listener].settings))
        listeners[c.pointee.listener].counters.count(outcome)
    }

    /// Upstream connect latency, from the submitted connect to its completion.
    func metricConnected(_ c: UnsafeMutablePointer<Connection>) {
        guard c.pointee.dialedAt > 0 else { return }
        listeners[c.pointee.listener].counters.countConnect(nanoseconds: Self.preciseNanoseconds() - c.pointee.dialedAt)
    }

    /// Refused tunnel clients: not a path a served connection takes, so a swift-metrics event.
    func metricTunnelRefused(_ reason: String) {
        Counter(label: "mptcp_relay_tunnel_refusals_total", dimensions: [("reason", reason)]).increment()
    }

    /// At finish: the outcome, and whether MPTCP was lost on the way (`lost`, read before the
    /// descriptors closed). Bytes are counted as they move (ListenerCounters), not here.
    func metricClosed(_ c: UnsafeMutablePointer<Connection>, lost: Bool) {
        let counters = listeners[c.pointee.listener].counters
        counters.count(c.pointee.reason.cause)
        if lost { counters.count(.mptcpLost) }
    }

    /// A connection that negotiated MPTCP and runs plain TCP now (read with the subflows,
    /// once: recordSubflows).
    func mptcpWasLost(_ c: UnsafeMutablePointer<Connection>) -> Bool {
        recordSubflows(c)
        return c.pointee.mptcpLost
    }

    static func threadCPUNanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }

    /// CLOCK_MONOTONIC at full resolution: the loop's coarse clock ticks in milliseconds.
    static func preciseNanoseconds() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
    }
}

extension TunnelCodec {
    /// The `reason` label of mptcp_relay_tunnel_refusals_total for an RFC 8803 error code.
    static func metricLabel(_ code: UInt8?) -> String {
        switch code {
        case nil: return "unanswered"
        case malformed: return "malformed"
        case connectionRefused: return "destination_refused"
        case destinationUnreachable: return "destination_unreachable"
        case networkFailure: return "network_failure"
        case 32: return "not_authorized"
        case 64: return "resource_exceeded"
        default: return "code_\(code!)"
        }
    }
}
