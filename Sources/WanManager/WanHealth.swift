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
    /// What the round that took the WAN out of service found: a stable reason for refusals
    /// and reports while it stays out (the last round's detail changes every second).
    public private(set) var downReason = ""
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
            downReason = detail
            return .down
        case (.down, true):
            streak += 1
            guard streak >= settings.upAfter else { return nil }
            streak = 0
            state = .up
            return .up
        }
    }

    /// The WAN is not probed for a while (link down, no address): the verdict stands, so a
    /// dead modem that re-attaches is not back in service before `upAfter` answers, but a
    /// streak in progress is dropped.
    public mutating func pause() {
        streak = 0
    }

    /// Probing is off for it (config): no verdict at all.
    public mutating func forget() {
        state = .unknown
        streak = 0
    }
}
