#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import FlyingFox
import FlyingSocks
import Foundation
import Logging
import MPTCPSocket
import RelayCore
import Synchronization

/// The operator listener: /metrics (Prometheus), /api/connections (JSON), / (dashboard).
/// It runs on Swift concurrency's threads, never on a worker's ring: a request posts a
/// snapshot request to each worker's mailbox and awaits the answers (Relay+Snapshot).
public final class AdminServer: Sendable {
    /// The relay as the admin side uses it: `snapshot` and the workers' atomic counters,
    /// both safe from any thread once `Relay.start` returned (the mailboxes are fixed then).
    struct RelayView: @unchecked Sendable {
        let relay: Relay
    }

    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    let settings: AdminSettings
    let token: AdminToken?
    let relay: RelayView
    let metrics = AdminMetrics()
    let wans = WanAccounting()
    /// The WAN manager's per-uplink state, when it runs.
    let uplinks: (@Sendable () -> [StatusDocument.Uplink])?
    /// Where the WAN manager sends routed traffic, when it does.
    let routing: (@Sendable () -> [StatusDocument.Routing])?
    /// Advances by the detail budget per request, so the subflows read rotate over connections.
    private let detailOffset = Atomic<Int>(0)
    /// Requests being answered now; past `maxInFlight` a request gets 503 at once, so a
    /// flood of requests cannot queue snapshot work for the workers.
    let inFlight = Atomic<Int>(0)
    static let maxInFlight = 16
    /// Orders snapshot reads: WanAccounting folds in only reads newer than the last it took.
    private let readSequence = Atomic<UInt64>(0)
    static let detailBudget = 256
    /// Connections that may wait for request bytes at once (AdminSocketPool).
    static let maxWaitingConnections = 64
    let pool: AdminSocketPool
    private let server: HTTPServer

    /// Loads the token file (when set); the listener starts with `start()`.
    public convenience init(settings: AdminSettings, relay: Relay, uplinks: (@Sendable () -> [StatusDocument.Uplink])? = nil,
                            routing: (@Sendable () -> [StatusDocument.Routing])? = nil) throws {
        try self.init(settings: settings, relay: relay, uplinks: uplinks, routing: routing, bootstrapMetrics: true)
    }

    /// `bootstrapMetrics: false` leaves swift-metrics alone (it takes one backend per process:
    /// a test process that has one already can still run an admin listener).
    init(settings: AdminSettings, relay: Relay, uplinks: (@Sendable () -> [StatusDocument.Uplink])?,
         routing: (@Sendable () -> [StatusDocument.Routing])? = nil, bootstrapMetrics: Bool) throws {
        if let problem = settings.problem { throw StartError(description: problem) }
        self.settings = settings
        self.uplinks = uplinks
        self.routing = routing
        token = try settings.tokenFile.map { path throws in try AdminToken.load(path: path) }
        self.relay = RelayView(relay: relay)
        let address: any FlyingSocks.SocketAddress
        do {
            if settings.listen.family == AF_INET6 {
                address = try sockaddr_in6.inet6(ip6: settings.listen.host, port: settings.listen.port)
            } else {
                address = try sockaddr_in.inet(ip4: settings.listen.host, port: settings.listen.port)
            }
        } catch {
            throw StartError(description: "admin listener \(settings.listen): not an address this server can bind (\(error))")
        }
        pool = AdminSocketPool(inner: HTTPServer.defaultPool(), limit: Self.maxWaitingConnections)
        server = HTTPServer(config: .init(address: address, timeout: 15, pool: pool, logger: .disabled), handler: nil)
        if bootstrapMetrics { metrics.bootstrap() }
    }

    /// Binds and starts serving; returns once the socket listens, or throws why not.
    public func start() throws {
        final class Outcome: Sendable {
            let value = Mutex<Result<Void, any Error>?>(nil)
            func set(_ r: Result<Void, any Error>) { value.withLock { if $0 == nil { $0 = r } } }
        }
        let outcome = Outcome()
        let ready = DispatchSemaphore(value: 0)
        let handler = AdminHandler(admin: self)
        let server = self.server
        Task {
            await server.appendRoute("*", to: handler)
            do { try await server.run() } catch {
                outcome.set(.failure(error))
                ready.signal()
            }
        }
        Task {
            do {
                try await server.waitUntilListening(timeout: 10)
                outcome.set(.success(()))
            } catch {
                outcome.set(.failure(error))
            }
            ready.signal()
        }
        ready.wait()
        if case .failure(let error) = outcome.value.withLock({ $0 }) {
            throw StartError(description: "cannot listen on \(settings.listen) for the admin listener: \(error) (is the port taken? ss -ltnp 'sport = :\(settings.listen.port)')")
        }
    }

    public func stop() {
        let server = self.server
        Task { await server.stop(timeout: 1) }
    }

    /// Every worker's snapshot, folded into the API document.
    func status(withConnections: Bool = true) async -> StatusDocument {
        let view = relay
        let sequence = readSequence.add(1, ordering: .relaxed).newValue
        let answers: [WorkerSnapshot] = await withCheckedContinuation { continuation in
            let offset = detailOffset.add(Self.detailBudget, ordering: .relaxed).oldValue
            view.relay.snapshot(withConnections: withConnections, detailBudget: Self.detailBudget, detailOffset: offset) {
                continuation.resume(returning: $0)
            }
        }
        let interfaces = InterfaceMap.current()
        var connections: [StatusDocument.Connection] = []
        for w in answers {
            for c in w.connections {
                connections.append(StatusDocument.Connection(
                    id: c.id, listener: c.listener.description, mode: c.mode,
                    client: c.client?.description, destination: c.destination?.description,
                    phase: c.phase, mptcp: c.mptcp?.rawValue,
                    subflows: c.subflows?.map { f in
                        StatusDocument.Subflow(local: f.local?.description, remote: f.remote?.description,
                                               interface: interfaces.interface(of: f.local),
                                               rttMs: f.rttMicroseconds.map { Double($0) / 1000 },
                                               bytesSent: f.bytesSent, bytesReceived: f.bytesReceived)
                    },
                    bytesUp: c.bytesUp, bytesDown: c.bytesDown, ageSeconds: (c.ageSeconds * 1000).rounded() / 1000,
                    key: c.key, server: c.server?.description))
            }
        }
        connections.sort { $0.ageSeconds > $1.ageSeconds }
        let r = view.relay
        let totals = StatusDocument.Totals(
            openConnections: answers.reduce(0) { $0 + $1.openConnections },
            accepted: r.total(.accepted), closed: r.total(.closed),
            mptcp: r.total(.mptcpUpstreams), fallback: r.total(.fallbackUpstreams),
            bytesUp: answers.reduce(0) { $0 + $1.bytesUp }, bytesDown: answers.reduce(0) { $0 + $1.bytesDown },
            pipesInUse: answers.reduce(0) { $0 + $1.pipesInUse }, acceptPauses: r.total(.acceptPauses))
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        let routed = routing?()
        var doc = StatusDocument(time: Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9,
                                 workersAnswered: answers.count, workers: r.counters.count,
                                 totals: totals, wans: withConnections ? wans.update(connections, sequence: sequence) : wans.current(),
                                 connections: connections,
                                 subflowDetailsOmitted: answers.reduce(0) { $0 + $1.detailsOmitted },
                                 uplinks: uplinks?(), routing: routed?.isEmpty == true ? nil : routed)
        let servers = r.tunnelServerReports()
        if !servers.isEmpty {
            doc.servers = servers.map { s in
                StatusDocument.TunnelServer(address: s.address.description, inService: s.inService, detail: s.detail, rttMs: s.rttMs,
                                            since: s.since, rounds: s.rounds, failedRounds: s.failedRounds, transitions: s.transitions,
                                            connections: connections.filter { $0.server == s.address.description }.count)
            }
        }
        let keys = r.tunnelKeyReports()
        if !keys.isEmpty {
            doc.keys = keys.map { StatusDocument.TunnelKey(key: $0.label, open: $0.open, accepted: $0.accepted, refused: $0.refused,
                                                           bytesUp: $0.bytesUp, bytesDown: $0.bytesDown) }
        }
        doc.udp = await datagramStatus(withFlows: withConnections)
        return doc
    }

    /// The datagram engine's counters (atomics, no wait) and, for /api, its flows (the
    /// engine answers at its next wake; asked off the cooperative pool, which must not block).
    func datagramStatus(withFlows: Bool) async -> StatusDocument.Udp? {
        guard let engine = relay.relay.datagrams else { return nil }
        let c = engine.counters
        var snapshot: DatagramSnapshot? = nil
        if withFlows {
            snapshot = await withCheckedContinuation { continuation in
                DispatchQueue.global().async { continuation.resume(returning: engine.snapshot()) }
            }
        }
        var drops: [String: UInt64] = [:]
        for reason in DatagramDrop.allCases { drops[reason.label] = c.dropped(reason) }
        let flows = (snapshot?.flows ?? []).map { f in
            StatusDocument.UdpFlow(id: f.id, client: f.client?.description, destination: f.destination?.description, phase: f.phase,
                                   mptcp: f.mptcp?.rawValue, datagramsUp: f.datagramsUp, datagramsDown: f.datagramsDown,
                                   bytesUp: f.bytesUp, bytesDown: f.bytesDown, drops: f.drops, queuedBytes: f.queued,
                                   ageSeconds: (f.ageSeconds * 1000).rounded() / 1000, idleSeconds: (f.idleSeconds * 1000).rounded() / 1000)
        }
        let opened = c.total(.flowsOpened)
        return StatusDocument.Udp(role: snapshot?.role ?? engine.configuredRole, openFlows: snapshot?.openFlows ?? Int(opened - min(opened, c.total(.flowsClosed))),
                                  flowsOpened: opened, datagramsUp: c.total(.datagramsUp), datagramsDown: c.total(.datagramsDown),
                                  bytesUp: c.total(.bytesUp), bytesDown: c.total(.bytesDown), drops: drops, flows: flows)
    }
}

/// One handler for every path: the token check comes first, whatever is asked.
struct AdminHandler: HTTPHandler {
    let admin: AdminServer

    func handleRequest(_ request: HTTPRequest) async throws -> HTTPResponse {
        // DNS rebinding: a web page whose name now resolves to 127.0.0.1 must not read the
        // connection list through the visitor's browser. Its requests carry its own name.
        if !admin.settings.accepts(host: request.headers[.host]) {
            return HTTPResponse(statusCode: .misdirectedRequest, headers: [.contentType: "text/plain; charset=utf-8"],
                                body: Data("421: this listener answers to its own address\(admin.settings.isLoopback ? " or localhost" : ""); add other names with host_names in [admin]\n".utf8))
        }
        let busy = admin.inFlight.add(1, ordering: .relaxed).newValue > AdminServer.maxInFlight
        defer { admin.inFlight.subtract(1, ordering: .relaxed) }
        if busy {
            return HTTPResponse(statusCode: .serviceUnavailable, headers: [.contentType: "text/plain", HTTPHeader("Retry-After"): "1"],
                                body: Data("503: too many requests in progress\n".utf8))
        }
        if let token = admin.token, !token.accepts(authorization: request.headers[.authorization]) {
            return HTTPResponse(statusCode: .unauthorized,
                                headers: [.contentType: "text/plain; charset=utf-8", HTTPHeader("WWW-Authenticate"): "Bearer"],
                                body: Data("401: send Authorization: Bearer <token from the admin token file>\n".utf8))
        }
        guard request.method == .GET || request.method == .HEAD else {
            return HTTPResponse(statusCode: .methodNotAllowed, headers: [.contentType: "text/plain"], body: Data("only GET\n".utf8))
        }
        switch request.path {
        case "/metrics":
            // Counts and live counters only: no worker walks its table or asks the kernel
            // about each connection for a scrape (per-connection detail is /api's).
            let doc = await admin.status(withConnections: false)
            let listeners = admin.relay.relay.counters.flatMap(\.listenerCounters)
            return HTTPResponse(statusCode: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                                body: Data(admin.metrics.render(doc, listeners: listeners).utf8))
        case "/api/connections", "/api/status":
            let doc = await admin.status()
            let encoder = JSONEncoder()
            encoder.keyEncodingStrategy = .convertToSnakeCase
            encoder.outputFormatting = [.sortedKeys]
            return HTTPResponse(statusCode: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                                body: try encoder.encode(doc))
        case "/", "/index.html":
            return HTTPResponse(statusCode: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                                body: Data(Dashboard.html.utf8))
        default:
            return HTTPResponse(statusCode: .notFound, headers: [.contentType: "text/plain"],
                                body: Data("not found; try /, /metrics or /api/connections\n".utf8))
        }
    }
}
