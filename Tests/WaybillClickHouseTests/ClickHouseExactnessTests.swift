import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillSQLite
import WaybillStore
import WaybillTestSupport
@testable import WaybillClickHouse

/// The same events into SQLite and into ClickHouse through two stores at once (two Waybill servers on
/// one database), each with half of them plus resends of the other half, shuffled and interleaved: the
/// traces, facts, searches, KPI documents and open deadlines must be the same.
@Suite struct ClickHouseExactnessTests {
    static let t0 = RFC3339.parse("2026-11-02T00:00:00Z")!
    static let minute: Micros = 60_000_000

    /// Many orders interleaved in time over three days: re-allocations that arrive late, shipments
    /// linked to their carrier keys (carrier events sometimes before the link), cancellations, missing groups.
    static func history(orders: Int, seed: UInt64) -> [CloudEvent] {
        var rng = SplitMix64(seed: seed)
        var out: [CloudEvent] = []
        for i in 0..<orders {
            let o = "SO-\(i)"
            let t = t0 + Micros(i) * 9 * minute + Micros(rng.next() % 600) * 1_000_000
            let qty = Double(1 + rng.next() % 6)
            let wh: JSONValue = i % 9 == 0 ? .null : .string(["DC-EAST", "DC-WEST", "DC-SOUTH"][i % 3])
            out.append(CloudEvent(id: "\(o)-a", source: "oms", type: "order.accepted", time: t, subject: o,
                                  data: ["channel": i % 2 == 0 ? "web" : "edi", "region": i % 5 == 0 ? .null : "NE",
                                         "promised_ship_by": .string(RFC3339.format(t + 4 * 60 * minute)),
                                         "lines": [["line": 1, "sku": "A", "qty": .number(qty)], ["line": 2, "sku": "B", "qty": 1]]]))
            if i % 11 == 5 {
                out.append(CloudEvent(id: "\(o)-c", source: "oms", type: "order.cancelled", time: t + 5 * minute, subject: o, data: ["reason": "customer"]))
                continue
            }
            let delay = Micros(rng.next() % 180) * minute
            out.append(CloudEvent(id: "\(o)-al", source: "allocation", type: "order.allocated", time: t + delay, subject: o,
                                  data: ["warehouse": wh, "lines": [["line": 1, "qty_allocated": .number(qty - Double(i % 2))], ["line": 2, "qty_allocated": 1]]]))
            if i % 4 == 0 {
                out.append(CloudEvent(id: "\(o)-al0", source: "allocation", type: "order.allocated", time: t + delay / 2, subject: o,
                                      data: ["warehouse": "DC-NORTH", "lines": [["line": 1, "qty_allocated": .number(qty)]]]))
            }
            if i % 3 == 2 { continue }
            let rel = t + delay + 10 * minute
            out.append(CloudEvent(id: "\(o)-r", source: "wms", type: "order.released", time: rel, subject: o, data: ["warehouse": wh]))
            let ship = rel + Micros(rng.next() % 400) * minute
            out.append(CloudEvent(id: "\(o)-s", source: "wms", type: "order.shipped", time: ship, subject: o,
                                  data: ["warehouse": wh, "carrier": "UPS", "links": [.string("shipment:1Z\(i)")]]))
            out.append(CloudEvent(id: "\(o)-d", source: "carrier", type: "shipment.delivered", time: ship + 600 * minute, subject: "shipment:1Z\(i)",
                                  data: ["links": [.string("pod:P\(i)")]]))
            if i % 2 == 0 {
                out.append(CloudEvent(id: "\(o)-i", source: "erp", type: "order.invoiced", time: ship + 900 * minute, subject: o,
                                      data: ["amount": 10, "links": [.string("invoice:I\(i)")]]))
            }
        }
        return out
    }

    static func kpiQueries() throws -> [KPIQuery] {
        try [
            ("2026-11-02T00:00:00Z", "2026-11-06T00:00:00Z", nil, nil),
            ("2026-11-02T00:00:00Z", "2026-11-06T00:00:00Z", "warehouse", "1d"),
            ("2026-11-02T05:17:00Z", "2026-11-04T19:05:30Z", "channel", "6h"),
            ("2026-11-03T10:37:30Z", "2026-11-03T11:37:30Z", "region", nil),
        ].map { try KPIQuery.parse(from: $0.0, to: $0.1, by: $0.2, step: $0.3, now: 0) }
    }

    /// The first difference between two KPI documents; quantiles (`p.._s`) may differ within the sketch's accuracy.
    static func difference(_ got: JSONValue, _ want: JSONValue, at path: String = "") -> String? {
        switch (got, want) {
        case (.object(let g), .object(let w)):
            guard g.keys.sorted() == w.keys.sorted() else { return "\(path): keys \(g.keys.sorted()) vs \(w.keys.sorted())" }
            return w.keys.sorted().lazy.compactMap { difference(g[$0]!, w[$0]!, at: path + "." + $0) }.first
        case (.array(let g), .array(let w)):
            guard g.count == w.count else { return "\(path): \(g.count) vs \(w.count) elements" }
            return g.indices.lazy.compactMap { difference(g[$0], w[$0], at: "\(path)[\($0)]") }.first
        case (.number(let g), .number(let w)):
            let key = path.split(separator: ".").last ?? ""
            let sketched = key.hasPrefix("p") && key.hasSuffix("_s")
            if g == w || (sketched && abs(g - w) <= QuantileSketch.relativeAccuracy * abs(w) + 1e-9) { return nil }
            return "\(path): \(g) vs \(w)"
        default:
            return got == want ? nil : "\(path): \(got.jsonString) vs \(want.jsonString)"
        }
    }

    /// The stores' synchronous readers run on test threads (`TestThreads`), not the cooperative pool.
    @Test func twoWritersWithResendsEqualSQLite() async throws {
        try await TestThreads.run { try await twoWriters() }
    }

    func twoWriters() async throws {
        guard let base = await TestClickHouse.url(test: "ClickHouseExactnessTests/twoWritersWithResendsEqualSQLite") else { return }
        let events = Self.history(orders: 360, seed: 7)
        var rng = SplitMix64(seed: 99)

        let sqlitePath = FileManager.default.temporaryDirectory.appendingPathComponent("wb-ch-exact-\(UUID().uuidString).db").path
        defer { try? FileManager.default.removeItem(atPath: sqlitePath) }
        let sqlite = try SQLiteStore(path: sqlitePath, rollup: KPIFactsRollup())
        defer { sqlite.close() }
        _ = try await sqlite.append(events.shuffled(using: &rng))

        // Two "servers": each half of the events, plus a resend of a quarter of the other half, shuffled.
        let url = TestClickHouse.fresh(base, "wbx")
        let a = try ClickHouseStore(url: url, rollup: KPIFactsRollup())
        let b = try ClickHouseStore(url: url, rollup: KPIFactsRollup())
        defer { a.close(); b.close() }
        var halves: [[CloudEvent]] = [[], []]
        for e in events {
            let side = Int(rng.next() % 2)
            halves[side].append(e)
            if rng.next() % 4 == 0 { halves[1 - side].append(e) }
        }
        // Resent batches: a tenth of each side again.
        for s in 0..<2 { halves[s] += halves[s].filter { _ in rng.next() % 10 == 0 } }
        for s in 0..<2 { halves[s].shuffle(using: &rng) }
        let seeds = (rng.next(), rng.next())
        let (first, second) = (halves[0], halves[1])
        async let ra = Self.appendInChunks(a, first, seed: seeds.0)
        async let rb = Self.appendInChunks(b, second, seed: seeds.1)
        let (resultA, resultB) = try await (ra, rb)
        #expect(resultA.accepted + resultA.duplicates == halves[0].count && resultB.accepted + resultB.duplicates == halves[1].count)

        // Events and orders counted once.
        let sStats = try sqlite.stats(), cStats = try a.stats()
        #expect(cStats.events == events.count && cStats.events == sStats.events)
        #expect(cStats.orders == sStats.orders && cStats.linkedKeys == sStats.linkedKeys)

        // Traces and facts, asked by order and by linked key, from either server.
        for i in stride(from: 0, to: 360, by: 7) {
            for key in ["SO-\(i)", "shipment:1Z\(i)", "pod:P\(i)"] {
                let want = try sqlite.trace(key: key)
                let got = try (i % 2 == 0 ? a : b).trace(key: key)
                #expect(got?.documentJSON.jsonString == want?.documentJSON.jsonString, "trace \(key)")
            }
            #expect(try a.facts(orderID: "SO-\(i)") == sqlite.facts(orderID: "SO-\(i)"), "facts SO-\(i)")
        }
        // Search, all of it and filtered, paged.
        let now = Self.t0 + 5 * 86_400_000_000
        for p in [[:], ["warehouse": "DC-EAST"], ["state": "shipped", "channel": "web"], ["stuck": "2h", "limit": "17"]] as [[String: String]] {
            let q = try OrderQuery(parameters: p, now: now)
            #expect(try b.searchOrders(q) == sqlite.searchOrders(q), "search \(p)")
        }
        // KPI documents.
        let sKPI = KPIService(reader: sqlite), cKPI = KPIService(reader: a)
        for q in try Self.kpiQueries() {
            let d = Self.difference(try cKPI.document(q).json, try sKPI.document(q).json)
            #expect(d == nil, "KPI \(q): \(d ?? "")")
        }
        // Alert inputs: open deadlines, live and replayed.
        for (after, expect) in [(Stage.accepted, Stage.allocated), (.allocated, .shipped), (.released, .shipped)] {
            try await sqlite.prepareDeadlines(after: after)
            try await a.prepareDeadlines(after: after)
            for replay in [false, true] {
                for grouping in [OverdueGrouping.none, .warehouse, .channel] {
                    let cutoff = Self.t0 + 86_400_000_000
                    let asOf = replay ? Self.t0 + 86_400_000_000 + 3_600_000_000 : now
                    let want = try sqlite.overdueOrders(after: after, expect: expect, cutoff: cutoff, asOf: asOf, replay: replay, groupBy: grouping, limit: 5)
                    let got = try a.overdueOrders(after: after, expect: expect, cutoff: cutoff, asOf: asOf, replay: replay, groupBy: grouping, limit: 5)
                    #expect(got == want, "overdue \(after)→\(expect) replay \(replay) by \(grouping)")
                }
            }
        }
    }

    static func appendInChunks(_ store: ClickHouseStore, _ events: [CloudEvent], seed: UInt64) async throws -> AppendResult {
        var rng = SplitMix64(seed: seed)
        var total = AppendResult()
        var i = 0
        while i < events.count {
            let n = Int(rng.next() % 80) + 1
            total = total + (try await store.append(Array(events[i..<min(i + n, events.count)])))
            i += n
        }
        return total
    }
}
