import Foundation
import Testing
import WaybillModel
import WaybillStore
@testable import WaybillSQLite
import WaybillTestSupport

/// The service view's rollups (`span_rollups`): filled for a store written before they existed, kept
/// through retention, and the duration histogram they hold.
@Suite struct ServiceRollupStorageTests {
    static let t0 = RFC3339.parse("2026-11-20T08:00:00Z")!

    /// 300 traces over five hours, web -> orchestrator -> erp / wms, with errors and some very long spans.
    static func traces() -> [Span] {
        var rng = SplitMix64(seed: 3)
        var out: [Span] = []
        for t in 0..<300 {
            let trace = String(format: "%032x", 1000 + t)
            let base = t0 + Micros(t) * 60_000_000 + Micros(rng.next() % 50_000_000)
            func mk(_ id: Int, _ parent: Int?, _ service: String, _ at: Micros, _ us: Micros, _ error: Bool) -> Span {
                Span(traceID: trace, spanID: String(format: "%016x", id), parentSpanID: parent.map { String(format: "%016x", $0) },
                     service: service, name: "op", start: at, end: at + us, status: error ? .error : .ok)
            }
            out.append(mk(1, nil, "web", base, Micros(100_000 + rng.next() % 900_000), false))
            out.append(mk(2, 1, "orchestrator", base + 1_000, Micros(rng.next() % 400_000), rng.next() % 15 == 0))
            out.append(mk(3, 2, "erp", base + 2_000, Micros(rng.next() % 20_000_000), rng.next() % 5 == 0))
            out.append(mk(4, 2, "wms", base + 3_000, t % 50 == 0 ? 3_600_000_000 : Micros(rng.next() % 80_000), false))
        }
        return out
    }

    static func reference(_ spans: [Span], in w: Range<Micros>) -> ServiceAggregates {
        var service: [String: String] = [:]
        for s in spans { service[s.traceID + "/" + s.spanID] = s.service }
        var a = ServiceAggregates()
        for s in spans where w.contains(s.start) { a.add(s, caller: s.parentSpanID.flatMap { service[s.traceID + "/" + $0] }) }
        return a
    }

    @Test func aStoreWrittenBeforeTheRollupsGetsThemWhenItOpens() async throws {
        let path = temporaryDatabase()
        let spans = Self.traces()
        do {
            let s = try SQLiteStore(path: path)
            // Children before parents, in two appends.
            _ = try await s.appendSpans(spans.filter { $0.parentSpanID != nil })
            _ = try await s.appendSpans(spans.filter { $0.parentSpanID == nil })
            s.close()
        }
        // As a store of the previous version: no table, no mark.
        do {
            let c = try Connection(path: path)
            try c.exec("DROP TABLE span_rollups; DELETE FROM meta WHERE key = 'span_rollups_backfill'")
        }
        let s = try SQLiteStore(path: path)
        defer { s.close() }
        let w = (Self.t0 - 60_000_000)..<(Self.t0 + 6 * 3_600_000_000)
        let got = try s.serviceAggregates(in: w)
        #expect(got == Self.reference(spans, in: w))
        #expect(got.calls[.init(from: "orchestrator", to: "erp")]?.calls == 300)
        let unaligned = (Self.t0 + 1_234_567)..<(Self.t0 + 2 * 3_600_000_000 + 17_000_000)
        #expect(try s.serviceAggregates(in: unaligned) == Self.reference(spans, in: unaligned))
    }

    @Test func retentionDropsWholeBucketsAndKeepsTheRest() async throws {
        let s = try SQLiteStore(path: temporaryDatabase())
        defer { s.close() }
        let spans = Self.traces()
        _ = try await s.appendSpans(spans)
        let cutoff = Self.t0 + 2 * 3_600_000_000
        _ = try await s.deleteEvents(before: cutoff)
        let after = cutoff..<(Self.t0 + 6 * 3_600_000_000)
        #expect(try s.serviceAggregates(in: after) == Self.reference(spans, in: after))
        let before = Self.t0..<cutoff
        #expect(try s.serviceAggregates(in: before).services.isEmpty, "rows of buckets before the cutoff are gone")
    }

    @Test func unusualSpansNeverBreakTheRollups() async throws {
        let s = try SQLiteStore(path: temporaryDatabase())
        defer { s.close() }
        let spans = SpanStorageTests.unusualSpans()
        _ = try await s.appendSpans(spans)
        let all = Micros.min..<Micros.max
        let got = try s.serviceAggregates(in: all)
        #expect(got.services.values.map(\.spans).reduce(0, +) == spans.count)
        #expect(got == Self.reference(spans, in: all))
    }

    @Test func histogramPercentilesAreWithinHalfAPercentAndItsBytesRoundTrip() throws {
        var rng = SplitMix64(seed: 9)
        var h = SpanDurationHistogram(), parts = [SpanDurationHistogram(), SpanDurationHistogram()]
        var values: [Int64] = []
        for i in 0..<5000 {
            let v = i % 97 == 0 ? 0 : Int64(rng.next() % 50_000_000) + (i % 3 == 0 ? 1 : 100_000)
            values.append(v)
            h.add(v)
            parts[i % 2].add(v)
        }
        var merged = parts[0]
        merged.merge(parts[1])
        #expect(merged == h)
        values.sort()
        for p in [1.0, 50, 90, 95, 99, 100] {
            let k = max(1, Int((p / 100 * Double(values.count)).rounded(.up)))
            let exact = Double(values[k - 1]), got = h.value(atRank: Int64(k))!
            #expect(abs(got - exact) <= exact * SpanDurationHistogram.relativeAccuracy + 1e-9, "p\(p): \(got) vs \(exact)")
        }
        #expect(h.max == values.last)
        #expect(try SpanDurationHistogram(serialized: h.serialized) == h)
        #expect(try SpanDurationHistogram(serialized: SpanDurationHistogram().serialized) == SpanDurationHistogram())
        // Damaged bytes are refused, never trusted.
        let bytes = h.serialized
        for cut in [0, 1, 2, bytes.count / 2, bytes.count - 1] {
            #expect(throws: (any Error).self) { try SpanDurationHistogram(serialized: Array(bytes.prefix(cut))) }
        }
        #expect(throws: (any Error).self) { try SpanDurationHistogram(serialized: bytes + [0]) }
        #expect(throws: (any Error).self) { try SpanDurationHistogram(serialized: [1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f]) }
    }
}
