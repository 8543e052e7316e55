import WaybillKPI
import WaybillModel
import WaybillStore

/// KPI drill-downs (`KPIService.explain`) equal the ranking of the reference facts, whatever the arrival
/// order, after retention and after a session that wrote without rollups. A store that keeps drill rows
/// (`DrillReader`) must hold exactly the rows the KPI engine's `DrillProjection` derives from the current
/// facts; a store without them answers from its facts.
extension StoreConformance {
    static let drillChecks: [Check] = [
        Check(name: "KPI drill-downs equal the ranking of the reference facts (shuffled, resent, late, retention, written without rollups)",
              body: drillDownsEqualReference),
    ]

    /// Every drill-down the engine is asked for, each against `KPIExplain.contributors(facts:)` over `facts`.
    static func expectDrillDowns(_ store: Store, equalTo facts: [OrderFacts], _ context: String) throws {
        let service = KPIService(reader: store)
        // An engine without drill rows ranks the same facts for every limit and group: fewer round trips there.
        let keeps = store is any DrillReader
        let limits = keeps ? [1, 5, 20, 1_000] : [20]
        let metrics: [KPIMetric] = [.allocationDelay(.p95), .allocationDelay(.p50), .allocationDelay(.max), .allocationDelay(.mean),
                                    .shipmentLag(.p90), .shipmentLag(.p99), .fillRate, .orderFillRate, .onTimeRate]
        for (from, to, by, _) in kpiQueries {
            let dimension = by.flatMap(KPIDimension.init(rawValue:))
            let q = try KPIQuery(from: RFC3339.parse(from!)!, to: RFC3339.parse(to!)!, by: dimension)
            var groups: [String??] = [.none]
            if dimension != nil { groups += keeps ? [.some(nil), "DC-EAST", "DC-NORTH", "web", "NE", "nowhere"] : [.some(nil), "DC-EAST"] }
            for metric in metrics {
                for group in groups {
                    for limit in limits {
                        let got = try service.explain(metric, q, group: group, limit: limit)
                        let want = try KPIExplain.contributors(facts: facts, metric: metric, query: q, group: group, limit: limit)
                        try expect(got == want, "\(context): \(metric) \(from!)..\(to!) by \(by ?? "-") group \(String(describing: group)) limit \(limit): "
                                   + "got \(got.prefix(3)) (\(got.count)), want \(want.prefix(3)) (\(want.count))")
                    }
                }
            }
        }
        guard let drill = store as? any DrillReader else { return }
        try expect(try drill.drillRowsAvailable(layout: KPIFactsRollup.drillLayout), "\(context): drill rows are current")
        let all = (kpiT0 - 30 * day)..<(kpiT0 + 30 * day)
        let want = Set(facts.flatMap { KPIFactsRollup().drillRows($0) })
        var got = Set<DrillRow>()
        for family in KPIDrillFamily.allCases {
            let s = DrillSelection(family: family.rawValue, range: all)
            let rows = try drill.drillTop(s, atLeast: nil, limit: 100_000)
            try expect(try drill.drillCount(s) == rows.count, "\(context): count of family \(family)")
            got.formUnion(rows)
        }
        try expect(got == want, "\(context): stored drill rows: \(got.subtracting(want).count) unexpected, \(want.subtracting(got).count) missing")
    }

    static func drillDownsEqualReference(_ make: Factory) async throws {
        let events = kpiWorkload()
        let facts = Array(referenceFacts(events).values)
        var rng = SplitMix64(seed: 15)
        let storage = try make()
        do {
            let store = try storage.open(rollup: KPIFactsRollup())
            defer { store.close() }
            // Shuffled, a quarter resent, in small appends: re-allocations and late events move orders' rows.
            var stream = events + events.filter { _ in rng.next() % 4 == 0 }
            stream.shuffle(using: &rng)
            try await appendInChunks(store, stream, maxChunk: 40, &rng)
            try expectDrillDowns(store, equalTo: facts, "shuffled arrival")
        }
        // A session without rollups writes more (here: the allocations that change orders' groups again);
        // the next session with the KPI engine must not trust rows that missed them.
        let extra = (0..<300).filter { $0 % 9 == 1 }.map { i in
            CloudEvent(id: "SO-\(i)-al-late", source: "allocation", type: "order.allocated",
                       time: kpiT0 + Micros(i) * 850_000_000 + 1_000_000, subject: "SO-\(i)",
                       data: ["warehouse": "DC-LATE", "lines": [["line": 1, "qty_allocated": 0.5]]])
        }
        do {
            let store = try storage.open(rollup: nil)
            defer { store.close() }
            _ = try await store.append(extra)
        }
        let all = events + extra
        let store = try storage.open(rollup: KPIFactsRollup())
        defer { store.close() }
        try expectDrillDowns(store, equalTo: Array(referenceFacts(all).values), "reopened after a session without rollups")
        let cutoff = kpiT0 + day
        _ = try await store.deleteEvents(before: cutoff)
        try expectDrillDowns(store, equalTo: referenceFacts(all).values.filter { $0.lastEventAt! >= cutoff }, "after retention")
    }
}
