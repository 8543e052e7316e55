import Foundation
import Testing
@testable import WaybillKPI
import WaybillModel
import WaybillTestSupport

struct QuantileSketchTests {
    static let distributions: [(String, @Sendable (inout SplitMix64) -> Int64)] = [
        ("uniform up to 1000 s", { Int64($0.unit() * 1e9) }),
        ("exponential, mean 60 s", { Int64(-log(1 - $0.unit()) * 60e6) }),
        ("lognormal over 6 decades", { r in
            let u1 = Swift.max(r.unit(), 1e-12), u2 = r.unit()
            return Int64(exp(8 + 3 * sqrt(-2 * log(u1)) * cos(2 * .pi * u2)))
        }),
        ("pareto heavy tail", { Int64(1e6 / pow(1 - $0.unit(), 1 / 1.2)) }),
        ("mostly zeros and tiny values", { r in r.next() % 3 == 0 ? 0 : Int64(r.next() % 100) }),
        ("few distinct values", { r in [0, 1, 5_000_000, 5_000_001, 3_600_000_000][Int(r.next() % 5)] }),
    ]

    @Test(arguments: 0..<distributions.count)
    func quantilesAreWithinOnePercentOfExact(_ d: Int) {
        let (name, draw) = Self.distributions[d]
        var rng = SplitMix64(seed: UInt64(d + 1) * 7919)
        for n in [1, 2, 7, 100, 5_000] {
            let values = (0..<n).map { _ in draw(&rng) }
            let sketch = QuantileSketch(values)
            let sorted = values.sorted()
            var percents: [Double] = [0.1, 1, 25, 50, 90, 95, 99, 99.9, 100]
            for _ in 0..<20 { percents.append(rng.unit() * 100) }
            for p in percents {
                let exact = Double(QuantileRank.exact(sorted: sorted, percent: p)!)
                let estimate = sketch.quantile(percent: p)!
                #expect(relativeError(estimate, exact) <= 0.01, "\(name) n=\(n) p\(p): \(estimate) vs \(exact)")
            }
            #expect(sketch.count == Int64(n))
            #expect(sketch.sum == values.reduce(0, +))
            #expect(sketch.max == sorted.last)
        }
    }

    @Test func quantileRankFollowsTheSpecDefinition() {
        // pX is the smallest v with at least X% of values <= v.
        let values: [Int64] = (1...20).map { Int64($0) }
        #expect(QuantileRank.exact(sorted: values, percent: 95) == 19)
        #expect(QuantileRank.exact(sorted: values, percent: 50) == 10)
        #expect(QuantileRank.exact(sorted: values, percent: 51) == 11)
        #expect(QuantileRank.exact(sorted: values, percent: 100) == 20)
        #expect(QuantileRank.exact(sorted: [7], percent: 1) == 7)
        #expect(QuantileRank.exact(sorted: Array(1...100), percent: 99) == 99)
        #expect(QuantileRank.exact(sorted: [], percent: 50) == nil)
    }

    @Test func zeroesAndNegativeValuesAreKeptExactly() {
        var s = QuantileSketch()
        for v: Int64 in [0, 0, 0, -5, 1, 2] { s.add(v) }
        #expect(s.quantile(percent: 50) == 0)
        #expect(s.quantile(percent: 66.7) == 0 || relativeError(s.quantile(percent: 66.7)!, 1) <= 0.01)
        #expect(relativeError(s.quantile(percent: 100)!, 2) <= 0.01)
        #expect(s.sum == 3)
        #expect(s.count == 6)
        #expect(QuantileSketch().quantile(percent: 50) == nil)
        #expect(QuantileSketch().max == nil)
    }

    @Test func removingSomeValuesEqualsAddingTheRest() {
        var rng = SplitMix64(seed: 42)
        let values = (0..<2_000).map { _ in Int64(rng.unit() * rng.unit() * 1e10) }
        let removed = Set((0..<values.count).filter { _ in rng.next() % 3 == 0 })
        var all = QuantileSketch(values)
        for i in removed.sorted() { all.remove(values[i]) }
        let kept = values.indices.filter { !removed.contains($0) }.map { values[$0] }
        let rest = QuantileSketch(kept)
        #expect(all.count == rest.count)
        #expect(all.sum == rest.sum)
        for p in [50.0, 90, 95, 99] { #expect(all.quantile(percent: p) == rest.quantile(percent: p)) }
        // max stays exact unless the maximum itself was retracted; then it is within the sketch's accuracy.
        #expect(relativeError(Double(all.max!), Double(rest.max!)) <= 0.01)
        #expect(all.max! <= values.max()!)
    }

    @Test func retractingTheMaximumKeepsMaxWithinAccuracy() {
        var s = QuantileSketch([10_000_000, 20_000_000, 30_000_000])
        #expect(s.maxIsExact)
        s.remove(30_000_000)
        // Not known any more (another 30 s might remain, as far as the sketch can tell): marked, the bound
        // down to the top of the highest bucket left, and `max` approximates.
        #expect(!s.maxIsExact && s.maxBound! >= 20_000_000 && s.maxBound! <= 20_201_000)
        #expect(relativeError(Double(s.max!), 20_000_000) <= 0.01)
        s.remove(20_000_000)
        #expect(relativeError(Double(s.max!), 10_000_000) <= 0.01)
        s.remove(10_000_000)
        #expect(s.max == nil)
        #expect(s.isEmpty)
        #expect(s == QuantileSketch())
        var z = QuantileSketch([0, 0, 5])
        z.remove(5)
        #expect(z.max == 0)
        // Retracting a value below the maximum leaves max exact.
        var k = QuantileSketch([1_234_567, 9_876_543])
        k.remove(1_234_567)
        #expect(k.max == 9_876_543)
        #expect(z.maxIsExact && k.maxIsExact && s.maxIsExact)
    }

    /// The maximum once known again: a value added at or above the bound is the maximum; an emptied
    /// sketch has none; one holding only zeros has 0.
    @Test func anUnknownMaximumIsKnownAgainOnlyWhenItMustBe() throws {
        var s = QuantileSketch([5_000_000, 9_000_000, 9_000_000])
        s.remove(9_000_000)
        s.add(8_000_000)
        #expect(!s.maxIsExact, "8 s is below the bound: a 9 s value might remain as far as the sketch knows")
        s.add(9_000_000)
        #expect(s.maxIsExact && s.max == 9_000_000)
        // The bound comes down to the highest bucket left, so a value above it is known to be the maximum.
        var t = QuantileSketch([5_000_000, 9_000_000])
        t.remove(9_000_000)
        t.add(5_000_001)
        #expect(!t.maxIsExact, "5.000001 s shares the 5 s bucket")
        t.add(8_000_000)
        #expect(t.maxIsExact && t.max == 8_000_000)
        // Through bytes, the flag and the bound survive.
        var u = QuantileSketch([1, 2, 3, 700])
        u.remove(700)
        let back = try QuantileSketch(serialized: u.serialized)
        #expect(back == u && !back.maxIsExact && back.maxBound! >= 3 && back.maxBound! < 700)
        // Parts that hold the same values tell the maximum when the largest known one tops the others' bounds.
        var whole = QuantileSketch([4_000_000, 6_000_000, 9_000_000])
        whole.remove(9_000_000)
        var quiet = QuantileSketch([4_000_000, 9_000_000])
        quiet.remove(9_000_000)
        let learned = whole.learnMax(fromParts: [quiet, QuantileSketch([6_000_000])])
        #expect(learned && whole.max == 6_000_000)
        var close = QuantileSketch([6_000_000, 9_000_000])
        close.remove(9_000_000)
        var other = QuantileSketch([6_000_000, 6_000_001, 9_000_000])
        other.remove(9_000_000)
        let unlearned = other.learnMax(fromParts: [close, QuantileSketch([6_000_001])])
        #expect(!unlearned && !other.maxIsExact, "the other part's bound lies above 6.000001 s")
        // One step that retracts the maximum and adds a larger value knows the new maximum.
        var a = QuantileSketch([3, 10])
        a.apply(retracting: QuantileSketch([10]), adding: QuantileSketch([12, 4]))
        #expect(a.maxIsExact && a.max == 12)
        // Retracting the maximum and adding the same value again cannot tell whether one remains.
        var b = QuantileSketch([3, 10])
        b.apply(retracting: QuantileSketch([10]), adding: QuantileSketch([10]))
        #expect(!b.maxIsExact && b.maxBound == 10 && b.count == 2)
        // A value below the maximum, retracted with others added, leaves it known.
        var c = QuantileSketch([3, 10])
        c.apply(retracting: QuantileSketch([3]), adding: QuantileSketch([7]))
        #expect(c.maxIsExact && c.max == 10)
    }

    /// Property: under any valid sequence of add, remove, merge, subtract and apply (retracting only
    /// what is held or added in the same step), the maximum is exact whenever the sketch says so, the
    /// bound is never below it, and `max` is within the accuracy otherwise; counts and sums are exact.
    @Test(arguments: [UInt64(1), 2, 3, 4])
    func maxIsExactWheneverMarkedSo(_ seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        var s = QuantileSketch()
        var held: [Int64] = []
        func draw() -> Int64 { rng.next() % 7 == 0 ? 0 : [1, 1_000, 1_000_000, 60_000_000][Int(rng.next() % 4)] * Int64(1 + rng.next() % 50) }
        func takeHeld(_ n: Int) -> [Int64] {
            var out: [Int64] = []
            for _ in 0..<Swift.min(n, held.count) { out.append(held.remove(at: Int(rng.next() % UInt64(held.count)))) }
            return out
        }
        var unknownSeen = false, knownAgain = false
        for step in 0..<3_000 {
            let wasExact = s.maxIsExact
            switch rng.next() % 6 {
            case 0, 1:
                let v = draw()
                s.add(v)
                held.append(v)
            case 2:
                // Most often the largest value, so the maximum is retracted.
                if !held.isEmpty {
                    let i = rng.next() % 2 == 0 ? held.indices.max { held[$0] < held[$1] }! : Int(rng.next() % UInt64(held.count))
                    s.remove(held.remove(at: i))
                }
            case 3:
                let values = (0..<Int(rng.next() % 4)).map { _ in draw() }
                s.merge(QuantileSketch(values))
                held += values
            case 4:
                s.subtract(QuantileSketch(takeHeld(Int(rng.next() % 4))))
            default:
                let added = (0..<Int(rng.next() % 4)).map { _ in draw() }
                held += added
                s.apply(retracting: QuantileSketch(takeHeld(Int(rng.next() % 4))), adding: QuantileSketch(added))
            }
            #expect(s.count == Int64(held.count) && s.sum == held.reduce(0, +), "step \(step)")
            if s.maxIsExact {
                #expect(s.max == held.max(), "step \(step)")
                if !wasExact { knownAgain = true }
            } else {
                unknownSeen = true
                #expect(s.maxBound! >= held.max()!, "step \(step)")
                #expect(relativeError(Double(s.max!), Double(held.max()!)) <= 0.01, "step \(step)")
            }
            if held.isEmpty { #expect(s.isEmpty && s.max == nil && s.maxIsExact) }
        }
        #expect(unknownSeen && knownAgain)
    }

    @Test func mergeIsOrderIndependentAndEqualsAddingEverything() {
        var rng = SplitMix64(seed: 7)
        let parts = (0..<5).map { _ in (0..<300).map { _ in Int64(rng.unit() * 1e8) } }
        let whole = QuantileSketch(parts.flatMap { $0 })
        var forward = QuantileSketch()
        for p in parts { forward.merge(QuantileSketch(p)) }
        var backward = QuantileSketch()
        for p in parts.reversed() { backward.merge(QuantileSketch(p)) }
        #expect(forward == whole)
        #expect(backward == whole)
        #expect(forward.max == whole.max)
        #expect(forward.serialized == backward.serialized)
        var back = whole
        back.subtract(QuantileSketch(parts[4]))
        let firstFour = QuantileSketch(parts[0..<4].flatMap { $0 })
        #expect(back.count == firstFour.count)
        #expect(back.sum == firstFour.sum)
        #expect(back.quantile(percent: 95) == firstFour.quantile(percent: 95))
    }

    /// Property: small sketches keep their buckets as sparse pairs and turn dense past a limit; whatever
    /// mix of the two an add, merge, subtract or decode meets, the value and its bytes are the same.
    @Test(arguments: [1, 5, 23, 24, 25, 26, 40, 200])
    func sparseAndDenseBucketsHoldTheSameValues(_ n: Int) throws {
        var rng = SplitMix64(seed: UInt64(n))
        let values = (0..<n).map { _ in rng.next() % 9 == 0 ? 0 : Int64(rng.unit() * rng.unit() * 1e10) }
        let added = QuantileSketch(values)
        // One value at a time through singleton sketches, in a shuffled order, some through their bytes.
        var merged = QuantileSketch()
        for v in values.shuffled(using: &rng) {
            let one = QuantileSketch([v])
            merged.merge(rng.next() % 2 == 0 ? one : try QuantileSketch(serialized: one.serialized))
        }
        // Two halves merged into each other both ways.
        let half = n / 2
        var left = QuantileSketch(values[..<half]), right = QuantileSketch(values[half...])
        left.merge(QuantileSketch(values[half...]))
        right.merge(QuantileSketch(values[..<half]))
        for other in [merged, left, right, try QuantileSketch(serialized: added.serialized)] {
            #expect(other.serialized == added.serialized)
            for p in [1.0, 50, 95, 99, 100] { #expect(other.quantile(percent: p) == added.quantile(percent: p)) }
        }
        // Retracting a random subset, value by value or as one sketch, leaves the rest.
        let gone = values.indices.filter { _ in rng.next() % 3 == 0 }
        let rest = QuantileSketch(values.indices.filter { !gone.contains($0) }.map { values[$0] })
        var removed = added, subtracted = merged
        for i in gone { removed.remove(values[i]) }
        subtracted.subtract(QuantileSketch(gone.map { values[$0] }))
        for s in [removed, subtracted] {
            #expect(s.count == rest.count && s.sum == rest.sum && s.zeroCount == rest.zeroCount)
            #expect(s.isEmpty == rest.isEmpty)
            // Equal buckets; only a retracted maximum may cap the top one differently (within accuracy).
            for p in [1.0, 50, 95, 99] {
                switch (s.quantile(percent: p), rest.quantile(percent: p)) {
                case (nil, nil): break
                case let (a?, b?): #expect(a == b || relativeError(a, b) <= 0.01, "p\(p): \(a) vs \(b)")
                default: Issue.record("p\(p): one side empty")
                }
            }
        }
    }

    @Test func removalBeforeAdditionCommutes() {
        var a = QuantileSketch()
        a.remove(500)
        a.add(500)
        a.add(42)
        #expect(a.count == 1)
        #expect(a.quantile(percent: 50).map { relativeError($0, 42) <= 0.01 } == true)
    }

    @Test func serializationRoundTripsAndIsCompact() throws {
        var rng = SplitMix64(seed: 99)
        let values = (0..<1_000).map { _ in Int64(-log(1 - rng.unit()) * 120e6) } + [0, 0]
        var s = QuantileSketch(values)
        s.remove(values[3])
        let bytes = s.serialized
        let back = try QuantileSketch(serialized: bytes)
        #expect(back == s)
        #expect(back.count == s.count)
        #expect(back.sum == s.sum)
        #expect(back.max == s.max)
        #expect(back.zeroCount == 2)
        #expect(back.quantile(percent: 99) == s.quantile(percent: 99))
        #expect(bytes.count < 2_500)
        #expect(try QuantileSketch(serialized: QuantileSketch().serialized) == QuantileSketch())
    }

    @Test func corruptBytesAreRejectedWithAnError() throws {
        let good = QuantileSketch([1, 2, 3, 4_000]).serialized
        #expect(throws: KPIDecodingError.self) { try QuantileSketch(serialized: []) }
        #expect(throws: KPIDecodingError.self) { try QuantileSketch(serialized: [9] + good.dropFirst()) }
        #expect(throws: KPIDecodingError.self) { try QuantileSketch(serialized: Array(good.dropLast())) }
        #expect(throws: KPIDecodingError.self) { try QuantileSketch(serialized: good + [0]) }
        #expect(throws: KPIDecodingError.self) { try QuantileSketch(serialized: [QuantileSketch.formatVersion] + Array(repeating: 0xFF, count: 12)) }
        // Version 1 guessed the maximum after a retraction; its bytes are refused (stores rebuild their rollups).
        #expect(throws: KPIDecodingError.self) { try QuantileSketch(serialized: [1] + good.dropFirst()) }
        // A maximum marked not known needs a bound.
        #expect(throws: KPIDecodingError.self) { try QuantileSketch(serialized: [QuantileSketch.formatVersion, 0, 0, 0, 1]) }
        // Bucket indices far apart would make the dense store allocate gigabytes: refused.
        var hostile = ByteSink()
        hostile.byte(QuantileSketch.formatVersion)
        hostile.signed(0)
        hostile.unsigned(0)
        hostile.signed(0)
        hostile.unsigned(3 << 1)
        for _ in 0..<3 {
            hostile.signed(4_000)
            hostile.signed(1)
        }
        #expect(throws: KPIDecodingError.self) { try QuantileSketch(serialized: hostile.bytes) }
        #expect(QuantileSketch([Int64.max, 1]).max == Int64.max)
        #expect(try QuantileSketch(serialized: QuantileSketch([Int64.max, 1]).serialized).count == 2)
    }
}
