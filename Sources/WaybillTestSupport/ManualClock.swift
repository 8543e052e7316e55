import Foundation
import WaybillModel

/// A `ServiceClock` that moves only when a test says so: loops under test park in `sleep(until:)` and
/// run when `advance` reaches their deadline.
public final class ManualClock: ServiceClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Micros
    private var sleepers: [Int: (deadline: Micros, continuation: CheckedContinuation<Void, any Error>)] = [:]
    private var nextID = 0

    public init(now: Micros) { current = now }

    public func now() -> Micros { lock.withLock { current } }

    /// How many tasks are parked in `sleep(until:)`.
    public var sleeping: Int { lock.withLock { sleepers.count } }

    public func sleep(until deadline: Micros) async throws {
        let (id, due) = lock.withLock { () -> (Int, Bool) in
            nextID += 1
            return (nextID, deadline <= current)
        }
        if due { return }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, any Error>) in
                let outcome = lock.withLock { () -> Result<Void, any Error>? in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if deadline <= current { return .success(()) }
                    sleepers[id] = (deadline, c)
                    return nil
                }
                if let outcome { c.resume(with: outcome) }
            }
        } onCancel: {
            lock.withLock { sleepers.removeValue(forKey: id)?.continuation }?.resume(throwing: CancellationError())
        }
    }

    /// Moves time forward and wakes every sleeper whose deadline has come.
    public func advance(by duration: Micros) { advance(to: now() + duration) }

    public func advance(to instant: Micros) {
        let due = lock.withLock { () -> [Int: (deadline: Micros, continuation: CheckedContinuation<Void, any Error>)] in
            current = max(current, instant)
            let due = sleepers.filter { $0.value.deadline <= current }
            for id in due.keys { sleepers.removeValue(forKey: id) }
            return due
        }
        for (_, s) in due.sorted(by: { $0.value.deadline < $1.value.deadline }) { s.continuation.resume() }
    }

    /// Waits (in real time, up to `timeout` seconds) until at least `count` tasks are parked: the loop
    /// under test has finished its step and waits for the next deadline. The bound is generous: in the
    /// full suite the ClickHouse conformance checks call the synchronous store readers from async test
    /// code, and while their HTTP round trips hold both of a 2-core machine's cooperative threads, other
    /// suites' tasks wait (seen at over 60 s in CI).
    public func waitForSleepers(_ count: Int = 1, timeout: Double = 300) async throws {
        let end = Date().addingTimeInterval(timeout)
        while sleeping < count {
            // Counted once more after the deadline: a wait that was itself not scheduled past it (see above)
            // fails only if the loops are still not parked.
            guard Date() < end else {
                if sleeping >= count { return }
                throw ManualClockTimeout(expected: count, sleeping: sleeping)
            }
            try await Task.sleep(nanoseconds: 1_000_000)
        }
    }
}

public struct ManualClockTimeout: Error, CustomStringConvertible {
    public let expected: Int
    public let sleeping: Int
    public var description: String { "expected \(expected) sleeping tasks on the manual clock, found \(sleeping)" }
}
