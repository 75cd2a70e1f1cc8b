/// The probe verdict on one WAN: a counter of consecutive rounds against the thresholds.
/// Pure; the prober feeds it rounds and the manager acts on its transitions.
public struct WanHealth: Sendable, Equatable {
    public enum State: String, Sendable {
        /// No round finished yet: treated as in service (a gateway that just booted must not
        /// refuse everything for its first seconds).
        case unknown
        case up
        case down
    }

    public private(set) var state: State = .unknown
    /// Consecutive rounds that disagree with `state` (failures while up, answers while down).
    public private(set) var streak = 0
    /// Why the last round failed, or what answered it.
    public private(set) var lastResult = ""
    /// Rounds run and rounds failed since start (for metrics).
    public private(set) var rounds: UInt64 = 0
    public private(set) var failures: UInt64 = 0

    public init() {}

    public var inService: Bool { state != .down }

    /// Folds in one round; returns the new state when it changed.
    public mutating func record(answered: Bool, detail: String, settings: HealthSettings) -> State? {
        rounds += 1
        if !answered { failures += 1 }
        lastResult = detail
        switch (state, answered) {
        case (.up, true), (.down, false):
            streak = 0
            return nil
        case (.unknown, true):
            streak = 0
            state = .up
            return .up
        case (.unknown, false), (.up, false):
            streak += 1
            guard streak >= settings.downAfter else { return nil }
            streak = 0
            state = .down
            return .down
        case (.down, true):
            streak += 1
            guard streak >= settings.upAfter else { return nil }
            streak = 0
            state = .up
            return .up
        }
    }

    /// The WAN is no longer probed (link down, disabled, no address): forget the verdict so
    /// it starts afresh when probing resumes.
    public mutating func reset() {
        state = .unknown
        streak = 0
    }
}
