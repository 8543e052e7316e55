import Foundation
import WaybillModel

/// A `RollupReader` that keeps what it has read, for a run of KPI reads over windows that overlap: an
/// alert replay evaluates a KPI rule at an instant and then every evaluation interval back, up to 62
/// windows of 30 days each a step of 15 s apart. Each read asks the underlying store only for the parts
/// of its ranges that no earlier read covered, widened by `reach` towards the past (where the next
/// windows of a replay lie); the answer is then filtered from memory by the `RollupReader` contract, so
/// it is the same rows and facts the store would give.
///
/// Holds a snapshot: writes to the store after a range was read are not seen. Use one per run of reads
/// that should see one state (a replay), then drop it.
public final class CoveringRollupReader: RollupReader, @unchecked Sendable {
    let base: any RollupReader
    let reach: Micros
    private let lock = NSLock()
    private var rows: [String: (covered: RangeCover, rows: TimeIndexed<RollupKey, [UInt8]>)] = [:]
    private var factsCovered = RangeCover()
    /// Each order under its `allocatedAt` and its `shippedAt`.
    private var facts = TimeIndexed<String, OrderFacts>()
    /// Reads passed to the store (for tests and measurements).
    public private(set) var storeReads = 0

    /// - Parameter reach: how far before an uncovered range to read with it.
    public init(_ base: any RollupReader, reach: Micros) {
        self.base = base
        self.reach = max(0, reach)
    }

    public func rollupRows(dimension: String, in ranges: [Range<Micros>]) throws -> [(key: RollupKey, bytes: [UInt8])] {
        try lock.withLock {
            // Taken out of the dictionary while it changes, so that it is changed in place, not copied.
            var entry = rows.removeValue(forKey: dimension) ?? (RangeCover(), TimeIndexed())
            let missing = entry.covered.missing(ranges, reach: reach)
            if !missing.isEmpty {
                storeReads += 1
                for (key, bytes) in try base.rollupRows(dimension: dimension, in: missing) { entry.rows.insert(key, bytes, at: [key.bucketStart]) }
                entry.covered.add(missing)
            }
            let found = entry.rows.values(in: ranges).map { (key: $0.key, bytes: $0.value) }
            rows[dimension] = entry
            return found
        }
    }

    public func kpiFacts(in ranges: [Range<Micros>]) throws -> [OrderFacts] {
        try lock.withLock {
            let missing = factsCovered.missing(ranges, reach: reach)
            if !missing.isEmpty {
                storeReads += 1
                for f in try base.kpiFacts(in: missing) { facts.insert(f.orderID, f, at: [f.allocatedAt, f.shippedAt].compactMap { $0 }) }
                factsCovered.add(missing)
            }
            return facts.values(in: ranges).map(\.value)
        }
    }
}

/// Values by key, each findable by the instants given with it: a range read is a binary search.
struct TimeIndexed<Key: Hashable, Value> {
    private var values: [Key: Value] = [:]
    private var index: [(time: Micros, key: Key)] = []
    private var sorted = true

    /// A key inserted again keeps its first instants (the store's answer for a key does not change).
    mutating func insert(_ key: Key, _ value: Value, at times: [Micros]) {
        if values.updateValue(value, forKey: key) != nil { return }
        for t in times { index.append((t, key)) }
        sorted = false
    }

    /// Each value with an instant in one of `ranges`, once.
    mutating func values(in ranges: [Range<Micros>]) -> [(key: Key, value: Value)] {
        if !sorted {
            index.sort { $0.time < $1.time }
            sorted = true
        }
        var seen = Set<Key>()
        var out: [(key: Key, value: Value)] = []
        for r in ranges where !r.isEmpty {
            var lo = 0, hi = index.count
            while lo < hi {
                let mid = (lo + hi) / 2
                if index[mid].time < r.lowerBound { lo = mid + 1 } else { hi = mid }
            }
            while lo < index.count, index[lo].time < r.upperBound {
                let k = index[lo].key
                if seen.insert(k).inserted, let v = values[k] { out.append((k, v)) }
                lo += 1
            }
        }
        return out
    }
}

/// A set of instants as sorted, disjoint, non-adjacent ranges.
struct RangeCover {
    private(set) var ranges: [Range<Micros>] = []

    /// The parts of `wanted` not covered, each widened by `reach` towards the past and then cut to what is
    /// still not covered: sorted, disjoint, empty when everything is covered.
    func missing(_ wanted: [Range<Micros>], reach: Micros) -> [Range<Micros>] {
        var gaps = RangeCover()
        for w in wanted where !w.isEmpty {
            for g in subtract(w) {
                let (lower, overflow) = g.lowerBound.subtractingReportingOverflow(reach)
                gaps.add([(overflow ? Micros.min : lower)..<g.upperBound])
            }
        }
        return gaps.ranges.flatMap { subtract($0) }
    }

    /// `r` minus the covered ranges, in order.
    func subtract(_ r: Range<Micros>) -> [Range<Micros>] {
        var out: [Range<Micros>] = []
        var lower = r.lowerBound
        for c in ranges where c.upperBound > lower {
            if c.lowerBound >= r.upperBound { break }
            if c.lowerBound > lower { out.append(lower..<c.lowerBound) }
            lower = max(lower, c.upperBound)
            if lower >= r.upperBound { break }
        }
        if lower < r.upperBound { out.append(lower..<r.upperBound) }
        return out
    }

    mutating func add(_ more: [Range<Micros>]) {
        let all = (ranges + more.filter { !$0.isEmpty }).sorted { $0.lowerBound < $1.lowerBound }
        var merged: [Range<Micros>] = []
        for r in all {
            if let last = merged.last, r.lowerBound <= last.upperBound {
                merged[merged.count - 1] = last.lowerBound..<max(last.upperBound, r.upperBound)
            } else {
                merged.append(r)
            }
        }
        ranges = merged
    }
}
