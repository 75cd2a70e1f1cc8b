#if canImport(Glibc)
import Glibc
#endif
import Dispatch
import Logging
import MPTCPSocket
import Synchronization

/// Resolves the upstream host names of forward and server listeners on a thread of its own
/// (getaddrinfo blocks, sometimes for seconds), every 30 s and at once after a reload, and
/// hands the workers each changed result through `publish`.
final class UpstreamResolver: @unchecked Sendable {
    private struct State {
        var upstreams: [Upstream] = []
        var resolved: [String: [SocketAddress]] = [:]
        var failures: [String: String] = [:]
        var dirty = false
        var stopped = false
    }

    static let interval: Double = 30
    private let state = Mutex(State())
    private let logger: Logger
    private let publish: @Sendable ([String: [SocketAddress]]) -> Void
    private var thread: pthread_t?
    /// Ends the resolver's one-second pause at once: stop() must not wait it out (a daemon
    /// that takes a second to exit gets SIGKILLed by supervisors that allow one), and a
    /// reload's names are resolved without it.
    private let wakeup = DispatchSemaphore(value: 0)

    init(logger: Logger, publish: @escaping @Sendable ([String: [SocketAddress]]) -> Void) {
        self.logger = logger
        self.publish = publish
    }

    /// The names in `listeners`, resolved now (blocking): the first connections need them.
    func start(_ listeners: [ListenerSettings]) -> [String: [SocketAddress]] {
        let names = Self.named(listeners)
        state.withLock { $0.upstreams = names }
        // The thread runs even without names now: a reload may bring some.
        let result = names.isEmpty ? [:] : resolveAll()
        let box = Unmanaged.passRetained(self).toOpaque()
        var t = pthread_t()
        if pthread_create(&t, nil, { arg in
            let resolver = Unmanaged<UpstreamResolver>.fromOpaque(arg!).takeRetainedValue()
            resolver.loop()
            return nil
        }, box) == 0 {
            thread = t
        } else {
            Unmanaged<UpstreamResolver>.fromOpaque(box).release()
            logger.error("cannot start the upstream resolver thread: names resolve only at start")
        }
        return result
    }

    /// A reload's listeners: resolved on the resolver thread at once.
    func update(_ listeners: [ListenerSettings]) {
        let names = Self.named(listeners)
        state.withLock {
            $0.upstreams = names
            $0.dirty = true
        }
        wakeup.signal()
    }

    func stop() {
        state.withLock { $0.stopped = true }
        wakeup.signal()
        if let thread { pthread_join(thread, nil) }
        thread = nil
    }

    private static func named(_ listeners: [ListenerSettings]) -> [Upstream] {
        var seen = Set<String>()
        return listeners.compactMap { $0.mode.upstream }.filter { $0.literal == nil && seen.insert($0.description).inserted }
    }

    private func loop() {
        var waited = 0.0
        while true {
            let paused = wakeup.wait(timeout: .now() + 1) == .timedOut
            if paused { waited += 1 }
            let (stopped, dirty) = state.withLock { s -> (Bool, Bool) in
                defer { s.dirty = false }
                return (s.stopped, s.dirty)
            }
            if stopped { return }
            if dirty || waited >= Self.interval {
                waited = 0
                _ = resolveAll()
            }
        }
    }

    /// Resolves every name; publishes and logs what changed.
    private func resolveAll() -> [String: [SocketAddress]] {
        let (upstreams, previous) = state.withLock { ($0.upstreams, ($0.resolved, $0.failures)) }
        var fresh: [String: [SocketAddress]] = [:]
        var failures: [String: String] = [:]
        for u in upstreams {
            switch u.resolve() {
            case .success(let addresses):
                fresh[u.description] = addresses
                if previous.0[u.description] != addresses {
                    logger.notice("upstream \(u) resolves to \(addresses.map(\.description).joined(separator: ", "))")
                }
            case .failure(let error):
                // Keep serving the last good answer: a resolver hiccup must not stop the relay.
                if let last = previous.0[u.description] { fresh[u.description] = last }
                failures[u.description] = error.text
                if previous.1[u.description] != error.text {
                    logger.warning("upstream \(u) does not resolve: \(error.text)\(fresh[u.description] == nil ? "; its connections are refused until it does" : "; keeping the last addresses")")
                }
            }
        }
        let changed = state.withLock { s -> Bool in
            defer { s.resolved = fresh; s.failures = failures }
            return s.resolved != fresh
        }
        if changed { publish(fresh) }
        return fresh
    }
}
