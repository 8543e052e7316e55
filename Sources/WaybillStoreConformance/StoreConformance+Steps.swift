import Foundation
import WaybillKPI
import WaybillModel
import WaybillStore

/// The lifecycle step comparison of the trace document (`StepComparison`, read from the step rollup
/// rows the KPI rollup keeps) against a reference computed from the orders' facts: exact quantiles of
/// the same step at the same warehouse over the whole hours of the 7 days before each step.
extension StoreConformance {
    static let stepChecks: [Check] = [
        Check(name: "steps: each step's p50/p90 and verdict equal the reference from facts, after shuffled arrival, resends and late re-allocations",
              body: stepsEqualReference),
    ]

    /// Nine days of orders at three warehouses, each warehouse with its own shipping pace; some orders
    /// re-allocated by a late event with an earlier time (their steps move warehouse), some events sent
    /// twice, arrival shuffled. Then probe orders: one shipped far slower than its warehouse's usual,
    /// one typical, one stuck in `released`, one not allocated yet.
    public static func stepHistory(seed: UInt64 = 7, orders: Int = 700, end: Micros) -> (events: [CloudEvent], probes: [String]) {
        var rng = SplitMix64(seed: seed)
        func between(_ a: Micros, _ b: Micros) -> Micros { a + Micros(rng.next() % UInt64(b - a)) }
        let m: Micros = 60_000_000, h = 60 * m
        let warehouses = ["DC-EAST", "DC-WEST", "DC-NORTH"]
        let shipPace: [String: (Micros, Micros)] = ["DC-EAST": (1 * h, 3 * h), "DC-WEST": (4 * h, 9 * h), "DC-NORTH": (30 * m, 90 * m)]
        var out: [CloudEvent] = []
        let start = end - 9 * 24 * h
        func order(_ o: String, accepted: Micros, warehouse: String, reallocate: String?, ship: Micros?, stopAt: Stage) {
            var t = accepted
            out.append(CloudEvent(id: o + "-acc", source: "oms", type: "order.accepted", time: t, subject: o,
                                  data: ["channel": "web", "lines": [["line": 1, "sku": "A", "qty": 2]]]))
            t += between(5_000_000, 50_000_000)
            out.append(CloudEvent(id: o + "-val", source: "oms", type: "order.validated", time: t, subject: o, data: [:]))
            if stopAt == .validated { return }
            t += between(1 * m, 20 * m)
            out.append(CloudEvent(id: o + "-alloc", source: "allocation", type: "order.allocated", time: t, subject: o,
                                  data: ["warehouse": .string(warehouse), "lines": [["line": 1, "qty_allocated": 2]]]))
            if let other = reallocate {
                // Arrives later (shuffled anyway) with an earlier time: the first allocation, and so the warehouse, changes.
                out.append(CloudEvent(id: o + "-alloc0", source: "allocation", type: "order.allocated", time: t - 30_000_000, subject: o,
                                      data: ["warehouse": .string(other), "lines": [["line": 1, "qty_allocated": 2]]]))
            }
            let w = reallocate ?? warehouse
            t += between(10 * m, 60 * m)
            out.append(CloudEvent(id: o + "-rel", source: "wms", type: "order.released", time: t, subject: o, data: ["warehouse": .string(w)]))
            if stopAt == .released { return }
            t += ship ?? between(shipPace[w]!.0, shipPace[w]!.1)
            out.append(CloudEvent(id: o + "-ship", source: "wms", type: "order.shipped", time: t, subject: o,
                                  data: ["warehouse": .string(w), "carrier": "UPS", "tracking": .string("1Z" + o)]))
        }
        for i in 0..<orders {
            let accepted = start + Micros(i) * (8 * 24 * h / Micros(orders)) + between(0, 10 * m)
            let w = warehouses[i % 3]
            let re = i % 17 == 5 ? warehouses[(i + 1) % 3] : nil
            order(String(format: "SO-%05d", i), accepted: accepted, warehouse: w, reallocate: re, ship: nil, stopAt: i % 23 == 7 ? .released : .shipped)
        }
        // Resends of some events, identical.
        out += out.enumerated().filter { $0.offset % 11 == 3 }.map(\.element)
        let probeStart = end - 20 * h
        order("SO-SLOW", accepted: probeStart, warehouse: "DC-EAST", reallocate: nil, ship: 20 * h, stopAt: .shipped)
        order("SO-TYPICAL", accepted: probeStart + 10 * m, warehouse: "DC-NORTH", reallocate: nil, ship: 40 * m, stopAt: .shipped)
        order("SO-STUCK", accepted: probeStart + 20 * m, warehouse: "DC-WEST", reallocate: nil, ship: nil, stopAt: .released)
        order("SO-NEW", accepted: probeStart + 30 * m, warehouse: "DC-WEST", reallocate: nil, ship: nil, stopAt: .validated)
        out.shuffle(using: &rng)
        return (out, ["SO-SLOW", "SO-TYPICAL", "SO-STUCK", "SO-NEW"])
    }

    /// The steps of `facts` computed from every order's facts: exact quantiles, the same windows and verdicts.
    public static func referenceSteps(_ facts: OrderFacts, all: [OrderFacts]) -> [StepDocument] {
        let warehouse = facts.stepWarehouse
        func gaps(_ window: Range<Micros>, _ matches: (LifecycleStep) -> Bool) -> [Int64] {
            var out: [Int64] = []
            for f in all where warehouse == nil || f.stepWarehouse == warehouse {
                for s in f.lifecycleSteps where window.contains(s.end) && matches(s) { out.append(s.gap) }
            }
            return out.sorted()
        }
        func seconds(_ v: Int64?) -> Double? { v.map { Double($0) / 1e6 } }
        var out: [StepDocument] = []
        for step in facts.lifecycleSteps {
            let window = StepComparison.window(before: step.end)
            let g = gaps(window) { $0.from == step.from && $0.to == step.to }
            let p90 = QuantileRank.exact(sorted: g, percent: 90)
            out.append(StepDocument(from: step.from.name, to: step.to.name, startedAt: RFC3339.format(step.start), endedAt: RFC3339.format(step.end),
                                    gapSeconds: Double(step.gap) / 1e6, warehouse: warehouse, windowFrom: RFC3339.format(window.lowerBound),
                                    windowTo: RFC3339.format(window.upperBound), samples: g.count,
                                    p50Seconds: seconds(QuantileRank.exact(sorted: g, percent: 50)), p90Seconds: seconds(p90),
                                    verdict: StepDocument.verdict(gap: step.gap, p90: p90, samples: g.count)))
        }
        if let state = facts.state, state != .invoiced, state != .cancelled, let since = facts.stateSince {
            let window = StepComparison.window(before: since)
            let g = gaps(window) { $0.from == state }
            let p90 = QuantileRank.exact(sorted: g, percent: 90)
            var doc = StepDocument(from: state.name, to: nil, startedAt: RFC3339.format(since), endedAt: nil, gapSeconds: nil, warehouse: warehouse,
                                   windowFrom: RFC3339.format(window.lowerBound), windowTo: RFC3339.format(window.upperBound), samples: g.count,
                                   p50Seconds: seconds(QuantileRank.exact(sorted: g, percent: 50)), p90Seconds: seconds(p90), verdict: .inProgress)
            if let p90, g.count >= StepDocument.minimumSamples {
                let t = StepDocument.thresholds(p90: p90)
                doc.slowAfter = RFC3339.format(since + t.slow)
                doc.verySlowAfter = RFC3339.format(since + t.verySlow)
            }
            out.append(doc)
        }
        return out
    }

    /// Whether `got` equals `want` but for quantiles within the sketch's accuracy (0.5%, and the ms rounding).
    static func stepsAgree(_ got: [StepDocument], _ want: [StepDocument]) -> String? {
        guard got.count == want.count else { return "\(got.count) steps, want \(want.count): \(got.map(\.name)) vs \(want.map(\.name))" }
        func close(_ a: Double?, _ b: Double?) -> Bool {
            switch (a, b) {
            case (nil, nil): return true
            case let (x?, y?): return abs(x - y) <= 0.005 * y + 0.001
            default: return false
            }
        }
        for (g, w) in zip(got, want) {
            var a = g, b = w
            guard close(a.p50Seconds, b.p50Seconds), close(a.p90Seconds, b.p90Seconds) else {
                return "\(w.name): p50/p90 \(String(describing: g.p50Seconds))/\(String(describing: g.p90Seconds)), want \(String(describing: w.p50Seconds))/\(String(describing: w.p90Seconds))"
            }
            // Thresholds follow p90: compared within the same accuracy.
            for (x, y) in [(a.slowAfter, b.slowAfter), (a.verySlowAfter, b.verySlowAfter)] {
                guard close(x.flatMap(RFC3339.parse).map(Double.init), y.flatMap(RFC3339.parse).map(Double.init)) else {
                    return "\(w.name): thresholds \(String(describing: x)) vs \(String(describing: y))"
                }
            }
            (a.p50Seconds, a.p90Seconds, a.slowAfter, a.verySlowAfter) = (nil, nil, nil, nil)
            (b.p50Seconds, b.p90Seconds, b.slowAfter, b.verySlowAfter) = (nil, nil, nil, nil)
            if a != b { return "\(w.name): \(a) vs \(b)" }
        }
        return nil
    }

    static func stepsEqualReference(_ make: Factory) async throws {
        let end = t0 + 5 * 86_400_000_000
        let (events, probes) = stepHistory(end: end)
        let storage = try make()
        let store = try storage.open(rollup: KPIFactsRollup())
        for chunk in stride(from: 0, to: events.count, by: 97) { _ = try await store.append(Array(events[chunk..<min(chunk + 97, events.count)])) }
        let all = Array(referenceFacts(events).values)
        let comparison = StepComparison(reader: store)
        var verdicts: [String: [String: StepDocument.Verdict]] = [:]
        for o in probes + ["SO-00420", "SO-00421", "SO-00699", "SO-00005"] {
            guard let f = try store.facts(orderID: o) else {
                store.close()
                throw Failure(description: "no facts for \(o)")
            }
            let got = try comparison.steps(f)
            if let problem = stepsAgree(got, referenceSteps(f, all: all)) { throw Failure(description: "\(o): \(problem)") }
            verdicts[o] = Dictionary(got.map { ($0.name, $0.verdict) }, uniquingKeysWith: { a, _ in a })
        }
        // What the history was built to show: the slow shipment far outside DC-EAST's usual, the fast one typical.
        try expect(verdicts["SO-SLOW"]?["released → shipped"] == .veryslow, "SO-SLOW: \(verdicts["SO-SLOW"] ?? [:])")
        try expect(verdicts["SO-SLOW"]?["shipped → …"] == .inProgress, "SO-SLOW: \(verdicts["SO-SLOW"] ?? [:])")
        try expect(verdicts["SO-TYPICAL"]?["released → shipped"] == .typical, "SO-TYPICAL: \(verdicts["SO-TYPICAL"] ?? [:])")
        try expect(verdicts["SO-STUCK"]?["released → …"] == .inProgress, "SO-STUCK: \(verdicts["SO-STUCK"] ?? [:])")
        try expect(verdicts["SO-NEW"]?["validated → …"] == .inProgress, "SO-NEW: \(verdicts["SO-NEW"] ?? [:])")
        try expect(verdicts["SO-00005"]?["accepted → validated"] == .noHistory, "the first day's orders have too little history: \(verdicts["SO-00005"] ?? [:])")
        // Reopened: the same answer from the stored rows.
        store.close()
        let again = try storage.open(rollup: KPIFactsRollup())
        defer { again.close() }
        let f = try again.facts(orderID: "SO-SLOW")!
        if let problem = stepsAgree(try StepComparison(reader: again).steps(f), referenceSteps(f, all: all)) {
            throw Failure(description: "after reopening: \(problem)")
        }
    }
}
