import WaybillModel

/// A circuit breaker as a pure value: callers ask `permit(now:)` before a call and report the outcome.
///
/// closed --(failureThreshold consecutive failures)--> open --(openDuration elapsed)--> half-open;
/// half-open lets `halfOpenTrials` calls through: one success closes it, one failure re-opens it.
public struct CircuitBreaker: Codable, Hashable, Sendable {
    public enum State: Codable, Hashable, Sendable {
        case closed(consecutiveFailures: Int)
        case open(until: Micros)
        case halfOpen(trialsInFlight: Int)
    }

    public var failureThreshold: Int
    public var openDuration: Micros
    public var halfOpenTrials: Int
    public private(set) var state: State = .closed(consecutiveFailures: 0)

    public init(failureThreshold: Int = 5, openDuration: Micros = 30_000_000, halfOpenTrials: Int = 1) {
        self.failureThreshold = failureThreshold
        self.openDuration = openDuration
        self.halfOpenTrials = halfOpenTrials
    }

    /// Whether a call may go out now; counts a half-open trial when it does.
    public mutating func permit(now: Micros) -> Bool {
        switch state {
        case .closed: return true
        case .open(let until):
            guard now >= until else { return false }
            state = .halfOpen(trialsInFlight: 1)
            return true
        case .halfOpen(let n):
            guard n < halfOpenTrials else { return false }
            state = .halfOpen(trialsInFlight: n + 1)
            return true
        }
    }

    public mutating func recordSuccess(now: Micros) {
        state = .closed(consecutiveFailures: 0)
    }

    public mutating func recordFailure(now: Micros) {
        switch state {
        case .closed(let n):
            state = n + 1 >= failureThreshold ? .open(until: now + openDuration) : .closed(consecutiveFailures: n + 1)
        case .halfOpen:
            state = .open(until: now + openDuration)
        case .open:
            break
        }
    }

    public var isOpen: Bool { if case .open = state { return true }; return false }
}
