import Foundation
import WaybillModel

/// A mergeable, retractable quantile sketch of non-negative integer values (Waybill feeds it
/// durations in microseconds), after DDSketch (Masson et al., VLDB 2019).
///
/// Contracts:
/// - Quantiles: `quantile(percent:)` follows kpis.md (the smallest value `v` such that at least
///   `percent`% of the values are `<= v`) and is within `relativeAccuracy` (0.5%, so inside the
///   spec's 1%) of the exact answer. Zero is kept exactly in its own bucket; values are integers,
///   so nothing lies between 0 and the first bucket.
/// - `count` and `sum` are exact, and `add`, `remove`, `merge` and `subtract` commute: the sketch is
///   an element of an abelian group (bucket counts are signed), so retracting a late order's
///   old contribution gives the same bytes as never having added it, in any order.
/// - The maximum is kept exactly while it can be known, and never guessed: `maxIsExact` says which.
///   A sketch holds an upper bound of its values; it is their maximum while `maxIsExact`. Adding a
///   value at or above the bound makes it the exact maximum; retracting a value at or above the exact
///   maximum (it may have been the only one) leaves only the bound (lowered to the top of the highest
///   non-empty bucket), `maxIsExact == false`, until a value at or above the bound is added, the
///   sketch holds nothing but zeros or nothing, or `learnMax(fromParts:)` learns it. The
///   bound and the flag are a function of the sketch before an operation and the operation's values,
///   never of the order of values within one `apply(retracting:adding:)`. `max` reads the exact
///   maximum, or without one the representative of the highest non-empty bucket capped at the bound
///   (within `relativeAccuracy`, like the quantiles). KPI rollups do not report such a max: a query
///   answers a bucket whose max is not exact from the orders' facts (`KPIService.document`).
///   Retract only values held (or added in the same `apply`): the flag relies on it.
/// - Negative values are clamped to 0 (kpis.md clamps negative delays).
public struct QuantileSketch: Sendable {
    /// Bucket `i` holds the values in `(gamma^(i-1), gamma^i]`.
    public static let relativeAccuracy = 0.005
    static let gamma = (1 + relativeAccuracy) / (1 - relativeAccuracy)
    static let logGamma = log(gamma)
    /// 2: the bucket count carries the `maxIsExact` flag (1 approximated the max after a retraction).
    static let formatVersion: UInt8 = 2
    /// Buckets of values 1 ... Int64.max: decoding refuses indices outside, so hostile bytes cannot allocate.
    static let indexRange = 0...index(of: Int64.max)

    /// Counts of buckets `offset ..< offset + counts.count` (dense: cheap to add and merge), once the
    /// sketch holds more than `sparseLimit` buckets.
    private var counts: [Int64] = []
    private var offset = 0
    /// Until then, the buckets as (index, count) pairs by index: a minute's rollup holds a few values
    /// spread over hundreds of buckets, where a dense array would be mostly zeros to allocate and scan.
    private var sparse: [(index: Int, count: Int64)] = []
    static let sparseLimit = 24
    public private(set) var zeroCount: Int64 = 0
    public private(set) var count: Int64 = 0
    public private(set) var sum: Int64 = 0
    /// An upper bound of the values held, nil when none is held; their maximum while `maxIsExact`.
    public private(set) var maxBound: Int64?
    /// Whether `maxBound` is the maximum of the values held (always, until a retraction removes a
    /// value at or above it). True when empty.
    public private(set) var maxIsExact = true

    /// The maximum: exact while `maxIsExact`, else the representative of the highest non-empty
    /// bucket, capped at `maxBound` (within `relativeAccuracy`). Nil when empty.
    public var max: Int64? { maxIsExact ? maxBound : approximateMax }

    public init() {}

    public init<S: Sequence>(_ values: S) where S.Element == Int64 {
        for v in values { add(v) }
    }

    public var isEmpty: Bool {
        count == 0 && sum == 0 && zeroCount == 0 && counts.allSatisfy { $0 == 0 } && sparse.allSatisfy { $0.count == 0 }
    }

    /// Calls `body` with each bucket's index and count, by index (buckets emptied by retraction included).
    @inline(__always) private func forEachBucket(_ body: (Int, Int64) throws -> Void) rethrows {
        if counts.isEmpty {
            for p in sparse { try body(p.index, p.count) }
        } else {
            for (k, c) in counts.enumerated() { try body(offset + k, c) }
        }
    }

    /// Moves the sparse pairs into the dense array.
    private mutating func densify() {
        guard counts.isEmpty, let lo = sparse.first?.index, let hi = sparse.last?.index else { return }
        offset = lo
        counts = [Int64](repeating: 0, count: hi - lo + 1)
        for p in sparse { counts[p.index - lo] = p.count }
        sparse = []
    }

    static func index(of v: Int64) -> Int {
        Int((log(Double(v)) / logGamma).rounded(.up))
    }

    /// The value reported for every value of bucket `i`: at most `relativeAccuracy` away from each of them.
    static func representative(_ i: Int) -> Double {
        2 * pow(gamma, Double(i)) / (gamma + 1)
    }

    private mutating func bump(_ i: Int, by n: Int64) {
        if counts.isEmpty {
            var k = sparse.count
            while k > 0, sparse[k - 1].index > i { k -= 1 }
            if k > 0, sparse[k - 1].index == i {
                sparse[k - 1].count &+= n
                return
            }
            sparse.insert((i, n), at: k)
            if sparse.count > Self.sparseLimit { densify() }
            return
        }
        if i < offset {
            counts.insert(contentsOf: repeatElement(0, count: offset - i), at: 0)
            offset = i
        } else if i >= offset + counts.count {
            counts.append(contentsOf: repeatElement(0, count: i - offset - counts.count + 1))
        }
        counts[i - offset] &+= n
    }

    public mutating func add(_ value: Int64, times n: Int64 = 1) {
        let v = Swift.max(0, value)
        if v == 0 { zeroCount &+= n } else { bump(Self.index(of: v), by: n) }
        count &+= n
        sum &+= v &* n
        if v >= (maxBound ?? v) {
            maxBound = v
            maxIsExact = true
        }
    }

    /// Retracts a value added before (see the type's contract on the maximum).
    public mutating func remove(_ value: Int64, times n: Int64 = 1) {
        let v = Swift.max(0, value)
        let before = (maxBound, maxIsExact)
        if v == 0 { zeroCount &-= n } else { bump(Self.index(of: v), by: -n) }
        count &-= n
        sum &-= v &* n
        settleMax(before, retracted: v, added: (nil, true))
    }

    public mutating func merge(_ other: QuantileSketch) {
        mergeCounts(other)
        (maxBound, maxIsExact) = Self.union((maxBound, maxIsExact), (other.maxBound, other.maxIsExact))
    }

    /// Retracts everything `retracted` holds and adds everything `added` holds, in one step: what an
    /// order's changes do to a rollup row. The maximum is settled once, from the sketch before and the
    /// two operands, so it does not depend on the order of the values inside them (`remove` then `add`
    /// value by value can end with the same values but an unknown maximum where this knows it).
    public mutating func apply(retracting retracted: QuantileSketch, adding added: QuantileSketch) {
        let before = (maxBound, maxIsExact)
        subtractCounts(retracted)
        mergeCounts(added)
        settleMax(before, retracted: retracted.maxBound, added: (added.maxBound, added.maxIsExact))
    }

    /// The bound and flag of two sketches taken together.
    private static func union(_ a: (bound: Int64?, exact: Bool), _ b: (bound: Int64?, exact: Bool)) -> (Int64?, Bool) {
        guard let p = a.bound else { return b }
        guard let q = b.bound else { return a }
        // A known maximum at or above the other's bound is the maximum of both.
        return (Swift.max(p, q), (a.exact && b.exact) || (a.exact && p >= q) || (b.exact && q >= p))
    }

    /// The bound and flag once values up to `retracted` (nil: none) were retracted from a sketch whose
    /// bound and flag were `before`, and values with bound and flag `added` were added. Correct when the
    /// retracted values were held before or added here.
    private mutating func settleMax(_ before: (bound: Int64?, exact: Bool), retracted r: Int64?, added: (bound: Int64?, exact: Bool)) {
        guard let r else {
            (maxBound, maxIsExact) = Self.union(before, added)
            return
        }
        if before.exact, let m = before.bound, r < m {
            // Every retracted value lies below the maximum held before: that maximum is still held.
            (maxBound, maxIsExact) = Self.union(before, added)
        } else if added.exact, let a = added.bound, a > r, a >= (before.bound ?? a) {
            // The largest value added lies above every retracted value and every value held before.
            (maxBound, maxIsExact) = (a, true)
        } else {
            maxBound = Swift.max(r, before.bound ?? r, added.bound ?? r)
            maxIsExact = false
            tightenBound()
        }
    }

    /// Without an exact maximum, the bound comes down to the top of the highest non-empty bucket (the
    /// maximum lies in it): so that a later value added at or above it, or `learnMax(fromParts:)`, can
    /// know the maximum again. A sketch that holds only zeros has the maximum 0; one that holds nothing
    /// has none. Left alone while a bucket count is negative (values retracted before they were added).
    private mutating func tightenBound() {
        var top: Int?, negative = false
        forEachBucket { i, c in
            if c > 0 { top = i } else if c < 0 { negative = true }
        }
        guard !negative, zeroCount >= 0, let bound = maxBound else { return }
        if let top {
            maxBound = Swift.min(bound, Self.upperEdge(top))
        } else if zeroCount > 0, count == zeroCount {
            (maxBound, maxIsExact) = (0, true)
        } else if zeroCount == 0, count == 0, sum == 0 {
            (maxBound, maxIsExact) = (nil, true)
        }
    }

    /// An integer at or above every value `index(of:)` puts in bucket `i` (`gamma^i`, with a margin far
    /// above the rounding of `log` and `pow`).
    static func upperEdge(_ i: Int) -> Int64 {
        let edge = (pow(gamma, Double(i)) * (1 + 1e-12)).rounded(.up)
        return edge >= 9.2e18 ? Int64.max : Int64(edge)
    }

    /// Learns the maximum from sketches whose values together are exactly this sketch's (a coarse
    /// rollup row from the finer rows inside it): known when the largest exact maximum among them is at
    /// or above every other part's bound. Returns whether the maximum is now exact.
    @discardableResult
    public mutating func learnMax(fromParts parts: some Sequence<QuantileSketch>) -> Bool {
        guard !maxIsExact, let bound = maxBound else { return maxIsExact }
        var known: Int64?, others: Int64?
        for p in parts {
            guard let b = p.maxBound else { continue }
            if p.maxIsExact { known = Swift.max(known ?? b, b) } else { others = Swift.max(others ?? b, b) }
        }
        if let k = known, k >= (others ?? k), k <= bound {
            (maxBound, maxIsExact) = (k, true)
        }
        return maxIsExact
    }

    private mutating func mergeCounts(_ other: QuantileSketch) {
        if other.zeroCount != 0 { zeroCount &+= other.zeroCount }
        if other.counts.isEmpty {
            for p in other.sparse { bump(p.index, by: p.count) }
        } else {
            if counts.isEmpty {
                let mine = sparse
                sparse = []
                counts = other.counts
                offset = other.offset
                for p in mine { bump(p.index, by: p.count) }
            } else {
                mergeDense(other)
            }
        }
        count &+= other.count
        sum &+= other.sum
    }

    /// Adds a dense sketch's buckets to this dense one.
    private mutating func mergeDense(_ other: QuantileSketch) {
        // Widen once to cover the other's buckets, then add them in one pass: merging thousands of
        // rollup rows is the hot path of a KPI query.
        if !other.counts.isEmpty {
            if counts.isEmpty {
                counts = other.counts
                offset = other.offset
            } else {
                if other.offset < offset {
                    counts.insert(contentsOf: repeatElement(0, count: offset - other.offset), at: 0)
                    offset = other.offset
                }
                let end = other.offset + other.counts.count
                if end > offset + counts.count { counts.append(contentsOf: repeatElement(0, count: end - offset - counts.count)) }
                let shift = other.offset - offset
                counts.withUnsafeMutableBufferPointer { dst in
                    other.counts.withUnsafeBufferPointer { src in
                        for k in 0..<src.count { dst[shift + k] &+= src[k] }
                    }
                }
            }
        }
    }

    /// Retracts everything `other` holds, as if each of its values were `remove`d.
    public mutating func subtract(_ other: QuantileSketch) {
        let before = (maxBound, maxIsExact)
        subtractCounts(other)
        settleMax(before, retracted: other.maxBound, added: (nil, true))
    }

    private mutating func subtractCounts(_ other: QuantileSketch) {
        if other.zeroCount != 0 { zeroCount &-= other.zeroCount }
        other.forEachBucket { i, c in if c != 0 { bump(i, by: -c) } }
        count &-= other.count
        sum &-= other.sum
    }

    /// Without an exact maximum: the representative of the highest non-empty bucket, capped at the bound.
    private var approximateMax: Int64? {
        guard let cap = maxBound else { return nil }
        var last: Int?
        forEachBucket { i, c in if c > 0 { last = i } }
        if let last { return Swift.min(cap, Swift.max(1, Int64(Self.representative(last).rounded()))) }
        return zeroCount > 0 ? 0 : nil
    }

    /// The smallest `v` with at least `percent`% of the values `<= v`, within `relativeAccuracy`; nil when empty.
    public func quantile(percent: Double) -> Double? {
        guard count > 0 else { return nil }
        let rank = QuantileRank.rank(percent: percent, count: Int(count))
        var seen = zeroCount
        if seen >= rank { return 0 }
        var found: Int?
        forEachBucket { i, c in
            guard found == nil, c > 0 else { return }
            seen += c
            if seen >= rank { found = i }
        }
        if let i = found {
            let r = Self.representative(i)
            if let m = max { return Swift.min(r, Double(m)) }
            return r
        }
        return max.map(Double.init)
    }

    /// How many of the values held are at most `bound`, each bucket counted by its representative (so
    /// within `relativeAccuracy` of the bound); at most `count`. The cumulative buckets of a Prometheus
    /// histogram (`/metrics`).
    public func count(atMost bound: Double) -> Int64 {
        guard bound >= 0 else { return 0 }
        var n = zeroCount
        forEachBucket { i, c in if Self.representative(i) <= bound { n &+= c } }
        return Swift.min(Swift.max(n, 0), count)
    }

    public var mean: Double? { count > 0 ? Double(sum) / Double(count) : nil }

    /// Compact bytes: a version byte, then varints: sum, max bound, zero count, twice the number of
    /// non-empty buckets plus 1 when the max is not exact, and each non-empty bucket as an index delta
    /// and a count. `count` is implied by the buckets.
    public var serialized: [UInt8] {
        var out = ByteSink()
        encode(into: &out)
        return out.bytes
    }

    func encode(into out: inout ByteSink) {
        out.byte(Self.formatVersion)
        out.signed(sum)
        out.unsigned(maxBound.map { UInt64($0) + 1 } ?? 0)
        out.signed(zeroCount)
        // One pass: the pairs go to a scratch buffer (two varints of at most 10 bytes each), behind their count.
        let buckets = counts.isEmpty ? sparse.count : counts.count
        var nonEmpty = 0
        let pairs = [UInt8](unsafeUninitializedCapacity: 20 * buckets) { buf, written in
            var n = 0
            @inline(__always) func put(_ v: Int64) {
                var u = UInt64(bitPattern: (v << 1) ^ (v >> 63))
                while u >= 0x80 {
                    buf[n] = UInt8(truncatingIfNeeded: u) | 0x80
                    u >>= 7
                    n += 1
                }
                buf[n] = UInt8(u)
                n += 1
            }
            var previous = 0
            if counts.isEmpty {
                for p in sparse where p.count != 0 {
                    put(Int64(p.index - previous))
                    put(p.count)
                    previous = p.index
                    nonEmpty += 1
                }
            } else {
                counts.withUnsafeBufferPointer { c in
                    for k in 0..<c.count where c[k] != 0 {
                        put(Int64(offset + k - previous))
                        put(c[k])
                        previous = offset + k
                        nonEmpty += 1
                    }
                }
            }
            written = n
        }
        // The flag rides in the bucket count's low bit: no byte more for it.
        out.unsigned(UInt64(nonEmpty) << 1 | (maxIsExact ? 0 : 1))
        out.bytes.append(contentsOf: pairs)
    }

    public init(serialized bytes: [UInt8]) throws(KPIDecodingError) {
        var src = ByteSource(bytes)
        try self.init(decoding: &src)
        guard src.atEnd else { throw KPIDecodingError("\(bytes.count - src.pos) trailing bytes after the sketch") }
    }

    init(decoding src: inout ByteSource) throws(KPIDecodingError) {
        let version = try src.byte()
        guard version == Self.formatVersion else { throw KPIDecodingError("unknown sketch format version \(version)") }
        sum = try src.signed()
        let m = try src.unsigned()
        maxBound = m == 0 ? nil : Int64(truncatingIfNeeded: m - 1)
        zeroCount = try src.signed()
        count = zeroCount
        let flagged = try src.unsigned()
        maxIsExact = flagged & 1 == 0
        guard maxIsExact || maxBound != nil else { throw KPIDecodingError("a sketch with no maximum marked inexact") }
        let n = Int(flagged >> 1)
        guard n <= Self.indexRange.count else { throw KPIDecodingError("\(n) buckets, more than exist") }
        var i = 0
        var first = true
        // Read the (index, count) pairs first and size the bucket array once: decoding rollup rows is
        // on the hot path of every KPI query.
        var pairs: [(Int, Int64)] = []
        pairs.reserveCapacity(n)
        for _ in 0..<n {
            let delta = try src.signed()
            guard delta >= 0, delta <= Int64(Self.indexRange.upperBound) else { throw KPIDecodingError("bucket index out of range") }
            i += Int(delta)
            guard Self.indexRange.contains(i) else { throw KPIDecodingError("bucket index \(i) out of range") }
            guard first || delta > 0 else { throw KPIDecodingError("bucket indices not increasing") }
            first = false
            let c = try src.signed()
            pairs.append((i, c))
            count &+= c
        }
        if pairs.count <= Self.sparseLimit {
            sparse = pairs.map { (index: $0.0, count: $0.1) }
        } else if let lo = pairs.first?.0, let hi = pairs.last?.0 {
            offset = lo
            counts = [Int64](repeating: 0, count: hi - lo + 1)
            for (k, c) in pairs { counts[k - lo] &+= c }
        }
    }
}

extension QuantileSketch: Equatable {
    /// Equal when they hold the same values (bucket storage layout is not part of the value).
    public static func == (a: QuantileSketch, b: QuantileSketch) -> Bool {
        a.serialized == b.serialized
    }
}

/// The rank behind kpis.md's quantile: the `k`-th smallest of `n` values with `k = ceil(percent/100 × n)`, at least 1.
public enum QuantileRank {
    public static func rank(percent: Double, count n: Int) -> Int64 {
        let x = percent / 100 * Double(n)
        let nearest = x.rounded()
        // 0.95 × 20 must be 19, not 20 because of binary floating point.
        let k = abs(x - nearest) <= 1e-9 * Swift.max(1, x) ? nearest : x.rounded(.up)
        return Int64(Swift.min(Double(n), Swift.max(1, k)))
    }

    /// The exact quantile of values sorted ascending.
    public static func exact(sorted: [Int64], percent: Double) -> Int64? {
        guard !sorted.isEmpty else { return nil }
        return sorted[Int(rank(percent: percent, count: sorted.count)) - 1]
    }
}
