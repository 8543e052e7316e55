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
/// - `max` is exact while no value at or above the current maximum has been retracted. Retracting
///   the maximum (or emptying its bucket) cannot know whether another value equal to it remains, so
///   `max` then becomes the representative of the highest non-empty bucket, capped at the previous
///   maximum: within `relativeAccuracy` of the true maximum, like the quantiles. Merging keeps the
///   larger of the two. Rollups thus report an exact max unless a late event retracted the maximum.
/// - Negative values are clamped to 0 (kpis.md clamps negative delays).
public struct QuantileSketch: Sendable {
    /// Bucket `i` holds the values in `(gamma^(i-1), gamma^i]`.
    public static let relativeAccuracy = 0.005
    static let gamma = (1 + relativeAccuracy) / (1 - relativeAccuracy)
    static let logGamma = log(gamma)
    static let formatVersion: UInt8 = 1
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
    public private(set) var max: Int64?

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
        max = Swift.max(max ?? v, v)
    }

    /// Retracts a value added before (see the type's contract on `max`).
    public mutating func remove(_ value: Int64, times n: Int64 = 1) {
        let v = Swift.max(0, value)
        if v == 0 { zeroCount &-= n } else { bump(Self.index(of: v), by: -n) }
        count &-= n
        sum &-= v &* n
        if let m = max, v >= m || !holds(m) { recomputeMax(cap: m) }
    }

    public mutating func merge(_ other: QuantileSketch) {
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
        if let o = other.max { max = Swift.max(max ?? o, o) }
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
        if other.zeroCount != 0 { zeroCount &-= other.zeroCount }
        other.forEachBucket { i, c in if c != 0 { bump(i, by: -c) } }
        count &-= other.count
        sum &-= other.sum
        if let m = max, (other.max ?? -1) >= m || !holds(m) { recomputeMax(cap: m) }
    }

    /// Whether the bucket of `v` still holds a value (an approximate `max` must stay in a non-empty bucket).
    private func holds(_ v: Int64) -> Bool {
        if v == 0 { return zeroCount > 0 }
        let i = Self.index(of: v)
        if counts.isEmpty { return sparse.contains { $0.index == i && $0.count > 0 } }
        let k = i - offset
        return k >= 0 && k < counts.count && counts[k] > 0
    }

    private mutating func recomputeMax(cap: Int64) {
        var last: Int?
        forEachBucket { i, c in if c > 0 { last = i } }
        if let last {
            let r = Int64(Self.representative(last).rounded())
            max = Swift.min(cap, Swift.max(1, r))
        } else if zeroCount > 0 {
            max = 0
        } else {
            max = nil
        }
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

    public var mean: Double? { count > 0 ? Double(sum) / Double(count) : nil }

    /// Compact bytes: a version byte, then zig-zag varints (sum, max, zero count, and each non-empty
    /// bucket as an index delta and a count). `count` is implied by the buckets.
    public var serialized: [UInt8] {
        var out = ByteSink()
        encode(into: &out)
        return out.bytes
    }

    func encode(into out: inout ByteSink) {
        out.byte(Self.formatVersion)
        out.signed(sum)
        out.unsigned(max.map { UInt64($0) + 1 } ?? 0)
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
        out.unsigned(UInt64(nonEmpty))
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
        max = m == 0 ? nil : Int64(truncatingIfNeeded: m - 1)
        zeroCount = try src.signed()
        count = zeroCount
        let n = try src.count()
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
