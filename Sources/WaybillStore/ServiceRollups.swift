import Foundation
import WaybillModel

/// A mergeable histogram of span durations in microseconds, for the service view's percentiles: bucket
/// `i` holds the values in `(gamma^(i-1), gamma^i]`, so a percentile read from it (the bucket's
/// representative, capped at the maximum) is within 0.5% of the exact value (after DDSketch). Zero has its
/// own bucket; `count`, `sum` and `max` are exact. Spans are never retracted, so unlike the KPI sketch
/// this one only adds and merges.
public struct SpanDurationHistogram: Sendable, Equatable {
    public static let relativeAccuracy = 0.005
    static let gamma = (1 + relativeAccuracy) / (1 - relativeAccuracy)
    static let logGamma = log(gamma)
    static let formatVersion: UInt8 = 1
    /// Indices of values 1 ... Int64.max; decoding refuses others, so bad bytes cannot allocate.
    static let indexRange = 0...index(of: Int64.max)

    /// Non-empty buckets, by index (sorted arrays: decoding, merging and encoding a rollup row are
    /// linear passes without hashing).
    public private(set) var indices: [Int] = []
    public private(set) var counts: [Int64] = []
    public private(set) var zeroCount: Int64 = 0
    public private(set) var count: Int64 = 0
    public private(set) var sum: Int64 = 0
    public private(set) var max: Int64?

    public init() {}

    static func index(of v: Int64) -> Int { Int((log(Double(v)) / logGamma).rounded(.up)) }
    static func representative(_ i: Int) -> Double { 2 * pow(gamma, Double(i)) / (gamma + 1) }

    public mutating func add(_ value: Int64) {
        let v = Swift.max(0, value)
        if v == 0 {
            zeroCount += 1
        } else {
            let i = Self.index(of: v)
            // Mostly the last bucket or near it; else a binary search.
            if let last = indices.last, last < i {
                indices.append(i)
                counts.append(1)
            } else if indices.isEmpty {
                indices.append(i)
                counts.append(1)
            } else {
                var lo = 0, hi = indices.count
                while lo < hi {
                    let mid = (lo + hi) / 2
                    if indices[mid] < i { lo = mid + 1 } else { hi = mid }
                }
                if lo < indices.count, indices[lo] == i {
                    counts[lo] += 1
                } else {
                    indices.insert(i, at: lo)
                    counts.insert(1, at: lo)
                }
            }
        }
        count += 1
        sum &+= v
        if v > (max ?? -1) { max = v }
    }

    public mutating func merge(_ other: SpanDurationHistogram) {
        if other.count == 0 { return }
        if indices.isEmpty {
            indices = other.indices
            counts = other.counts
        } else if !other.indices.isEmpty {
            var ni: [Int] = [], nc: [Int64] = []
            ni.reserveCapacity(indices.count + other.indices.count)
            nc.reserveCapacity(indices.count + other.indices.count)
            var a = 0, b = 0
            while a < indices.count || b < other.indices.count {
                if b == other.indices.count || (a < indices.count && indices[a] < other.indices[b]) {
                    ni.append(indices[a]); nc.append(counts[a]); a += 1
                } else if a == indices.count || other.indices[b] < indices[a] {
                    ni.append(other.indices[b]); nc.append(other.counts[b]); b += 1
                } else {
                    ni.append(indices[a]); nc.append(counts[a] + other.counts[b]); a += 1; b += 1
                }
            }
            indices = ni
            counts = nc
        }
        zeroCount += other.zeroCount
        count += other.count
        sum &+= other.sum
        if let m = other.max, m > (max ?? -1) { max = m }
    }

    /// The `rank`-th smallest value (1-based), within `relativeAccuracy`; nil when empty.
    public func value(atRank rank: Int64) -> Double? {
        guard count > 0 else { return nil }
        var seen = zeroCount
        if seen >= rank { return 0 }
        for (k, i) in indices.enumerated() {
            seen += counts[k]
            if seen >= rank { return Swift.min(Self.representative(i), Double(max ?? 0)) }
        }
        return max.map(Double.init)
    }

    public static func == (a: SpanDurationHistogram, b: SpanDurationHistogram) -> Bool {
        a.indices == b.indices && a.counts == b.counts && a.zeroCount == b.zeroCount && a.count == b.count && a.sum == b.sum && a.max == b.max
    }

    /// A version byte, then varints: zero count, sum, max + 1 (0: none), the number of buckets, and each
    /// bucket as an index delta and a count.
    public var serialized: [UInt8] {
        var out: [UInt8] = [Self.formatVersion]
        out.reserveCapacity(16 + 4 * indices.count)
        func put(_ v: UInt64) {
            var u = v
            while u >= 0x80 { out.append(UInt8(truncatingIfNeeded: u) | 0x80); u >>= 7 }
            out.append(UInt8(u))
        }
        put(UInt64(zeroCount))
        put(UInt64(bitPattern: sum))
        put(max.map { UInt64($0) + 1 } ?? 0)
        put(UInt64(indices.count))
        var previous = 0
        for (k, i) in indices.enumerated() {
            put(UInt64(i - previous))
            put(UInt64(counts[k]))
            previous = i
        }
        return out
    }

    public struct DecodingError: Error, CustomStringConvertible {
        public let description: String
    }

    public init(serialized bytes: [UInt8]) throws {
        var pos = 0
        func get() throws -> UInt64 {
            var v: UInt64 = 0, shift: UInt64 = 0
            while true {
                guard pos < bytes.count, shift < 64 else { throw DecodingError(description: "truncated duration histogram") }
                let b = bytes[pos]
                pos += 1
                v |= UInt64(b & 0x7f) << shift
                if b < 0x80 { return v }
                shift += 7
            }
        }
        guard bytes.first == Self.formatVersion else { throw DecodingError(description: "unknown duration histogram version") }
        pos = 1
        zeroCount = Int64(truncatingIfNeeded: try get())
        sum = Int64(bitPattern: try get())
        let m = try get()
        max = m == 0 ? nil : Int64(truncatingIfNeeded: m - 1)
        let n = try get()
        guard n <= UInt64(Self.indexRange.count), zeroCount >= 0 else { throw DecodingError(description: "bad duration histogram") }
        count = zeroCount
        indices.reserveCapacity(Int(n))
        counts.reserveCapacity(Int(n))
        var i = 0
        for k in 0..<Int(n) {
            let delta = try get()
            guard delta <= UInt64(Self.indexRange.upperBound), k == 0 || delta > 0 else { throw DecodingError(description: "bad bucket index") }
            i += Int(delta)
            guard Self.indexRange.contains(i) else { throw DecodingError(description: "bucket index out of range") }
            let c = Int64(truncatingIfNeeded: try get())
            guard c > 0 else { throw DecodingError(description: "bad bucket count") }
            indices.append(i)
            counts.append(c)
            count += c
        }
        guard pos == bytes.count else { throw DecodingError(description: "trailing bytes after a duration histogram") }
    }
}

/// What the service view shows of a time window: per service, its spans, errors and durations; per
/// pair of services, the calls from one to the other. A call is a span whose parent span is in another
/// service; it belongs to the window its (callee) span starts in, wherever its parent starts.
public struct ServiceAggregates: Sendable, Equatable {
    public struct Service: Sendable, Equatable {
        public var spans: Int = 0
        public var errors: Int = 0
        public var durations = SpanDurationHistogram()
        public init() {}
    }

    public struct Pair: Hashable, Sendable, Comparable {
        public var from: String
        public var to: String
        public init(from: String, to: String) {
            self.from = from
            self.to = to
        }
        public static func < (a: Pair, b: Pair) -> Bool { (a.from, a.to) < (b.from, b.to) }
    }

    public struct Calls: Sendable, Equatable {
        public var calls: Int = 0
        public var errors: Int = 0
        public init() {}
    }

    public var services: [String: Service] = [:]
    public var calls: [Pair: Calls] = [:]
    /// True when a reader stopped at a span limit (the window holds more spans than it read).
    public var truncated = false

    public init() {}

    /// Counts one span of the window; `caller` is the service of its parent span when that is another service.
    public mutating func add(_ s: Span, caller: String?) {
        services[s.service, default: Service()].spans += 1
        if s.status == .error { services[s.service, default: Service()].errors += 1 }
        services[s.service, default: Service()].durations.add(Self.duration(s))
        if let caller, caller != s.service { addCall(from: caller, to: s.service, error: s.status == .error) }
    }

    /// A span's duration in microseconds: 0 when it ends before it starts, `Int64.max` past what fits.
    public static func duration(_ s: Span) -> Int64 {
        let (d, overflow) = s.end.subtractingReportingOverflow(s.start)
        if overflow { return s.end > s.start ? Int64.max : 0 }
        return Swift.max(0, d)
    }

    public mutating func addCall(from: String, to: String, error: Bool) {
        let k = Pair(from: from, to: to)
        calls[k, default: Calls()].calls += 1
        if error { calls[k, default: Calls()].errors += 1 }
    }

    public mutating func merge(_ o: ServiceAggregates) {
        for (k, v) in o.services {
            var s = services[k] ?? Service()
            s.spans += v.spans
            s.errors += v.errors
            s.durations.merge(v.durations)
            services[k] = s
        }
        for (k, v) in o.calls {
            var c = calls[k] ?? Calls()
            c.calls += v.calls
            c.errors += v.errors
            calls[k] = c
        }
        truncated = truncated || o.truncated
    }

    /// The aggregates of these spans alone: a call is counted when its parent span is among them.
    public init<S: Sequence>(spans: S) where S.Element == Span {
        var byID: [String: String] = [:]
        let all = Array(spans)
        for s in all { byID[s.traceID + "/" + s.spanID] = s.service }
        for s in all { add(s, caller: s.parentSpanID.flatMap { byID[s.traceID + "/" + $0] }) }
    }
}

/// Answers the service view from aggregates kept as spans are written, so its cost does not grow with
/// the spans in the window.
///
/// Contract: `serviceAggregates(in:)` equals `ServiceAggregates(spans:)` over the spans that start in
/// `range` in spans, errors, calls and the durations' count, sum and maximum, and its durations'
/// percentiles are within `SpanDurationHistogram.relativeAccuracy` of theirs; except that a call is also
/// counted when its parent span starts outside `range` (and whichever of the two spans arrived first).
/// It is never truncated. After `appendSpans` returns, its spans count.
public protocol ServiceRollupReader: Sendable {
    func serviceAggregates(in range: Range<Micros>) throws -> ServiceAggregates
}
