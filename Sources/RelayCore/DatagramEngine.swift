#if canImport(Glibc)
import Glibc
#endif
import CNetLinux
import Dispatch
import Logging
import MPTCPSocket
import Synchronization
import SystemPackage
import TunnelProtocol

/// UDP through the tunnel (issue 23, docs/udp.md): one thread with one epoll loop that
/// owns every UDP flow of the process. At the gateway it reads the LAN's intercepted
/// datagrams (TPROXY on the transparent listener's port) and carries each flow over its
/// own tunnel connection; at the server it takes the tunnel connections whose header asks
/// for UDP (handed over by the worker that checked the header) and sends their datagrams
/// on from a connected UDP socket per flow.
///
/// Kept apart from the TCP workers on purpose: the TCP data path (splice through pipes on
/// io_uring) is untouched, and a datagram flow's work is different in kind: cut a stream
/// into datagrams, queue with age bounds, drop. epoll rather than io_uring: per datagram
/// the work is one recv and a copy into the flow's queue, and batching the tunnel writes
/// (one writev for all frames queued) is what saves syscalls; measured cost in docs/udp.md.
public final class DatagramEngine: @unchecked Sendable {
    // Token layout in epoll's 64-bit data: kind (8 bits) | generation (32) | slot (24).
    enum Kind: UInt64 { case wake = 1, listener, datagram, tunnel }

    let settingsLock: Mutex<(udp: DatagramSettings, connectTimeout: Double, upstreamMPTCP: Bool, listeners: [ListenerSettings])>
    public let counters = DatagramCounters()
    var logger: Logger
    let steering: UplinkSteeringChannel?
    /// Server: the per-key accounts a flow's tunnel connection keeps holding (limits,
    /// revocation, metrics), shared with the workers.
    let accounts: TunnelKeyAccounts?
    /// Aggregation servers the health pings took out of service (TunnelServerProber): a new
    /// flow goes to its destination's server among the others, as TCP connections do.
    let serversOut = Mutex<Set<SocketAddress>>([])
    private let epoll: Int32
    private let wake: Int32
    private var thread: pthread_t?
    private let stopFlag = Atomic<Bool>(false)

    // Owned by the engine thread from start on.
    var flows: [DatagramFlow?] = []
    var freeSlots: [Int] = []
    var generations: [UInt32] = []
    var byKey: [FlowKey: Int] = [:]
    var perClient: [SocketAddress: Int] = [:]
    var openFlows = 0
    var nextID: UInt64 = 1
    var now: Int64 = 0
    var udp = DatagramSettings()
    var connectTimeout: Double = 10
    var upstreamMPTCP = true
    /// Gateway listeners: socket and the tunnel they feed.
    var gatewayListeners: [(fd: Int32, settings: ListenerSettings)] = []
    let scratch = UnsafeMutableRawPointer.allocate(byteCount: 65536, alignment: 16)
    var lastSweep: Int64 = 0
    /// Rate limits for log lines about drops (one a few seconds, with counts).
    var lastLimitLog: Int64 = .min / 2
    var lastRefusalLog: Int64 = .min / 2

    /// Work handed in from other threads (tunnel-server workers, snapshot requests).
    /// `open` false once the loop has ended: nothing more is taken (a caller keeps what it
    /// would have handed over), and the wake descriptor is never written after its close.
    private let inbox = Mutex<(items: [Inbound], open: Bool)>(([], true))
    enum Inbound {
        case adopt(ServerFlowRequest)
        case revoke([Int32])
        case snapshot(@Sendable (DatagramSnapshot?) -> Void)
    }

    struct FlowKey: Hashable {
        let client: SocketAddress
        let destination: SocketAddress
    }

    /// gateway, server or gateway+server (fixed at start: listeners stay as bound).
    public let configuredRole: String
    var role: String { configuredRole }

    init(settings: RelaySettings, steering: UplinkSteeringChannel?, accounts: TunnelKeyAccounts?, logger: Logger) throws(RelayError) {
        self.accounts = accounts
        settingsLock = Mutex((settings.udp, settings.connectTimeout, settings.upstreamMPTCP, settings.listeners))
        self.logger = logger
        self.steering = steering
        let e = cnet_epoll_create()
        guard e >= 0 else { throw .eventfd(Errno(rawValue: errno)) }
        epoll = e
        let w = cnet_eventfd()
        guard w >= 0 else { close(e); throw .eventfd(Errno(rawValue: errno)) }
        wake = w
        _ = cnet_epoll_control(epoll, CNET_EPOLL_CTL_ADD, wake, CNET_EPOLLIN, Kind.wake.rawValue << 56)
        for listener in settings.listeners where listener.carriesUDP {
            let fd = listener.address.withSockaddr { cnet_udp_listener($0, $1) }
            guard fd >= 0 else {
                close(epoll); close(wake)
                for l in gatewayListeners { close(l.fd) }
                throw .listen(listener.address, Errno(rawValue: -fd))
            }
            _ = cnet_epoll_control(epoll, CNET_EPOLL_CTL_ADD, fd, CNET_EPOLLIN, Kind.listener.rawValue << 56 | UInt64(gatewayListeners.count))
            gatewayListeners.append((fd, listener))
        }
        let server = settings.listeners.contains { $0.mode == .tunnelServer }
        let gateway = !gatewayListeners.isEmpty
        configuredRole = gateway && server ? "gateway+server" : gateway ? "gateway" : "server"
    }

    /// Whether a relay with these settings needs the engine.
    static func wanted(_ settings: RelaySettings) -> Bool {
        settings.listeners.contains { $0.carriesUDP || $0.mode == .tunnelServer }
    }

    func start() throws(RelayError) {
        switch startThread({ self.run() }) {
        case .success(let t): thread = t
        case .failure(let e): throw .thread(e.code)
        }
        for l in gatewayListeners {
            logger.notice("listening on \(l.settings.address) (UDP): LAN datagrams through the tunnel to \(l.settings.tunnel?.via?.description ?? "?")")
        }
    }

    /// Stops the loop, closes every flow, waits for the thread.
    func stop() {
        stopFlag.store(true, ordering: .releasing)
        poke()
        if let t = thread {
            pthread_join(t, nil)
            thread = nil
        }
    }

    /// New timeouts, caps and keys; listener sockets stay as bound (a new UDP port or
    /// `udp` switched on takes a restart, and the reload says so).
    func reload(_ settings: RelaySettings) {
        settingsLock.withLock { $0 = (settings.udp, settings.connectTimeout, settings.upstreamMPTCP, settings.listeners) }
        poke()
    }

    /// Answers at the engine's next wake (at once: this wakes it).
    public func snapshot(timeout: Double = 2) -> DatagramSnapshot? {
        let result = Mutex<DatagramSnapshot?>(nil)
        let done = DispatchSemaphore(value: 0)
        guard post(.snapshot { s in result.withLock { $0 = s }; done.signal() }) else { return nil }
        guard done.wait(timeout: .now() + timeout) == .success else { return nil }
        return result.withLock { $0 }
    }

    /// Queues work for the loop and wakes it; false once the loop has ended.
    @discardableResult
    func post(_ item: Inbound) -> Bool {
        inbox.withLock { box in
            guard box.open else { return false }
            box.items.append(item)
            writeWake()
            return true
        }
    }

    /// Wakes the loop, unless it has ended.
    private func poke() {
        inbox.withLock { box in if box.open { writeWake() } }
    }

    /// Only under the inbox lock, with the inbox open: the loop closes `wake` only after
    /// closing the inbox, so this never writes to a closed (or reused) descriptor.
    private func writeWake() {
        var one: UInt64 = 1
        _ = write(wake, &one, 8)
    }

    // MARK: The loop

    private func run() {
        var events = [UInt32](repeating: 0, count: 256)
        var data = [UInt64](repeating: 0, count: 256)
        loadSettings()
        while !stopFlag.load(ordering: .acquiring) {
            // The sweep (idle timeouts, queue ages, held-down flows) runs at least every 100 ms.
            let n = cnet_epoll_wait(epoll, &events, &data, 256, 100)
            now = Worker.preciseNanoseconds()
            if n > 0 {
                for i in 0..<Int(n) { dispatch(events[i], data[i]) }
            }
            if now - lastSweep >= 100_000_000 {
                lastSweep = now
                sweep()
            }
        }
        for slot in flows.indices where flows[slot] != nil { closeFlow(slot, why: "relay stopping", quiet: true) }
        // Whatever arrived too late is answered (snapshots) or given back (sockets closed,
        // accounts released); nothing is taken after this.
        let late = inbox.withLock { box -> [Inbound] in
            box.open = false
            defer { box.items.removeAll() }
            return box.items
        }
        for item in late {
            switch item {
            case .adopt(let request):
                close(request.tunnel)
                if request.keySlot >= 0 { accounts?.release(request.keySlot, bytesUp: 0, bytesDown: 0) }
            case .revoke: break
            case .snapshot(let reply): reply(nil)
            }
        }
        for l in gatewayListeners { close(l.fd) }
        close(epoll)
        close(wake)
        scratch.deallocate()
    }

    private func dispatch(_ events: UInt32, _ token: UInt64) {
        guard let kind = Kind(rawValue: token >> 56) else { return }
        let slot = Int(token & 0xff_ffff)
        let generation = UInt32(truncatingIfNeeded: token >> 24)
        switch kind {
        case .wake:
            var value: UInt64 = 0
            _ = read(wake, &value, 8)
            drainInbox()
        case .listener:
            readListener(slot)
        case .datagram, .tunnel:
            guard slot < flows.count, let flow = flows[slot], flow.generation == generation else { return }
            if kind == .datagram {
                readDatagrams(slot, flow)
            } else {
                tunnelEvent(slot, flow, events)
            }
        }
    }

    private func drainInbox() {
        loadSettings()
        let items = inbox.withLock { box -> [Inbound] in defer { box.items.removeAll() }; return box.items }
        for item in items {
            switch item {
            case .adopt(let request): adopt(request)
            case .revoke(let slots): revokeFlows(slots)
            case .snapshot(let reply): reply(makeSnapshot())
            }
        }
    }

    private func loadSettings() {
        (udp, connectTimeout, upstreamMPTCP) = settingsLock.withLock { ($0.udp, $0.connectTimeout, $0.upstreamMPTCP) }
        let listeners = settingsLock.withLock { $0.listeners }
        // Keys and vias may change on reload; the sockets stay.
        for i in gatewayListeners.indices {
            if let next = listeners.first(where: { $0.address == gatewayListeners[i].settings.address && $0.carriesUDP }) {
                gatewayListeners[i].settings = next
            }
        }
    }

    func token(_ kind: Kind, _ slot: Int, _ generation: UInt32) -> UInt64 {
        kind.rawValue << 56 | UInt64(generation) << 24 | UInt64(slot)
    }

    // MARK: Flows

    /// Puts a new flow in the table and registers its sockets.
    func insert(_ make: (UInt64, UInt32) -> DatagramFlow) -> Int {
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
        } else {
            slot = flows.count
            flows.append(nil)
            generations.append(0)
        }
        generations[slot] &+= 1
        let flow = make(nextID, generations[slot])
        nextID += 1
        flows[slot] = flow
        openFlows += 1
        counters.add(.flowsOpened, 1)
        _ = cnet_epoll_control(epoll, CNET_EPOLL_CTL_ADD, flow.datagramSocket, CNET_EPOLLIN, token(.datagram, slot, flow.generation))
        flow.tunnelEvents = flow.phase == .connecting ? CNET_EPOLLOUT : CNET_EPOLLIN
        _ = cnet_epoll_control(epoll, CNET_EPOLL_CTL_ADD, flow.tunnel, flow.tunnelEvents, token(.tunnel, slot, flow.generation))
        return slot
    }

    /// Ends a flow's sockets. A refused gateway flow stays in the table, held down.
    func closeFlow(_ slot: Int, why: String, quiet: Bool = false, holdDown: Bool = false) {
        guard let flow = flows[slot] else { return }
        if flow.datagramSocket >= 0 { close(flow.datagramSocket); flow.datagramSocket = -1 }
        if flow.tunnel >= 0 { close(flow.tunnel); flow.tunnel = -1 }
        if !quiet {
            let seconds = Double(now - flow.openedAt) / 1e9
            let line: Logger.Message = "closed udp flow=u\(flow.id) client=\(flow.client) destination=\(flow.destination) \(flow.status?.description ?? "mptcp=?") \(why) datagrams_up=\(flow.datagramsUp) datagrams_down=\(flow.datagramsDown) up=\(flow.bytesUp) down=\(flow.bytesDown) drops=\(flow.drops) ms=\(Int(seconds * 1000))"
            // Refusals repeat (every flow, every hold-down) while a server refuses or is down:
            // one notice per 5 s, the rest at debug; the drops are counted either way.
            if holdDown && now - lastRefusalLog >= 5_000_000_000 {
                lastRefusalLog = now
                logger.notice(line)
            } else if holdDown {
                logger.debug(line)
            } else {
                logger.info(line)
            }
        }
        if holdDown {
            flow.phase = .refused
            flow.heldUntil = now + 2_000_000_000
            return
        }
        forget(slot)
    }

    private func forget(_ slot: Int) {
        guard let flow = flows[slot] else { return }
        flows[slot] = nil
        freeSlots.append(slot)
        openFlows -= 1
        counters.add(.flowsClosed, 1)
        if flow.keySlot >= 0 {
            accounts?.release(flow.keySlot, bytesUp: flow.bytesUp, bytesDown: flow.bytesDown)
            flow.keySlot = -1
        }
        let key = FlowKey(client: flow.client, destination: flow.destination)
        if byKey[key] == slot {
            byKey[key] = nil
            let host = flow.client.withoutPort
            if let n = perClient[host] { perClient[host] = n > 1 ? n - 1 : nil }
        }
    }

    private func sweep() {
        let maxAge = Int64(udp.queueMilliseconds) * 1_000_000
        for slot in flows.indices {
            guard let flow = flows[slot] else { continue }
            switch flow.phase {
            case .refused:
                if now >= flow.heldUntil { forget(slot) }
                continue
            case .connecting:
                if connectTimeout > 0, now - flow.openedAt > nanoseconds(connectTimeout) {
                    closeFlow(slot, why: "tunnel connect timed out after \(connectTimeout) s", holdDown: true)
                    continue
                }
            case .open:
                break
            }
            let limit = flow.looksOneShot ? udp.shortIdleTimeout : udp.idleTimeout
            if limit > 0, now - flow.lastActive > nanoseconds(limit) {
                closeFlow(slot, why: "idle for \(Int(limit)) s")
                continue
            }
            // A socket that stays full never wakes us: age its queue here too. Not while
            // connecting: the handshake is not queueing, and the first datagrams (a DNS query,
            // a QUIC Initial) would otherwise be lost on any path slower than queue_ms.
            guard flow.phase == .open else { continue }
            let dropped = flow.toTunnel.expire(now: now, maxAge: maxAge)
            if dropped > 0 { countDrops(flow, .age, dropped) }
        }
    }

    /// Keeps a tunnel socket's unsent bytes small (TCP_NOTSENT_LOWAT), so datagrams wait in
    /// the flow's queue, where their age is bounded. MPTCP takes the option from Linux 6.9 on;
    /// before, a small fixed send buffer bounds the same thing (and the flow's rate to about
    /// buffer / RTT), and the log says so once.
    func limitUnsent(_ fd: Int32) {
        let socket = FileDescriptor(rawValue: fd)
        if (try? Socket.setOption(socket, level: Int32(IPPROTO_TCP), name: TCP_NOTSENT_LOWAT, value: Int32(udp.socketUnsentBytes))) != nil { return }
        _ = try? Socket.setOption(socket, level: SOL_SOCKET, name: SO_SNDBUF, value: Int32(Self.fallbackSendBuffer))
        if !warnedNoLowat {
            warnedNoLowat = true
            logger.notice("udp: this kernel's MPTCP refuses TCP_NOTSENT_LOWAT (added in Linux 6.9): tunnel sockets of UDP flows get a \(Self.fallbackSendBuffer / 1024) KiB send buffer instead, which bounds their queueing and their rate (the kernel doubles it: about 512 KiB per round trip)")
        }
    }
    static let fallbackSendBuffer = 256 << 10
    var warnedNoLowat = false

    func countDrops(_ flow: DatagramFlow, _ reason: DatagramDrop, _ n: Int) {
        flow.drops += UInt64(n)
        counters.drop(reason, UInt64(n))
    }

    // MARK: Data path (both ends)

    /// Datagrams from the flow's UDP socket (the LAN client, or the destination) into its
    /// tunnel queue. At most 64 per wake, so one busy flow cannot starve the others.
    private func readDatagrams(_ slot: Int, _ flow: DatagramFlow) {
        for _ in 0..<64 {
            let n = recv(flow.datagramSocket, scratch, 65536, Int32(MSG_DONTWAIT))
            if n < 0 {
                let e = errno
                if e == EAGAIN || e == EINTR { break }
                // ICMP errors (port unreachable from the destination) surface here: the
                // datagram that caused them is gone already; the flow goes on.
                if e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH { continue }
                closeFlow(slot, why: "udp socket: \(Errno(rawValue: e))")
                return
            }
            enqueue(flow, UnsafeRawBufferPointer(start: scratch, count: n))
        }
        flush(slot, flow)
    }

    /// One datagram into the flow's queue toward the tunnel, or a counted drop.
    func enqueue(_ flow: DatagramFlow, _ datagram: UnsafeRawBufferPointer) {
        flow.lastActive = now
        guard flow.phase != .refused else { countDrops(flow, .tunnelDown, 1); return }
        if flow.phase == .open {
            let aged = flow.toTunnel.expire(now: now, maxAge: Int64(udp.queueMilliseconds) * 1_000_000)
            if aged > 0 { countDrops(flow, .age, aged) }
        }
        if flow.toTunnel.push(datagram, now: now) {
            flow.datagramsUp += 1
            flow.bytesUp += UInt64(datagram.count)
            counters.add(.datagramsUp, 1)
            counters.add(.bytesUp, UInt64(datagram.count))
        } else {
            countDrops(flow, .queueFull, 1)
        }
    }

    /// Writes the prefix and every queued frame the socket takes, in one sendmsg.
    func flush(_ slot: Int, _ flow: DatagramFlow) {
        guard flow.phase == .open, flow.tunnel >= 0 else { return }
        let maxAge = Int64(udp.queueMilliseconds) * 1_000_000
        let aged = flow.toTunnel.expire(now: now, maxAge: maxAge)
        if aged > 0 { countDrops(flow, .age, aged) }
        while flow.hasOutput {
            let (a, b) = flow.toTunnel.spans()
            let prefixLeft = flow.prefix.count - flow.prefixSent
            let n: Int = flow.prefix.withUnsafeBytes { prefix in
                var iov = (iovec(iov_base: UnsafeMutableRawPointer(mutating: prefix.baseAddress.map { $0 + flow.prefixSent }), iov_len: prefixLeft),
                           iovec(iov_base: UnsafeMutableRawPointer(mutating: a.baseAddress), iov_len: a.count),
                           iovec(iov_base: UnsafeMutableRawPointer(mutating: b.baseAddress), iov_len: b.count))
                return withUnsafeMutableBytes(of: &iov) { raw in
                    var msg = msghdr()
                    msg.msg_iov = raw.baseAddress!.assumingMemoryBound(to: iovec.self)
                    msg.msg_iovlen = 3
                    return sendmsg(flow.tunnel, &msg, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
                }
            }
            if n < 0 {
                let e = errno
                if e == EINTR { continue }
                if e == EAGAIN { break }
                closeFlow(slot, why: "tunnel write: \(Errno(rawValue: e))", holdDown: flow.awaitingReply)
                return
            }
            var written = n
            let fromPrefix = min(written, prefixLeft)
            flow.prefixSent += fromPrefix
            written -= fromPrefix
            if flow.prefixSent == flow.prefix.count, !flow.prefix.isEmpty {
                flow.prefix = []
                flow.prefixSent = 0
            }
            if written > 0 { flow.toTunnel.consume(written) }
        }
        setTunnelInterest(slot, flow, wantWrite: flow.hasOutput)
    }

    func setTunnelInterest(_ slot: Int, _ flow: DatagramFlow, wantWrite: Bool) {
        let events = CNET_EPOLLIN | (wantWrite ? CNET_EPOLLOUT : 0)
        guard events != flow.tunnelEvents else { return }
        flow.tunnelEvents = events
        _ = cnet_epoll_control(epoll, CNET_EPOLL_CTL_MOD, flow.tunnel, events, token(.tunnel, slot, flow.generation))
    }

    private func tunnelEvent(_ slot: Int, _ flow: DatagramFlow, _ events: UInt32) {
        if flow.phase == .connecting {
            tunnelConnected(slot, flow)
            return
        }
        if events & CNET_EPOLLOUT != 0 {
            flush(slot, flow)
            guard flows[slot] === flow, flow.tunnel >= 0 else { return }
        }
        if events & (CNET_EPOLLIN | CNET_EPOLLHUP | CNET_EPOLLERR) != 0 {
            readTunnel(slot, flow)
        }
    }

    /// Frames off the tunnel, each sent as one datagram on the flow's UDP socket.
    private func readTunnel(_ slot: Int, _ flow: DatagramFlow) {
        let space = flow.fromTunnel.space()
        let n = recv(flow.tunnel, space.baseAddress, space.count, Int32(MSG_DONTWAIT))
        if n < 0 {
            let e = errno
            if e == EAGAIN || e == EINTR { return }
            // Before the reply, a reset is a refusal (pre-auth limits, a middlebox): hold the
            // flow down rather than redial at once for its next datagram.
            closeFlow(slot, why: "tunnel read: \(Errno(rawValue: e))", holdDown: flow.awaitingReply)
            return
        }
        if n == 0 {
            closeFlow(slot, why: flow.awaitingReply ? "tunnel closed before the server replied" : "tunnel closed by the peer",
                      holdDown: flow.awaitingReply)
            return
        }
        flow.fromTunnel.appended(n)
        if flow.awaitingReply {
            guard readReply(slot, flow) else { return }
        }
        deliver(slot, flow)
    }

    /// Every whole frame the deframer holds goes out as a datagram.
    func deliver(_ slot: Int, _ flow: DatagramFlow) {
        while let datagram = flow.fromTunnel.next() {
            flow.lastActive = now
            let sent = send(flow.datagramSocket, datagram.baseAddress, datagram.count, Int32(MSG_DONTWAIT) | Int32(MSG_NOSIGNAL))
            if sent < 0 {
                countDrops(flow, .sendFailed, 1)
                continue
            }
            flow.datagramsDown += 1
            flow.bytesDown += UInt64(datagram.count)
            counters.add(.datagramsDown, 1)
            counters.add(.bytesDown, UInt64(datagram.count))
        }
    }

    private func makeSnapshot() -> DatagramSnapshot {
        var list: [DatagramFlowSnapshot] = []
        for case let flow? in flows {
            let outcome = flow.status.map { MPTCPOutcome($0, wanted: flow.tunnelProtocol == .mptcp) }
            list.append(DatagramFlowSnapshot(
                id: "u\(flow.id)", client: flow.client, destination: flow.destination, phase: flow.phase.rawValue,
                mptcp: outcome, datagramsUp: flow.datagramsUp, datagramsDown: flow.datagramsDown,
                bytesUp: flow.bytesUp, bytesDown: flow.bytesDown, drops: flow.drops, queued: flow.toTunnel.count,
                ageSeconds: Double(now - flow.openedAt) / 1e9, idleSeconds: Double(now - flow.lastActive) / 1e9))
        }
        return DatagramSnapshot(role: role, flows: list, openFlows: openFlows)
    }
}
