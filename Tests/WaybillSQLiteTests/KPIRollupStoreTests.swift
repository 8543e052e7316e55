import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillStore
import WaybillStoreConformance
@testable import WaybillSQLite

/// The KPI rollups kept by the store agree with KPIs computed from scratch, whatever the arrival order.
@Suite struct KPIRollupStoreTests {
    static let t0 = RFC3339.parse("2026-11-20T00:00:00Z")!

    /// Orders over three days with several warehouses, late re-allocations and missing groups.
    static func workload() -> [CloudEvent] {
        var out: [CloudEvent] = []
        var rng = SplitMix64(seed: 42)
        for i in 0..<300 {
            let o = "SO-\(i)"
            let t = t0 + Micros(i) * 850_000_000
            let wh: JSONValue = i % 7 == 0 ? .null : .string(["DC-EAST", "DC-WEST", "DC-SOUTH"][i % 3])
            let qty = Double(1 + rng.next() % 5)
            out.append(CloudEvent(id: "\(o)-a", source: "oms", type: "order.accepted", time: t, subject: o,
                                  data: ["channel": i % 2 == 0 ? "web" : "edi", "region": i % 5 == 0 ? .null : "NE",
                                         "promised_ship_by": .string(RFC3339.format(t + 7_200_000_000)),
                                         "lines": [["line": 1, "sku": "A", "qty": .number(qty)]]]))
            let delay = Micros(rng.next() % 7_200) * 1_000_000
            out.append(CloudEvent(id: "\(o)-al", source: "allocation", type: "order.allocated", time: t + delay, subject: o,
                                  data: ["warehouse": wh, "lines": [["line": 1, "qty_allocated": .number(qty - Double(i % 2))]]]))
            if i % 4 == 0 {
                // An earlier allocation that arrives later replaces the first allocation.
                out.append(CloudEvent(id: "\(o)-al0", source: "allocation", type: "order.allocated", time: t + delay / 2, subject: o,
                                      data: ["warehouse": "DC-NORTH", "lines": [["line": 1, "qty_allocated": .number(qty)]]]))
            }
            if i % 3 != 2 {
                out.append(CloudEvent(id: "\(o)-r", source: "wms", type: "order.released", time: t + delay + 600_000_000, subject: o, data: ["warehouse": wh]))
                let lag = Micros(rng.next() % 10_800) * 1_000_000
                out.append(CloudEvent(id: "\(o)-s", source: "wms", type: "order.shipped", time: t + delay + 600_000_000 + lag, subject: o,
                                      data: ["warehouse": wh, "carrier": "UPS"]))
            }
        }
        return out
    }

    func store() throws -> SQLiteStore {
        try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
    }

    static let queries: [(String?, String?, String?, String?)] = [
        ("2026-11-20T00:00:00Z", "2026-11-24T00:00:00Z", nil, nil),
        ("2026-11-20T00:00:00Z", "2026-11-24T00:00:00Z", "warehouse", "1d"),
        ("2026-11-20T03:17:00Z", "2026-11-22T19:05:30Z", "channel", "6h"),
        ("2026-11-21T00:00:00Z", "2026-11-21T00:30:00Z", "region", nil),
        // An alert window off the minute: minute rows inside, 30 s of facts at each end.
        ("2026-11-21T10:37:30Z", "2026-11-21T11:37:30Z", "warehouse", nil),
    ]

    /// The store's hours and minutes, hours only, and three tiers.
    @Test(arguments: [KPIFactsRollup.storeBucketWidths, [3_600_000_000], [21_600_000_000, 900_000_000, 60_000_000]])
    func rollupDocumentsEqualTheReferenceComputedFromFacts(_ widths: [Micros]) async throws {
        let s = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup(bucketWidths: widths))
        defer { s.close() }
        let events = Self.workload()
        _ = try await s.append(events)
        var facts: [String: OrderFacts] = [:]
        for e in events where e.isOrderEvent { facts[e.subject, default: OrderFacts(orderID: e.subject)].apply(e) }
        let service = KPIService(reader: s, bucketWidths: widths)
        for (from, to, by, step) in Self.queries {
            let q = try KPIQuery.parse(from: from, to: to, by: by, step: step, now: 0)
            let stored = try service.document(q)
            let reference = KPIReport.compute(facts: facts.values, query: q, quantiles: .sketched)
            #expect(stored.json == reference.json, "query \(from ?? "") \(to ?? "") by \(by ?? "-") step \(step ?? "-")")
            let exact = KPIReport.compute(facts: facts.values, query: q, quantiles: .exact)
            #expect(stored.total.json["orders_allocated"] == exact.total.json["orders_allocated"])
            #expect(stored.total.json["fill_rate"] == exact.total.json["fill_rate"])
        }
    }

    @Test func shuffledAndDuplicatedArrivalGivesTheSameDocuments() async throws {
        let events = Self.workload()
        var reference: [JSONValue] = []
        var rng = SplitMix64(seed: 9)
        for round in 0..<3 {
            let s = try store()
            defer { s.close() }
            var stream = round == 0 ? events : events + events.filter { _ in rng.next() % 4 == 0 }
            if round > 0 { stream.shuffle(using: &rng) }
            var i = 0
            while i < stream.count {
                let n = Int(rng.next() % 50) + 1
                _ = try await s.append(Array(stream[i..<min(i + n, stream.count)]))
                i += n
            }
            let service = KPIService(reader: s)
            let docs = try Self.queries.map { (f, t, b, st) in try service.document(KPIQuery.parse(from: f, to: t, by: b, step: st, now: 0)).json }
            if round == 0 { reference = docs } else { #expect(docs == reference, "round \(round)") }
        }
    }

    /// A database written without rollups, or with hour rows only, gets every row of the current layout
    /// rebuilt when it is opened, equal to a store that kept them from the start.
    @Test(arguments: [nil, [3_600_000_000]] as [[Micros]?])
    func rollupsAreRebuiltForADatabaseWrittenWithOtherOrNoRollups(_ writtenWith: [Micros]?) async throws {
        let path = temporaryDatabase()
        let events = Self.workload()
        do {
            let before = try SQLiteStore(path: path, rollup: writtenWith.map { KPIFactsRollup(bucketWidths: $0) })
            _ = try await before.append(events)
            before.close()
        }
        let s = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        defer { s.close() }
        let fresh = try store()
        defer { fresh.close() }
        _ = try await fresh.append(events)
        let days = [Self.t0..<(Self.t0 + 4 * 86_400_000_000)]
        #expect(try !s.rollupRows(dimension: "warehouse@60s", in: days).isEmpty)
        for dimension in ["total@3600s", "warehouse@3600s", "total@60s", "region@60s"] {
            #expect(try s.rollupRows(dimension: dimension, in: days).map(\.key) == fresh.rollupRows(dimension: dimension, in: days).map(\.key))
        }
        for (from, to, by, step) in Self.queries {
            let q = try KPIQuery.parse(from: from, to: to, by: by, step: step, now: 0)
            #expect(try KPIService(reader: s).document(q).json == KPIService(reader: fresh).document(q).json)
        }
    }

    @Test func retentionRetractsDeletedOrdersFromRollups() async throws {
        let s = try store()
        defer { s.close() }
        let events = Self.workload()
        _ = try await s.append(events)
        let cutoff = Self.t0 + 86_400_000_000
        _ = try await s.deleteEvents(before: cutoff)
        var facts: [String: OrderFacts] = [:]
        for e in events where e.isOrderEvent { facts[e.subject, default: OrderFacts(orderID: e.subject)].apply(e) }
        let kept = facts.values.filter { ($0.lastEventAt ?? 0) >= cutoff }
        let q = try KPIQuery.parse(from: "2026-11-19T00:00:00Z", to: "2026-11-25T00:00:00Z", by: nil, step: nil, now: 0)
        #expect(try KPIService(reader: s).document(q).json == KPIReport.compute(facts: kept, query: q, quantiles: .sketched).json)
    }
}
