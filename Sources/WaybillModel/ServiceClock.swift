/// Wall-clock time for Waybill's long-running loops (alert ticks, hook delivery, retention, checkpoints).
/// Injected, so that tests advance a manual clock instead of sleeping and polling.
///
/// Contract: `now()` never goes backwards within one clock; `sleep(until:)` returns once `now()` has
/// reached `deadline` (at once when it already has) and throws `CancellationError` when its task is
/// cancelled.
public protocol ServiceClock: Sendable {
    func now() -> Micros
    func sleep(until deadline: Micros) async throws
}

extension ServiceClock {
    public func sleep(for duration: Micros) async throws { try await sleep(until: now() + duration) }
}

/// The machine's clock.
public struct SystemClock: ServiceClock {
    public init() {}
    public func now() -> Micros { currentMicros() }
    public func sleep(until deadline: Micros) async throws {
        let wait = deadline - now()
        if wait > 0 { try await Task.sleep(for: .microseconds(wait)) }
    }
}
