import Foundation
import WaybillModel
import WaybillStore

/// Rows for `INSERT ... FORMAT JSONEachRow`, one JSON object a line, or (`binary`) for `FORMAT
/// RowBinary`: each value in ClickHouse's binary encoding, in the order of the column list the insert
/// names (the keys of the first row; every row writes the same keys in the same order). ClickHouse
/// parses RowBinary several times faster than JSON, and writing it needs no escaping. A binary writer
/// must write each column with the method of its type in the table (`int` Int64, `uint` UInt64,
/// `uint32`, `optInt8` Nullable(Int8), `optInt` Nullable(Int64), `str`/`bytes` String, `optStr`
/// Nullable(String), `strings` Array(String)).
struct RowWriter {
    var w = JSONWriter(capacity: 4096)
    private var first = true
    var count = 0
    /// RowBinary rather than JSONEachRow.
    let binary: Bool
    /// The column names in order (binary: taken from the first row).
    private(set) var names: [String] = []
    private var column = 0

    init(binary: Bool = false) { self.binary = binary }

    mutating func begin() {
        if binary {
            column = 0
        } else {
            w.raw("{")
            first = true
        }
    }

    mutating func end() {
        if binary {
            precondition(column == names.count, "a RowBinary row wrote \(column) columns, the first \(names.count)")
        } else {
            w.raw("}\n")
        }
        count += 1
    }

    private mutating func key(_ k: String) {
        if binary {
            if count == 0 { names.append(k) } else { assert(column < names.count && names[column] == k, "RowBinary column \(k) out of order") }
            column += 1
            return
        }
        if !first { w.raw(",") }
        first = false
        w.string(k)
        w.raw(":")
    }

    // MARK: RowBinary encoding

    private mutating func varint(_ n: Int) {
        var v = UInt64(n)
        while v >= 0x80 {
            w.bytes.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        w.bytes.append(UInt8(v))
    }

    private mutating func fixed<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { w.bytes.append(contentsOf: $0) }
    }

    private mutating func binaryString(_ s: String) {
        var s = s
        s.withUTF8 { u in
            varint(u.count)
            w.bytes.append(contentsOf: u)
        }
    }

    // MARK: Values

    mutating func str(_ k: String, _ v: String) {
        key(k)
        if binary { binaryString(v) } else { w.string(v) }
    }

    /// A String column from UTF-8 bytes (invalid sequences are stored as U+FFFD, as `str` would).
    mutating func bytes(_ k: String, _ v: [UInt8]) {
        guard binary else { return str(k, String(decoding: v, as: UTF8.self)) }
        key(k)
        if v.allSatisfy({ $0 < 0x80 }) {
            varint(v.count)
            w.bytes.append(contentsOf: v)
        } else {
            binaryString(String(decoding: v, as: UTF8.self))
        }
    }

    /// A String column of arbitrary bytes, as they are (RowBinary rows only: JSON would not carry them).
    mutating func blob(_ k: String, _ v: [UInt8]) {
        precondition(binary, "blob columns are written in RowBinary")
        key(k)
        varint(v.count)
        w.bytes.append(contentsOf: v)
    }

    /// A Nullable(String) column.
    mutating func optStr(_ k: String, _ v: String?) {
        guard let v else { return null(k) }
        key(k)
        if binary {
            w.bytes.append(0)  // RowBinary's "not null" flag
            binaryString(v)
        } else {
            w.string(v)
        }
    }

    mutating func int(_ k: String, _ v: Int64) { integer(k, v) }
    mutating func uint(_ k: String, _ v: UInt64) { integer(k, v) }
    mutating func uint32(_ k: String, _ v: UInt32) { integer(k, v) }

    /// A Nullable(Int64) column.
    mutating func optInt(_ k: String, _ v: Int64?) { optionalInteger(k, v) }

    /// A Nullable(Int8) column.
    mutating func optInt8(_ k: String, _ v: Int8?) { optionalInteger(k, v) }

    private mutating func integer<T: FixedWidthInteger>(_ k: String, _ v: T) {
        key(k)
        if binary { fixed(v) } else { w.raw(String(v)) }
    }

    /// A nullable integer: RowBinary's null flag then the value, or JSON's number or `null`.
    private mutating func optionalInteger<T: FixedWidthInteger>(_ k: String, _ v: T?) {
        guard let v else { return null(k) }
        key(k)
        if binary {
            w.bytes.append(0)  // RowBinary's "not null" flag
            fixed(v)
        } else {
            w.raw(String(v))
        }
    }

    /// A null in a Nullable column: RowBinary's flag 1, or JSON's `null`.
    private mutating func null(_ k: String) {
        key(k)
        if binary { w.bytes.append(1) } else { w.raw("null") }
    }

    mutating func strings(_ k: String, _ v: [String]) {
        key(k)
        if binary {
            varint(v.count)
            for s in v { binaryString(s) }
            return
        }
        w.raw("[")
        for (i, s) in v.enumerated() {
            if i > 0 { w.raw(",") }
            w.string(s)
        }
        w.raw("]")
    }

    var bytes: [UInt8] { w.bytes }
    var isEmpty: Bool { count == 0 }

    /// The `FORMAT` clause of an insert of these rows, with the column list a binary insert needs.
    var format: String { binary ? "(" + names.joined(separator: ", ") + ") FORMAT RowBinary" : "FORMAT JSONEachRow" }

    /// Appends the rows of `other` (written in the same format and, binary, the same columns).
    mutating func append(_ other: RowWriter) {
        guard !other.isEmpty else { return }
        precondition(binary == other.binary && (!binary || count == 0 || names == other.names), "rows of different formats")
        if binary && count == 0 { names = other.names }
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


/// Runs the second stage of this process's appends one at a time, in the order of their tickets. A
/// call takes its ticket while it still holds the first stage (`WriteGate`), so the second stages run
/// in the order the first stages did, and the next call's first stage runs beside this call's second.
///
/// It also orders each second stage's count read before the next call's events insert (`counted`,
/// `awaitCounted`): a call's count of an order's stored events then never includes a later call's
/// events of that order, which would send the order to the refold for nothing.
final class TicketPipeline: @unchecked Sendable {
    private let lock = NSLock()
    private var issued = 0
    private var served = 0
    private var waiting: [Int: CheckedContinuation<Void, Never>] = [:]
    /// Tickets below this have made their count read (or finished their second stage).
    private var countedBelow = 0
    private var countWaiters: [(upTo: Int, c: CheckedContinuation<Void, Never>)] = []

    /// The ticket has made its count read: the next call's events may be stored.
    func counted(_ ticket: Int) {
        let ready: [CheckedContinuation<Void, Never>] = lock.withLock {
            countedBelow = max(countedBelow, ticket + 1)
            let r = countWaiters.filter { $0.upTo <= countedBelow }.map(\.c)
            countWaiters.removeAll { $0.upTo <= countedBelow }
            return r
        }
        for c in ready { c.resume() }
    }

    /// Waits until every ticket taken so far has made its count read (the first stage calls it, holding
    /// the `WriteGate`, before it stores events).
    func awaitCounted() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now: Bool = lock.withLock {
                if countedBelow >= issued { return true }
                countWaiters.append((issued, c))
                return false
            }
            if now { c.resume() }
        }
    }

    /// The next place in line; every ticket taken must be run (`run`), or the line stops there.
    func ticket() -> Int {
        lock.withLock {
            defer { issued += 1 }
            return issued
        }
    }

    /// Runs `body` once every earlier ticket's has run (or thrown).
    func run<T>(_ ticket: Int, _ body: () async throws -> T) async throws -> T {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let now: Bool = lock.withLock {
                if served == ticket { return true }
                waiting[ticket] = c
                return false
            }
            if now { c.resume() }
        }
        defer {
            counted(ticket)
            let next: CheckedContinuation<Void, Never>? = lock.withLock {
                served = ticket + 1
                return waiting.removeValue(forKey: served)
            }
            next?.resume()
        }
        return try await body()
    }
}
