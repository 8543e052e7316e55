import Foundation
import WaybillModel
import WaybillStore

extension StoreConformance {
    /// `ServiceRollupReader` (optional: without it the service view reads the window's spans).
    static let serviceRollupChecks: [Check] = [
        Check(name: "service aggregates of any window equal those of its spans, calls counted once whichever span arrives first", body: serviceAggregatesMatchSpans),
    ]

    /// Traces over three hours of five services calling each other, sent in four appends out of order
    /// (children before their parents, a resend of part of the first), against the aggregates computed
    /// from the spans themselves, for windows aligned and not on minutes and hours.
    static func serviceAggregatesMatchSpans(_ make: Factory) async throws {
        let store = try fresh(make)
        defer { store.close() }
        guard let reader = store as? any ServiceRollupReader else { return }
        var all: [Span] = []
        var rng = SplitMix64(seed: 7)
        let services = ["web", "orchestrator", "allocation", "erp", "wms"]
        for t in 0..<240 {
            let trace = String(format: "%032x", t + 1)
            let base = t0 + Micros(t) * 45_000_000 + Micros(rng.next() % 30_000_000)
            func mk(_ id: Int, parent: Int?, _ service: String, at: Micros, ms: Int64, error: Bool) -> Span {
                Span(traceID: trace, spanID: String(format: "%016x", id), parentSpanID: parent.map { String(format: "%016x", $0) },
                     service: service, name: service + ".op", start: at, end: at + ms * 1000, status: error ? .error : .ok)
            }
            let root = mk(1, parent: nil, "web", at: base, ms: Int64(200 + rng.next() % 800), error: false)
            let orch = mk(2, parent: 1, "orchestrator", at: base + 2_000, ms: Int64(100 + rng.next() % 500), error: rng.next() % 20 == 0)
            let inner = mk(3, parent: 2, "orchestrator", at: base + 3_000, ms: Int64(rng.next() % 50), error: false)
            let alloc = mk(4, parent: 2, "allocation", at: base + 5_000, ms: Int64(rng.next() % 3000), error: rng.next() % 10 == 0)
            let erp = mk(5, parent: 4, services[3], at: base + 9_000, ms: Int64(rng.next() % 9000), error: rng.next() % 7 == 0)
            // A call back to the caller's caller, and a parent that never arrives.
            let back = mk(6, parent: 5, "allocation", at: base + 11_000, ms: 0, error: false)
            let orphan = mk(7, parent: 99, "wms", at: base + 12_000, ms: Int64(rng.next() % 100), error: false)
            all += [root, orch, inner, alloc, erp, back, orphan]
        }
        // Children first: each trace's spans in reverse, split over appends; then a resend.
        let reversed = Array(all.reversed())
        let q = reversed.count / 4
        _ = try await store.appendSpans(Array(reversed[..<q]))
        _ = try await store.appendSpans(Array(reversed[q..<(2 * q)]))
        _ = try await store.appendSpans(Array(reversed[(2 * q)...]))
        let resent = try await store.appendSpans(Array(reversed[..<(q / 2)]))
        try expect(resent.accepted == 0, "a resend changes nothing: \(resent)")
        var serviceOf: [String: String] = [:]
        for s in all { serviceOf[s.traceID + "/" + s.spanID] = s.service }
        func reference(_ w: Range<Micros>) -> ServiceAggregates {
            var a = ServiceAggregates()
            for s in all where w.contains(s.start) { a.add(s, caller: s.parentSpanID.flatMap { serviceOf[s.traceID + "/" + $0] }) }
            return a
        }
        let minute: Micros = 60_000_000, hour = 60 * minute
        let windows: [Range<Micros>] = [
            t0..<(t0 + 4 * hour), (t0 + 17_000_123)..<(t0 + 2 * hour + 59 * minute + 3_000_000), (t0 + hour)..<(t0 + 2 * hour),
            (t0 + 90 * minute)..<(t0 + 91 * minute), (t0 + 61 * minute + 5)..<(t0 + 61 * minute + 40_000_000),
            (t0 + 30 * minute)..<(t0 + 150 * minute), (t0 - hour)..<t0,
        ]
        for w in windows {
            let got = try reader.serviceAggregates(in: w), want = reference(w)
            try expect(got == want, "window \(RFC3339.format(w.lowerBound)) to \(RFC3339.format(w.upperBound)): "
                       + "services \(got.services.mapValues { ($0.spans, $0.errors, $0.durations.count, $0.durations.max ?? -1) }) "
                       + "expected \(want.services.mapValues { ($0.spans, $0.errors, $0.durations.count, $0.durations.max ?? -1) }); "
                       + "calls \(got.calls.map { "\($0.key.from)>\($0.key.to) \($0.value.calls)/\($0.value.errors)" }.sorted()) "
                       + "expected \(want.calls.map { "\($0.key.from)>\($0.key.to) \($0.value.calls)/\($0.value.errors)" }.sorted())")
            try expect(!got.truncated, "rollups are never truncated")
        }
    }
}
