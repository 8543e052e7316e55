import Foundation
import WaybillKPI
import WaybillModel
import WaybillStore

/// `FactsRollup` (the store's side: rows kept, replaced, deleted and rebuilt as the rollup says) and
/// `RollupReader`, with a rollup of the suite's own and with the KPI engine's, whose documents must
/// equal the KPI reference computed from the orders' facts.
extension StoreConformance {
    static let rollupChecks: [Check] = [
        Check(name: "a rollup's rows are what its updates wrote, deleted by nil, read by bucket range, rebuilt for a new layout", body: rollupRows),
        Check(name: "KPI facts: every order allocated or shipped in the ranges, each once", body: kpiFactsInRanges),
        Check(name: "KPI documents equal the reference from facts for each bucket layout, late allocations retracted", body: kpiEqualsReference),
        Check(name: "KPI documents equal the reference after shuffled and duplicated arrival", body: kpiOrderIndependence),
        Check(name: "KPI max_s is exact after late events retract bucket maxima, and documents are byte-identical in any arrival order",
              body: kpiMaxAfterRetraction),
        Check(name: "KPI rollups are rebuilt for a store written with other or no rollups", body: kpiRebuilt),
        Check(name: "retention retracts deleted orders from the KPI rollups", body: kpiRetention),
    ] + drillChecks

    /// A rollup small enough to compute by hand: how many orders are in each state, by the bucket of
    /// their first event. A row whose count drops to zero is deleted.
    struct StateCounts: FactsRollup {
        let width: Micros
        var dimension: String { "state@\(width / 1_000_000)s" }
        var layout: String { "conformance-state-counts:\(width)" }

        func key(_ f: OrderFacts?) -> RollupKey? {
            guard let f, let state = f.state, let first = f.firstEventAt else { return nil }
            return RollupKey(dimension: dimension, group: state.name, bucketStart: first - first % width)
        }

        func update(_ transitions: [FactsTransition], read: (RollupKey) throws -> [UInt8]?) throws -> [(RollupKey, [UInt8]?)] {
            var delta: [RollupKey: Int] = [:]
            for t in transitions {
                if let k = key(t.old) { delta[k, default: 0] -= 1 }
                if let k = key(t.new) { delta[k, default: 0] += 1 }
            }
            return try delta.filter { $0.value != 0 }.sorted { $0.key < $1.key }.map { k, d in
                let n = (try read(k).flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0) + d
                return (k, n == 0 ? nil : Array(String(n).utf8))
            }
        }

        /// The rows a store must hold for these facts.
        func reference(_ facts: some Sequence<OrderFacts>) -> [RollupKey: Int] {
            var out: [RollupKey: Int] = [:]
            for f in facts { if let k = key(f) { out[k, default: 0] += 1 } }
            return out
        }

        func stored(_ store: Store, in ranges: [Range<Micros>]) throws -> [RollupKey: Int] {
            var out: [RollupKey: Int] = [:]
            for (k, bytes) in try store.rollupRows(dimension: dimension, in: ranges) {
                try StoreConformance.expect(out[k] == nil, "row \(k) read twice")
                out[k] = Int(String(decoding: bytes, as: UTF8.self)) ?? -1
            }
            return out
        }
    }

    static let kpiT0 = RFC3339.parse("2026-11-20T00:00:00Z")!
    static let hour: Micros = 3_600_000_000
    static let day: Micros = 86_400_000_000

    /// Orders over three days with several warehouses, late re-allocations and missing groups.
    static func kpiWorkload() -> [CloudEvent] {
        var out: [CloudEvent] = []
        var rng = SplitMix64(seed: 42)
        for i in 0..<300 {
            let o = "SO-\(i)"
            let t = kpiT0 + Micros(i) * 850_000_000
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

    static let kpiQueries: [(String?, String?, String?, String?)] = [
        ("2026-11-20T00:00:00Z", "2026-11-24T00:00:00Z", nil, nil),
        ("2026-11-20T00:00:00Z", "2026-11-24T00:00:00Z", "warehouse", "1d"),
        ("2026-11-20T03:17:00Z", "2026-11-22T19:05:30Z", "channel", "6h"),
        ("2026-11-21T00:00:00Z", "2026-11-21T00:30:00Z", "region", nil),
        // An alert window off the minute: minute rows inside, 30 s of facts at each end.
        ("2026-11-21T10:37:30Z", "2026-11-21T11:37:30Z", "warehouse", nil),
    ]

    /// The first place where a KPI document differs from the reference, nil where none. Everything is
    /// exact, `max_s` too, but the quantiles (`p95_s`, ...), which may be within the sketch's relative
    /// accuracy of the reference (`QuantileSketch`).
    static func kpiDifference(_ got: JSONValue, _ want: JSONValue, at path: String = "") -> String? {
        switch (got, want) {
        case (.object(let g), .object(let w)):
            guard g.keys.sorted() == w.keys.sorted() else { return "\(path): keys \(g.keys.sorted()), want \(w.keys.sorted())" }
            return w.keys.sorted().lazy.compactMap { kpiDifference(g[$0]!, w[$0]!, at: path + "." + $0) }.first
        case (.array(let g), .array(let w)):
            guard g.count == w.count else { return "\(path): \(g.count) elements, want \(w.count)" }
            return g.indices.lazy.compactMap { kpiDifference(g[$0], w[$0], at: "\(path)[\($0)]") }.first
        case (.number(let g), .number(let w)):
            let key = path.split(separator: ".").last ?? ""
            let sketched = key.hasPrefix("p") && key.hasSuffix("_s")
            if g == w || (sketched && abs(g - w) <= QuantileSketch.relativeAccuracy * abs(w) + 1e-9) { return nil }
            return "\(path): \(g), want \(w)"
        default:
            return got == want ? nil : "\(path): \(got.jsonString), want \(want.jsonString)"
        }
    }

    /// Every KPI query answered from the store's rows and edge facts equals the reference computed from
    /// `facts` (sketched quantiles, see `kpiDifference`; counts and fill rate also against exact quantiles).
    static func expectKPIDocuments(_ store: Store, widths: [Micros] = KPIFactsRollup.storeBucketWidths, equalTo facts: some Collection<OrderFacts>,
                                   _ context: String) throws {
        let service = KPIService(reader: store, bucketWidths: widths)
        for (from, to, by, step) in kpiQueries {
            let q = try KPIQuery.parse(from: from, to: to, by: by, step: step, now: 0)
            let stored = try service.document(q)
            let query = "\(context): query \(from ?? "") \(to ?? "") by \(by ?? "-") step \(step ?? "-")"
            let reference = KPIReport.compute(facts: facts, query: q, quantiles: .sketched)
            if let difference = kpiDifference(stored.json, reference.json) { throw Failure(description: "\(query): \(difference)") }
            let exact = KPIReport.compute(facts: facts, query: q, quantiles: .exact)
            for field in ["orders_allocated", "fill_rate"] {
                try expect(stored.total.json[field] == exact.total.json[field], "\(query): \(field) against exact quantiles")
            }
        }
    }

    /// Appends `events` in chunks of 1 to `maxChunk` events.
    static func appendInChunks(_ store: Store, _ events: [CloudEvent], maxChunk: Int, _ rng: inout SplitMix64) async throws {
        var i = 0
        while i < events.count {
            let n = Int(rng.next() % UInt64(maxChunk)) + 1
            _ = try await store.append(Array(events[i..<min(i + n, events.count)]))
            i += n
        }
    }

    static func rollupRows(_ make: Factory) async throws {
        let storage = try make()
        let events = kpiWorkload()
        let facts = referenceFacts(events).values
        let hourly = StateCounts(width: hour), daily = StateCounts(width: day)
        let all = [(kpiT0 - day)..<(kpiT0 + 5 * day)]
        do {
            let store = try storage.open(rollup: hourly)
            defer { store.close() }
            // Every order accepted first, so each bucket has `accepted` rows; then the rest, shuffled and some twice.
            var rng = SplitMix64(seed: 11)
            _ = try await store.append(events.filter { $0.type == "order.accepted" })
            try expect(try !hourly.stored(store, in: all).isEmpty, "rows are written by the append that changes the facts")
            var rest = events.filter { $0.type != "order.accepted" }
            rest += rest.filter { _ in rng.next() % 4 == 0 }
            rest.shuffle(using: &rng)
            try await appendInChunks(store, rest, maxChunk: 50, &rng)
            let want = hourly.reference(facts)
            try expect(try hourly.stored(store, in: all) == want, "rows after every update equal the rows of the final facts")
            try expect(!want.keys.contains { $0.group == "accepted" }, "rows whose update is nil are deleted")
            let ranges = [(kpiT0 + 3 * hour)..<(kpiT0 + 9 * hour), (kpiT0 + 30 * hour)..<(kpiT0 + 31 * hour)]
            let inRanges = want.filter { k, _ in ranges.contains { $0.contains(k.bucketStart) } }
            try expect(!inRanges.isEmpty && inRanges.count < want.count, "the ranges hold some of the rows")
            try expect(try hourly.stored(store, in: ranges) == inRanges, "rows whose bucket starts in one of the ranges")
            try expect(try store.rollupRows(dimension: "no-such-dimension", in: all).isEmpty, "no rows of another dimension")
        }
        do {
            let store = try storage.open(rollup: hourly)
            defer { store.close() }
            try expect(try hourly.stored(store, in: all) == hourly.reference(facts), "rows after reopening with the same layout")
        }
        let store = try storage.open(rollup: daily)
        defer { store.close() }
        try expect(try daily.stored(store, in: all) == daily.reference(facts), "opened with another layout, every row is rebuilt from the facts")
        try expect(try hourly.stored(store, in: all).isEmpty, "the rows of the previous layout are gone")
    }

    static func kpiFactsInRanges(_ make: Factory) async throws {
        let store = try fresh(make)
        defer { store.close() }
        let events = kpiWorkload()
        _ = try await store.append(events)
        let ranges = [(kpiT0 + 10 * hour)..<(kpiT0 + 20 * hour), (kpiT0 + 20 * hour)..<(kpiT0 + 30 * hour), (kpiT0 + 50 * hour)..<(kpiT0 + 51 * hour)]
        func within(_ t: Micros?) -> Bool { t.map { t in ranges.contains { $0.contains(t) } } ?? false }
        let want = referenceFacts(events).values.filter { within($0.allocatedAt) || within($0.shippedAt) }.sorted { $0.orderID < $1.orderID }
        let got = try store.kpiFacts(in: ranges).sorted { $0.orderID < $1.orderID }
        try expect(got.map(\.orderID) == want.map(\.orderID), "orders: got \(got.count), want \(want.count)")
        try expect(got == want, "the facts of each order")
        try expect(want.contains { ranges[0].contains($0.allocatedAt!) && within($0.shippedAt) }, "an order allocated in one range and shipped in another")
        try expect(try store.kpiFacts(in: []).isEmpty, "no ranges, no facts")
    }

    static func kpiEqualsReference(_ make: Factory) async throws {
        let events = kpiWorkload()
        let facts = referenceFacts(events).values
        // The store's hours and minutes, hours only, and three tiers.
        for widths: [Micros] in [KPIFactsRollup.storeBucketWidths, [hour], [6 * hour, 15 * 60_000_000, 60_000_000]] {
            let store = try make().open(rollup: KPIFactsRollup(bucketWidths: widths))
            defer { store.close() }
            // The earlier re-allocations arrive after the allocations they replace: their rows are retracted.
            _ = try await store.append(events.filter { !$0.id.hasSuffix("-al0") })
            _ = try await store.append(events.filter { $0.id.hasSuffix("-al0") })
            try expectKPIDocuments(store, widths: widths, equalTo: facts, "bucket widths \(widths)")
        }
    }

    static func kpiOrderIndependence(_ make: Factory) async throws {
        let events = kpiWorkload()
        let facts = referenceFacts(events).values
        var rng = SplitMix64(seed: 9)
        for round in 0..<3 {
            let store = try make().open(rollup: KPIFactsRollup())
            defer { store.close() }
            var stream = events + events.filter { _ in rng.next() % 4 == 0 }
            stream.shuffle(using: &rng)
            try await appendInChunks(store, stream, maxChunk: 50, &rng)
            try expectKPIDocuments(store, equalTo: facts, "round \(round)")
        }
    }

    /// Orders over four hours whose late events move their buckets' extremes: per hour, the slowest
    /// allocation gets an earlier allocation (its delay shrinks: the maximum is retracted), the fastest an
    /// earlier acceptance (its delay grows), the slowest shipment an earlier shipment; some orders an
    /// allocation at the same time with a smaller id in another warehouse (the same delay in another group).
    static func kpiMaxWorkload() -> (onTime: [CloudEvent], late: [CloudEvent]) {
        var rng = SplitMix64(seed: 1_957)
        let warehouses: [JSONValue] = ["DC-EAST", "DC-WEST", .null]
        var onTime: [CloudEvent] = [], late: [CloudEvent] = []
        var orders: [(id: String, accepted: Micros, delay: Micros, released: Micros, lag: Micros)] = []
        for i in 0..<160 {
            let o = "MX-\(i)"
            let accepted = kpiT0 + Micros(i) * 90_000_000 + Micros(rng.next() % 60_000_000)
            let delay = Micros(Double(2 * hour) * pow(Double(rng.next() % 1_000) / 1_000, 3))
            let released = accepted + delay + 300_000_000
            let lag = Micros(Double(3 * hour) * pow(Double(rng.next() % 1_000) / 1_000, 2))
            let wh = warehouses[i % 3]
            orders.append((o, accepted, delay, released, lag))
            onTime.append(CloudEvent(id: "\(o)-a", source: "oms", type: "order.accepted", time: accepted, subject: o,
                                     data: ["channel": i % 2 == 0 ? "web" : "edi", "region": "NE",
                                            "promised_ship_by": .string(RFC3339.format(accepted + 3 * hour)),
                                            "lines": [["line": 1, "sku": "A", "qty": 2]]]))
            onTime.append(CloudEvent(id: "\(o)-b", source: "allocation", type: "order.allocated", time: accepted + delay, subject: o,
                                     data: ["warehouse": wh, "lines": [["line": 1, "qty_allocated": .number(Double(1 + i % 2))]]]))
            onTime.append(CloudEvent(id: "\(o)-r", source: "wms", type: "order.released", time: released, subject: o, data: ["warehouse": wh]))
            onTime.append(CloudEvent(id: "\(o)-s", source: "wms", type: "order.shipped", time: released + lag, subject: o,
                                     data: ["warehouse": wh, "carrier": "UPS"]))
        }
        func hourOf(_ t: Micros) -> Micros { t - ((t % hour) + hour) % hour }
        let byHour = Dictionary(grouping: orders.indices) { hourOf(orders[$0].accepted + orders[$0].delay) }
        let slowest = Set(byHour.values.compactMap { $0.max { orders[$0].delay < orders[$1].delay } })
        let fastest = Set(byHour.values.compactMap { $0.min { orders[$0].delay < orders[$1].delay } })
        let byShipHour = Dictionary(grouping: orders.indices) { hourOf(orders[$0].released + orders[$0].lag) }
        let slowestShipment = Set(byShipHour.values.compactMap { $0.max { orders[$0].lag < orders[$1].lag } })
        for (i, o) in orders.enumerated() {
            if slowest.contains(i) || i % 5 == 0 {
                late.append(CloudEvent(id: "\(o.id)-b0", source: "allocation", type: "order.allocated", time: o.accepted + o.delay / 3, subject: o.id,
                                       data: ["warehouse": "DC-NORTH", "lines": [["line": 1, "qty_allocated": 2]]]))
            }
            if fastest.contains(i) {
                late.append(CloudEvent(id: "\(o.id)-a0", source: "oms", type: "order.accepted", time: o.accepted - 600_000_000, subject: o.id,
                                       data: ["channel": "store", "lines": [["line": 1, "sku": "A", "qty": 2]]]))
            }
            if i % 7 == 3 {
                // The same time as the allocation and a smaller id: the first allocation by the tie rule.
                late.append(CloudEvent(id: "\(o.id)-a9", source: "allocation", type: "order.allocated", time: o.accepted + o.delay, subject: o.id,
                                       data: ["warehouse": "DC-SOUTH", "lines": [["line": 1, "qty_allocated": 2]]]))
            }
            if slowestShipment.contains(i) || i % 6 == 0 {
                late.append(CloudEvent(id: "\(o.id)-s0", source: "wms", type: "order.shipped", time: o.released + o.lag / 4, subject: o.id,
                                       data: ["warehouse": "DC-SOUTH", "carrier": "UPS"]))
            }
        }
        return (onTime, late)
    }

    static let kpiMaxQueries: [(String?, String?, String?, String?)] = [
        ("2026-11-20T00:00:00Z", "2026-11-21T00:00:00Z", nil, nil),
        ("2026-11-20T00:00:00Z", "2026-11-20T12:00:00Z", "warehouse", "1h"),
        ("2026-11-20T00:20:00Z", "2026-11-20T07:40:30Z", "channel", "10m"),
        ("2026-11-20T01:37:30Z", "2026-11-20T02:37:30Z", "warehouse", nil),
        ("2026-11-20T00:00:00Z", "2026-11-20T08:00:00Z", nil, "1m"),
    ]

    /// Late events retract bucket maxima, in time order and in shuffled, duplicated arrival in chunks:
    /// every document equals the one computed from the facts through the same sketch, `max_s` exactly
    /// (and the exact reference's), and the same events give the same bytes whatever their arrival.
    /// Retention, which retracts whole orders, too.
    static func kpiMaxAfterRetraction(_ make: Factory) async throws {
        let w = kpiMaxWorkload()
        let all = w.onTime + w.late
        let facts = referenceFacts(all).values
        var rng = SplitMix64(seed: 23)
        var first: [String]?
        for round in 0..<4 {
            let store = try make().open(rollup: KPIFactsRollup())
            defer { store.close() }
            if round == 0 {
                _ = try await store.append(w.onTime)
                _ = try await store.append(w.late)
            } else {
                var stream = all + all.filter { _ in rng.next() % 4 == 0 }
                stream.shuffle(using: &rng)
                try await appendInChunks(store, stream, maxChunk: [1, 20, 300][round - 1], &rng)
            }
            let service = KPIService(reader: store)
            var texts: [String] = []
            for (from, to, by, step) in kpiMaxQueries {
                let q = try KPIQuery.parse(from: from, to: to, by: by, step: step, now: 0)
                let got = try service.document(q)
                let context = "round \(round): query \(from ?? "") \(to ?? "") by \(by ?? "-") step \(step ?? "-")"
                try expect(got.json == KPIReport.compute(facts: facts, query: q, quantiles: .sketched).json, "\(context): equals the facts' document")
                try expect(maxima(got.json) == maxima(KPIReport.compute(facts: facts, query: q, quantiles: .exact).json), "\(context): max_s exact")
                texts.append(got.json.jsonString)
            }
            if let first { try expect(texts == first, "round \(round): the same bytes as round 0") } else { first = texts }
            if round == 0 {
                let cutoff = kpiT0 + 2 * hour
                _ = try await store.deleteEvents(before: cutoff)
                try expectKPIDocuments(store, equalTo: facts.filter { $0.lastEventAt! >= cutoff }, "max workload after retention")
            }
        }
    }

    /// Every `max_s` of a KPI document's JSON, by its path.
    static func maxima(_ doc: JSONValue, at path: String = "") -> [String: JSONValue] {
        switch doc {
        case .object(let o):
            var out: [String: JSONValue] = [:]
            for (k, v) in o { out.merge(k == "max_s" ? [path + "." + k: v] : maxima(v, at: path + "." + k)) { a, _ in a } }
            return out
        case .array(let a):
            var out: [String: JSONValue] = [:]
            for (i, v) in a.enumerated() { out.merge(maxima(v, at: "\(path)[\(i)]")) { a, _ in a } }
            return out
        default:
            return [:]
        }
    }

    /// A store written without rollups, or with hour rows only, or with the current rollups and then
    /// without any (`waybill ingest --no-rollups` into a live store), gets every row of the current layout
    /// rebuilt when it is opened.
    static func kpiRebuilt(_ make: Factory) async throws {
        let events = kpiWorkload()
        let facts = referenceFacts(events).values
        let half = events.count / 2
        let histories: [(String, [(widths: [Micros]?, events: ArraySlice<CloudEvent>)])] = [
            ("without rollups", [(nil, events[...])]),
            ("with hour rows only", [([hour], events[...])]),
            ("with the current rollups, then without", [(KPIFactsRollup.storeBucketWidths, events[..<half]), (nil, events[half...])]),
        ]
        for (writtenWith, history) in histories {
            let storage = try make()
            for (widths, part) in history {
                let before = try storage.open(rollup: widths.map { KPIFactsRollup(bucketWidths: $0) })
                defer { before.close() }
                _ = try await before.append(Array(part))
            }
            for opening in ["rebuilt", "reopened"] {
                let store = try storage.open(rollup: KPIFactsRollup())
                defer { store.close() }
                let minuteRows = try store.rollupRows(dimension: "warehouse@60s", in: [kpiT0..<(kpiT0 + 4 * day)])
                try expect(!minuteRows.isEmpty, "written \(writtenWith), \(opening): minute rows")
                try expectKPIDocuments(store, equalTo: facts, "written \(writtenWith), \(opening)")
            }
        }
    }

    static func kpiRetention(_ make: Factory) async throws {
        let store = try make().open(rollup: KPIFactsRollup())
        defer { store.close() }
        let events = kpiWorkload()
        _ = try await store.append(events)
        let cutoff = kpiT0 + day
        _ = try await store.deleteEvents(before: cutoff)
        // An order's facts go with its last event (`WaybillStore.deleteEvents`).
        let kept = referenceFacts(events).values.filter { $0.lastEventAt! >= cutoff }
        try expectKPIDocuments(store, equalTo: kept, "after retention")
    }
}
