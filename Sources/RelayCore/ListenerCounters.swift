import Synchronization

/// What one worker counts under one listener record, live: bytes as they move (so a scrape
/// sees a long download grow), and each connection's events: accepted, the MPTCP side's
/// outcome, why it closed, how long its upstream connect took. Only the owning worker
/// writes, with a relaxed load and store: no read-modify-write, no lock, nothing allocated
/// per connection. A scrape reads `counts` and sums the workers' (AdminMetrics).
public final class ListenerCounters: Sendable {
    public let listener: String
    public let mode: String
    private let upValue = Atomic<UInt64>(0)
    private let downValue = Atomic<UInt64>(0)
    private let acceptedValue = Atomic<UInt64>(0)
    /// By MPTCPOutcome, in `allCases` order.
    private let outcomes: InlineArray<5, Atomic<UInt64>>
    /// By CloseCause ordinal.
    private let closes: InlineArray<9, Atomic<UInt64>>
    /// Upstream connects by the first bound of `connectBounds` they are within, and past
    /// the last one (not cumulative: a scrape adds them up).
    private let connects: InlineArray<13, Atomic<UInt64>>
    private let connectNanoseconds = Atomic<UInt64>(0)

    /// Upper bounds of the upstream connect latency histogram, in nanoseconds: 1 ms to 10 s.
    public static let connectBounds: [Int64] = [
        1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000,
    ].map { $0 * 1_000_000 }

    init(listener: String, mode: String) {
        self.listener = listener
        self.mode = mode
        outcomes = InlineArray { _ in Atomic(0) }
        closes = InlineArray { _ in Atomic(0) }
        connects = InlineArray { _ in Atomic(0) }
        precondition(outcomes.count == MPTCPOutcome.allCases.count && closes.count == CloseCause.count
                     && connects.count == Self.connectBounds.count + 1)
    }

    /// The single writer's increment: a plain load and store, no atomic read-modify-write.
    @inline(__always) private static func bump(_ value: borrowing Atomic<UInt64>, by n: UInt64 = 1) {
        value.store(value.load(ordering: .relaxed) &+ n, ordering: .relaxed)
    }

    @inline(__always) func addBytes(direction d: Int, _ n: UInt64) {
        if d == 0 { Self.bump(upValue, by: n) } else { Self.bump(downValue, by: n) }
    }

    func countAccepted() { Self.bump(acceptedValue) }

    func count(_ outcome: MPTCPOutcome) { Self.bump(outcomes[outcome.ordinal]) }

    func count(_ cause: CloseCause) { Self.bump(closes[cause.ordinal]) }

    func countConnect(nanoseconds: Int64) {
        let elapsed = max(0, nanoseconds)
        let bucket = Self.connectBounds.firstIndex { elapsed <= $0 } ?? Self.connectBounds.count
        Self.bump(connects[bucket])
        Self.bump(connectNanoseconds, by: UInt64(elapsed))
    }

    public var up: UInt64 { upValue.load(ordering: .relaxed) }
    public var down: UInt64 { downValue.load(ordering: .relaxed) }

    /// Everything counted so far, open connections' bytes included.
    public var counts: ListenerCounts {
        var c = ListenerCounts()
        c.bytesUp = up
        c.bytesDown = down
        c.accepted = acceptedValue.load(ordering: .relaxed)
        c.outcomes = (0..<outcomes.count).map { outcomes[$0].load(ordering: .relaxed) }
        c.closes = (0..<closes.count).map { closes[$0].load(ordering: .relaxed) }
        c.connects = (0..<connects.count).map { connects[$0].load(ordering: .relaxed) }
        c.connectNanoseconds = connectNanoseconds.load(ordering: .relaxed)
        return c
    }
}

/// A listener's counts read at one scrape (one worker's, or the sum of them all).
public struct ListenerCounts: Sendable, Equatable {
    public var bytesUp: UInt64 = 0
    public var bytesDown: UInt64 = 0
    public var accepted: UInt64 = 0
    /// By MPTCPOutcome, in `allCases` order.
    public var outcomes = [UInt64](repeating: 0, count: MPTCPOutcome.allCases.count)
    /// By `closeReasons` label.
    public var closes = [UInt64](repeating: 0, count: CloseCause.count)
    /// Connects within each of ListenerCounters.connectBounds (not cumulative), then past the last.
    public var connects = [UInt64](repeating: 0, count: ListenerCounters.connectBounds.count + 1)
    public var connectNanoseconds: UInt64 = 0

    public init() {}

    /// The `reason` labels of mptcp_relay_connections_closed_total, in `closes` order.
    public static var closeReasons: [String] { CloseCause.metricLabels }

    public static func + (a: ListenerCounts, b: ListenerCounts) -> ListenerCounts {
        var sum = a
        sum.bytesUp &+= b.bytesUp
        sum.bytesDown &+= b.bytesDown
        sum.accepted &+= b.accepted
        for i in sum.outcomes.indices { sum.outcomes[i] &+= b.outcomes[i] }
        for i in sum.closes.indices { sum.closes[i] &+= b.closes[i] }
        for i in sum.connects.indices { sum.connects[i] &+= b.connects[i] }
        sum.connectNanoseconds &+= b.connectNanoseconds
        return sum
    }
}

extension MPTCPOutcome {
    /// The index of the outcome in `allCases`.
    var ordinal: Int {
        switch self {
        case .mptcp: return 0
        case .fallbackPeer: return 1
        case .fallbackKernel: return 2
        case .mptcpLost: return 3
        case .disabled: return 4
        }
    }
}
