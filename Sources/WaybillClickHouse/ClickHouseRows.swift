import Foundation
import WaybillModel
import WaybillStore

/// Rows for `INSERT ... FORMAT JSONEachRow`, one JSON object a line.
struct RowWriter {
    var w = JSONWriter(capacity: 4096)
    private var first = true
    var count = 0

    mutating func begin() {
        w.raw("{")
        first = true
    }

    mutating func end() {
        w.raw("}\n")
        count += 1
    }

    private mutating func key(_ k: String) {
        if !first { w.raw(",") }
        first = false
        w.string(k)
        w.raw(":")
    }

    mutating func str(_ k: String, _ v: String) {
        key(k)
        w.string(v)
    }

    mutating func optStr(_ k: String, _ v: String?) {
        key(k)
        if let v { w.string(v) } else { w.raw("null") }
    }

    mutating func int(_ k: String, _ v: Int64) {
        key(k)
        w.raw(String(v))
    }

    mutating func uint(_ k: String, _ v: UInt64) {
        key(k)
        w.raw(String(v))
    }

    mutating func optInt(_ k: String, _ v: Int64?) {
        key(k)
        if let v { w.raw(String(v)) } else { w.raw("null") }
    }

    mutating func strings(_ k: String, _ v: [String]) {
        key(k)
        w.raw("[")
        for (i, s) in v.enumerated() {
            if i > 0 { w.raw(",") }
            w.string(s)
        }
        w.raw("]")
    }

    var bytes: [UInt8] { w.bytes }
    var isEmpty: Bool { count == 0 }

    /// Appends the rows of `other`.
    mutating func append(_ other: RowWriter) {
        w.raw(other.bytes)
        count += other.count
    }
}

/// Versions of rows that replace earlier ones: increasing within a process (wall clock in nanoseconds,
/// bumped past the last one given), so a later write of this process always wins.
enum Versions {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var last: UInt64 = 0

    static func next() -> UInt64 {
        lock.withLock {
            let now = UInt64(max(0, currentMicros())) &* 1000
            last = max(now, last &+ 1)
            return last
        }
    }
}

/// Serializes this process's writes (FIFO), can hold them (tests), and bounds what waits.
final class WriteGate: @unchecked Sendable {
    private let lock = NSLock()
    private var busy = false
    private var held = false
    private var waiters: [CheckedContinuation<Void, Never>] = []
    private var queued = 0
    private var closed = false
    let maxQueuedEvents: Int

    init(maxQueuedEvents: Int) { self.maxQueuedEvents = maxQueuedEvents }

    var queuedEvents: Int { lock.withLock { queued } }

    func setHeld(_ h: Bool) {
        let wake: CheckedContinuation<Void, Never>? = lock.withLock {
            held = h
            return takeNextLocked()
        }
        wake?.resume()
    }

    func close() { lock.withLock { closed = true } }

    /// Must hold `lock`. The next waiter, when the gate is free and not held (it becomes busy for it).
    private func takeNextLocked() -> CheckedContinuation<Void, Never>? {
        guard !busy, !held, !waiters.isEmpty else { return nil }
        busy = true
        return waiters.removeFirst()
    }

    /// Runs `body` alone among this gate's writes, in arrival order. `events` counts towards the bound.
    func run<T>(events: Int = 0, _ body: () async throws -> T) async throws -> T {
        try lock.withLock {
            if closed { throw StoreError.unavailable("the store is closed") }
            if events > 0, queued > 0, queued + events > maxQueuedEvents { throw StoreError.overloaded(retryAfterSeconds: 1) }
            queued += events
        }
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            // FIFO: whoever waited first goes (possibly `c` itself, resumed right here).
            let next: CheckedContinuation<Void, Never>? = lock.withLock {
                waiters.append(c)
                return takeNextLocked()
            }
            next?.resume()
        }
        defer {
            let wake: CheckedContinuation<Void, Never>? = lock.withLock {
                queued -= events
                busy = false
                return takeNextLocked()
            }
            wake?.resume()
        }
        return try await body()
    }
}

