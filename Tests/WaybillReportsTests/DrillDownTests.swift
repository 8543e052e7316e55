import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillSQLite
import WaybillStore
import WaybillTestSupport

/// Drill-downs read from the store's drill rows (`kpi_drill`) give the same lists as ranking every order's
/// facts in the window, on an estate of interleaved orders with resends, re-allocations that arrive late,
/// stragglers and orders without groups; and a store from before the table gets its rows at open.
@Suite struct DrillDownTests {
    /// Only the facts reader of a store: `KPIService` over it ranks facts (the path before drill rows).
    struct FactsOnly: RollupReader {
        let store: SQLiteStore
        func rollupRows(dimension: String, in ranges: [Range<Micros>]) throws -> [(key: RollupKey, bytes: [UInt8])] {
            try store.rollupRows(dimension: dimension, in: ranges)
        }
        func kpiFacts(in ranges: [Range<Micros>]) throws -> [OrderFacts] { try store.kpiFacts(in: ranges) }
    }

    static let t0 = t("2026-11-02T00:00:00Z")

    /// `orders` orders over 14 days in arrival order: random delays, lags, promised dates and shortfalls;
    /// every 6th re-allocated by an event that arrives after later stages (it moves the order's delay and
    /// warehouse); every 10th event resent; every 8th order's shipment arrives a day late in arrival order.
    static func estate(orders: Int, seed: UInt64 = 7) -> [CloudEvent] {
        var rng = SplitMix64(seed: seed)
        var timed: [(arrival: Micros, event: CloudEvent)] = []
        func add(_ e: CloudEvent, arrival: Micros? = nil) { timed.append((arrival ?? e.time, e)) }
        for i in 0..<orders {
            let o = "SO-\(String(format: "%07d", (i * 7_919) % 9_999_991))"
            let start = t0 + Micros(rng.next() % UInt64(14 * day))
            let wh: JSONValue = i % 13 == 0 ? .null : .string(["DC-EAST", "DC-WEST", "DC-SOUTH", "DC-NORTH"][Int(rng.next() % 4)])
            let qty = Double(1 + rng.next() % 6)
            var accepted: [String: JSONValue] = ["channel": .string(["web", "edi", "store"][i % 3]),
                                                 "lines": [["line": 1, "sku": "A", "qty": .number(qty)], ["line": 2, "sku": "B", "qty": 2]]]
            if i % 11 != 0 { accepted["region"] = .string(["EU", "NA"][i % 2]) }
            if i % 17 != 3 { accepted["promised_ship_by"] = .string(RFC3339.format(start + Micros(2 + rng.next() % 20) * hour)) }
            add(CloudEvent(id: "\(o)-acc", source: "oms", type: "order.accepted", time: start, subject: o, data: .object(accepted)))
            // Whole minutes: many orders share a delay, so ties are broken by order id.
            let delay = Micros(rng.next() % 240) * minute
            let allocated = Double(Int(qty) - Int(rng.next() % 3))
            add(CloudEvent(id: "\(o)-alloc", source: "allocation", type: "order.allocated", time: start + delay, subject: o,
                           data: ["warehouse": wh, "lines": [["line": 1, "qty_allocated": .number(max(0, allocated))], ["line": 2, "qty_allocated": 2]]]))
            if i % 6 == 2 {
                add(CloudEvent(id: "\(o)-alloc0", source: "allocation", type: "order.allocated", time: start + delay / 3, subject: o,
                               data: ["warehouse": "DC-LATE", "lines": [["line": 1, "qty_allocated": .number(qty)]]]),
                    arrival: start + delay + 30 * hour)
            }
            if i % 5 == 4 { continue }
            let released = start + delay + Micros(rng.next() % 60) * minute
            add(CloudEvent(id: "\(o)-rel", source: "wms", type: "order.released", time: released, subject: o, data: ["warehouse": wh]))
            let shipped = released + Micros(rng.next() % 1_440) * minute
            add(CloudEvent(id: "\(o)-ship", source: "wms", type: "order.shipped", time: shipped, subject: o, data: ["warehouse": wh, "carrier": "UPS"]),
                arrival: i % 8 == 0 ? shipped + day : nil)
        }
        timed.sort { $0.arrival != $1.arrival ? $0.arrival < $1.arrival : $0.event.id < $1.event.id }
        var out: [CloudEvent] = []
        for (n, x) in timed.enumerated() {
            out.append(x.event)
            if n % 10 == 0 { out.append(x.event) }
        }
        return out
    }

    static func append(_ store: SQLiteStore, _ events: [CloudEvent]) async throws {
        var i = 0
        while i < events.count {
            _ = try await store.append(Array(events[i..<min(events.count, i + 997)]))
            i += 997
        }
    }

    static let metrics: [KPIMetric] = [.allocationDelay(.p95), .allocationDelay(.p50), .allocationDelay(.p99), .allocationDelay(.max),
                                       .allocationDelay(.mean), .shipmentLag(.p95), .shipmentLag(.p90), .fillRate, .orderFillRate, .onTimeRate]

    /// Every drill-down over several windows, groups and limits: drill rows against ranked facts.
    static func expectSame(_ store: SQLiteStore) throws -> Int {
        let fast = KPIService(reader: store), slow = KPIService(reader: FactsOnly(store: store))
        var compared = 0
        let windows: [(Micros, Micros, KPIDimension?)] = [
            (t0, t0 + 21 * day, nil),
            (t("2026-11-08T23:00:00Z"), t("2026-11-15T23:00:00Z"), .warehouse),  // an ISO week in Berlin
            (t0 + 3 * day + 17 * minute + 500_000, t0 + 5 * day + 3 * hour, .channel),
            (t0 + 6 * day, t0 + 6 * day + hour, .region),
            (t0 + 30 * day, t0 + 31 * day, nil),  // empty
        ]
        for (from, to, by) in windows {
            let q = try KPIQuery(from: from, to: to, by: by)
            var groups: [String??] = [.none]
            if by != nil { groups += [.some(nil), "DC-EAST", "DC-LATE", "store", "EU"] }
            for metric in metrics {
                for group in groups {
                    for limit in [1, 10, 20, 5_000] {
                        let got = try fast.explain(metric, q, group: group, limit: limit)
                        let want = try slow.explain(metric, q, group: group, limit: limit)
                        #expect(got == want, "\(metric) \(RFC3339.format(from)) by \(by?.rawValue ?? "-") group \(String(describing: group)) limit \(limit)")
                        if got != want { return compared }
                        compared += got.count
                    }
                }
            }
        }
        return compared
    }

    @Test func drillRowsEqualRankedFacts() async throws {
        let store = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
        defer { store.close() }
        try await Self.append(store, Self.estate(orders: 3_000))
        #expect(try store.drillRowsAvailable(layout: KPIFactsRollup.drillLayout))
        let compared = try Self.expectSame(store)
        #expect(compared > 10_000, "the comparison must see orders: \(compared)")
        // The week's p95 list: the orders at or above the exact p95, worst first.
        let week = try KPIQuery(from: t("2026-11-08T23:00:00Z"), to: t("2026-11-15T23:00:00Z"), by: .warehouse)
        let p95 = try KPIService(reader: store).explain(.allocationDelay(.p95), week, limit: 10)
        #expect(p95.count == 10 && p95.allSatisfy { $0.reason.contains("(p95 ") })
    }

    /// A store written before drill rows existed (schema 11, no `kpi_drill`) gets them from its facts at open.
    @Test func storeFromBeforeTheTableGetsRows() async throws {
        let path = temporaryDatabase()
        do {
            let store = try SQLiteStore(path: path, rollup: KPIFactsRollup())
            try await Self.append(store, Self.estate(orders: 800, seed: 3))
            store.close()
        }
        // Make it a store of schema 11: no table, no marker.
        let sql = "DROP TABLE kpi_drill; DELETE FROM meta WHERE key = 'kpi_drill_layout'; UPDATE meta SET value = '11' WHERE key = 'schema_version';"
        let python = "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()"
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", python, path, sql]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            print("SKIPPED storeFromBeforeTheTableGetsRows: python3 with sqlite3 not usable (exit \(p.terminationStatus))")
            return
        }
        let store = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        defer { store.close() }
        #expect(try store.drillRowsAvailable(layout: KPIFactsRollup.drillLayout))
        #expect(try Self.expectSame(store) > 1_000)
    }

    /// Without the KPI engine's rollup a session's writes would miss the rows: the store says so, and explain
    /// ranks facts until a session with the rollup rebuilds them.
    @Test func writerWithoutRollupMakesRowsStale() async throws {
        let path = temporaryDatabase()
        let events = Self.estate(orders: 600, seed: 11)
        do {
            let store = try SQLiteStore(path: path, rollup: KPIFactsRollup())
            try await Self.append(store, Array(events.prefix(events.count / 2)))
            store.close()
        }
        do {
            let store = try SQLiteStore(path: path)
            #expect(try !store.drillRowsAvailable(layout: KPIFactsRollup.drillLayout))
            try await Self.append(store, Array(events.suffix(from: events.count / 2)))
            store.close()
        }
        let store = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        defer { store.close() }
        #expect(try store.drillRowsAvailable(layout: KPIFactsRollup.drillLayout))
        #expect(try Self.expectSame(store) > 1_000)
    }
}
