import Testing
import WaybillModel
@testable import WaybillKPI
import WaybillStore
import WaybillTestSupport

/// `max_s` is exact in every window, whatever the arrival: a late event that retracts a bucket's
/// largest value leaves that row's maximum unknown, never guessed, and the query answers the bucket
/// from finer rows and facts. Runs the store's path: `KPIFactsRollup.update` on batches, rows as bytes,
/// `KPIService.document` reading them back.
struct MaxExactnessTests {
    static let start = t("2026-11-02T00:00:00Z")

    /// What a store does with the KPI rollup (WaybillSQLite's writer, in memory): drops a `(source, id)`
    /// seen before, folds each batch into its orders' facts in key order, and hands the transitions to
    /// the rollup, whose rows it keeps as bytes. Retention retracts the orders it deletes.
    struct MemoryStore: RollupReader {
        let rollup: KPIFactsRollup
        var seen: Set<String> = []
        var facts: [String: OrderFacts] = [:]
        var rows: [RollupKey: [UInt8]] = [:]

        init(widths: [Micros] = KPIFactsRollup.storeBucketWidths) { rollup = KPIFactsRollup(bucketWidths: widths) }

        mutating func append(_ batch: some Sequence<CloudEvent>) throws {
            var fresh: [String: [CloudEvent]] = [:]
            for e in batch where seen.insert(e.source + "\u{1}" + e.id).inserted { fresh[e.subject, default: []].append(e) }
            var transitions: [FactsTransition] = []
            for order in fresh.keys.sorted() {
                let old = facts[order]
                var f = old ?? OrderFacts(orderID: order)
                for e in fresh[order]! { f.apply(e) }
                facts[order] = f
                transitions.append(FactsTransition(old: old, new: f))
            }
            try write(transitions)
        }

        /// Deletes the orders last active before `cutoff` (`WaybillStore.deleteEvents`).
        mutating func retain(from cutoff: Micros) throws {
            let gone = facts.values.filter { $0.lastEventAt! < cutoff }.sorted { $0.orderID < $1.orderID }
            try write(gone.map { FactsTransition(old: $0, new: OrderFacts(orderID: $0.orderID)) })
            for f in gone { facts[f.orderID] = nil }
        }

        private mutating func write(_ transitions: [FactsTransition]) throws {
            let current = rows
            for (key, bytes) in try rollup.update(transitions, read: { current[$0] }) { rows[key] = bytes }
        }

        func rollupRows(dimension: String, in ranges: [Range<Micros>]) throws -> [(key: RollupKey, bytes: [UInt8])] {
            rows.filter { k, _ in k.dimension == dimension && ranges.contains { $0.contains(k.bucketStart) } }
                .sorted { $0.key < $1.key }.map { ($0.key, $0.value) }
        }

        func kpiFacts(in ranges: [Range<Micros>]) throws -> [OrderFacts] {
            func within(_ t: Micros?) -> Bool { t.map { t in ranges.contains { $0.contains(t) } } ?? false }
            return facts.values.filter { within($0.allocatedAt) || within($0.shippedAt) }.sorted { $0.orderID < $1.orderID }
        }

        /// Stored blocks that hold an accumulator whose maximum is not known.
        func rowsWithUnknownMax() throws -> Int {
            // The lifecycle step rows (`StepRollup`) beside the KPI blocks are not KPI blocks.
            try rows.filter { $0.key.dimension != StepRollup.dimension }.values.filter { try KPIRollupBlock.decode($0).contains { !$0.accumulator.maxIsExact } }.count
        }
    }

    /// Orders over six hours whose late events move the extremes of their buckets: per hour, the slowest
    /// allocation gets an earlier allocation (its delay shrinks: the maximum is retracted) and the fastest
    /// an earlier acceptance (its delay grows: the minimum is retracted, and its channel changes); the
    /// slowest shipment an earlier shipment, some orders an earlier release; some an allocation at the
    /// same time with a smaller id in another warehouse (same delay, other group). Plus random others.
    static func lateExtremes(seed: UInt64, orders n: Int = 240) -> (onTime: [CloudEvent], late: [CloudEvent]) {
        var rng = SplitMix64(seed: seed)
        let warehouses: [String?] = ["DC-EAST", "DC-WEST", "DC-NORTH", nil]
        let channels: [String?] = ["web", "edi", nil]
        struct Order {
            var id: String
            var accepted: Micros
            var delay: Micros
            var released: Micros
            var lag: Micros?
        }
        var orders: [Order] = []
        var onTime: [CloudEvent] = [], late: [CloudEvent] = []
        func data(_ d: [String: JSONValue?]) -> JSONValue { .object(d.mapValues { $0 ?? .null }) }
        for i in 0..<n {
            let o = "LX-\(1000 + i)"
            let accepted = start + Micros(i) * (6 * hour / Micros(n)) + Micros(rng.next() % UInt64(minute))
            // A heavy tail: each hour's maximum is one order's, hours above the rest.
            let delay = Micros(rng.unit() * rng.unit() * rng.unit() * Double(3 * hour))
            let released = accepted + delay + 5 * minute
            let lag: Micros? = rng.next() % 5 == 0 ? nil : Micros(rng.unit() * rng.unit() * Double(4 * hour))
            let wh = warehouses[Int(rng.next() % 4)]
            orders.append(Order(id: o, accepted: accepted, delay: delay, released: released, lag: lag))
            onTime.append(CloudEvent(id: "\(o)-a", source: "oms", type: "order.accepted", time: accepted, subject: o,
                                     data: data(["channel": channels[Int(rng.next() % 3)].map(JSONValue.string), "region": "EU",
                                                 "promised_ship_by": .string(RFC3339.format(accepted + 3 * hour)),
                                                 "lines": [["line": "1", "qty": 2]]])))
            onTime.append(CloudEvent(id: "\(o)-b", source: "wms", type: "order.allocated", time: accepted + delay, subject: o,
                                     data: data(["warehouse": wh.map(JSONValue.string), "lines": [["line": "1", "qty_allocated": .number(Double(1 + rng.next() % 2))]]])))
            onTime.append(CloudEvent(id: "\(o)-r", source: "wms", type: "order.released", time: released, subject: o, data: [:]))
            if let lag {
                onTime.append(CloudEvent(id: "\(o)-s", source: "wms", type: "order.shipped", time: released + lag, subject: o,
                                         data: data(["warehouse": wh.map(JSONValue.string)])))
            }
        }
        let byHour = Dictionary(grouping: orders.indices) { KPIRollup.bucketStart(orders[$0].accepted + orders[$0].delay, width: hour) }
        let slowest = Set(byHour.values.compactMap { $0.max { orders[$0].delay < orders[$1].delay } })
        let fastest = Set(byHour.values.compactMap { $0.min { orders[$0].delay < orders[$1].delay } })
        let shipped = Dictionary(grouping: orders.indices.filter { orders[$0].lag != nil }) { KPIRollup.bucketStart(orders[$0].released + orders[$0].lag!, width: hour) }
        let slowestShipment = Set(shipped.values.compactMap { $0.max { orders[$0].lag! < orders[$1].lag! } })
        for (i, o) in orders.enumerated() {
            let frac = 0.1 + 0.8 * rng.unit()
            if slowest.contains(i) || rng.next() % 4 == 0 {
                late.append(CloudEvent(id: "\(o.id)-b-early", source: "wms", type: "order.allocated",
                                       time: o.accepted + Micros(Double(o.delay) * frac), subject: o.id,
                                       data: data(["warehouse": warehouses[Int(rng.next() % 4)].map(JSONValue.string),
                                                   "lines": [["line": "1", "qty_allocated": 2]]])))
            }
            if fastest.contains(i) || rng.next() % 10 == 0 {
                late.append(CloudEvent(id: "\(o.id)-a-early", source: "oms", type: "order.accepted",
                                       time: o.accepted - Micros(1 + rng.next() % UInt64(30 * minute)), subject: o.id,
                                       data: data(["channel": channels[Int(rng.next() % 3)].map(JSONValue.string), "region": "US",
                                                   "lines": [["line": "1", "qty": 3]]])))
            }
            if rng.next() % 10 == 0 {
                // The same time as the allocation, a smaller id: the first allocation by the tie rule.
                late.append(CloudEvent(id: "\(o.id)-a9", source: "wms", type: "order.allocated", time: o.accepted + o.delay, subject: o.id,
                                       data: data(["warehouse": warehouses[Int(rng.next() % 4)].map(JSONValue.string),
                                                   "lines": [["line": "1", "qty_allocated": 2]]])))
            }
            if let lag = o.lag, slowestShipment.contains(i) || rng.next() % 5 == 0 {
                late.append(CloudEvent(id: "\(o.id)-s-early", source: "wms", type: "order.shipped",
                                       time: o.released + Micros(Double(lag) * frac), subject: o.id, data: ["warehouse": "DC-SOUTH"]))
            }
            if rng.next() % 10 == 0 {
                late.append(CloudEvent(id: "\(o.id)-r-early", source: "wms", type: "order.released",
                                       time: o.released - Micros(1 + rng.next() % UInt64(20 * minute)), subject: o.id, data: [:]))
            }
        }
        return (onTime.sorted { ($0.time, $0.id) < ($1.time, $1.id) }, late.shuffled(using: &rng))
    }

    enum Arrival: CaseIterable {
        /// Everything in time order, then the late events: each late event retracts what it replaces.
        case lateLast
        /// Everything shuffled, a quarter of it twice.
        case shuffledWithDuplicates
    }

    static func stream(_ w: (onTime: [CloudEvent], late: [CloudEvent]), _ arrival: Arrival, _ rng: inout SplitMix64) -> [CloudEvent] {
        switch arrival {
        case .lateLast:
            return w.onTime + w.late
        case .shuffledWithDuplicates:
            let all = w.onTime + w.late
            return (all + all.filter { _ in rng.next() % 4 == 0 }).shuffled(using: &rng)
        }
    }

    /// Appends in batches of 1 to `maxBatch` events.
    static func ingest(_ events: [CloudEvent], into store: inout MemoryStore, maxBatch: Int, _ rng: inout SplitMix64) throws {
        var i = 0
        while i < events.count {
            let n = Int(rng.next() % UInt64(maxBatch)) + 1
            try store.append(events[i..<min(i + n, events.count)])
            i += n
        }
    }

    /// Aligned and unaligned windows, every dimension, steps that cut hours and minutes.
    static func queries(_ rng: inout SplitMix64) throws -> [KPIQuery] {
        var out = [
            try KPIQuery(from: start - hour, to: start + day),
            try KPIQuery(from: start, to: start + 12 * hour, by: .warehouse, step: hour),
            try KPIQuery(from: start + 17 * minute + 5 * second, to: start + 9 * hour + 3 * minute, by: .channel, step: 90 * minute),
            try KPIQuery(from: start + 2 * hour + 30 * second, to: start + 3 * hour + 30 * second, by: .warehouse),
            try KPIQuery(from: start, to: start + 10 * hour, by: .region, step: 7 * minute),
        ]
        for _ in 0..<12 {
            let from = start - hour + Micros(rng.next() % UInt64(10 * hour))
            let to = from + 1 + Micros(rng.next() % UInt64(8 * hour))
            let by: KPIDimension? = [nil, .warehouse, .channel, .region][Int(rng.next() % 4)]
            let step: Micros? = rng.next() % 2 == 0 ? nil : [minute, 13 * minute, hour, 2 * hour][Int(rng.next() % 4)]
            out.append(try KPIQuery(from: from, to: to, by: by, step: step))
        }
        return out
    }

    /// Every `max_s` of a document (total, groups, series points), with where it is.
    static func maxima(_ d: KPIDocument) -> [String: Double?] {
        var out: [String: Double?] = [:]
        func add(_ k: KPIs, _ at: String) {
            out["\(at) allocation_delay"] = k.allocationDelay.maxSeconds
            out["\(at) shipment_lag"] = k.shipmentLag.maxSeconds
        }
        add(d.total, "total")
        for g in d.groups { add(g.kpis, "group \(g.value ?? "null")") }
        for s in d.series { for p in s.points { add(p.kpis, "series \(s.value ?? "null") @\(RFC3339.format(p.start))") } }
        return out
    }

    /// The store's document equals the one computed from the final facts: exactly for `max_s` (against
    /// the exact reference), and as a whole against the sketched reference (same sketch buckets, so the
    /// same quantiles; everything else exact).
    static func expectExact(_ store: MemoryStore, widths: [Micros], facts: some Collection<OrderFacts>, queries: [KPIQuery], _ context: String) throws {
        let service = KPIService(reader: store, bucketWidths: widths)
        for q in queries {
            let got = try service.document(q)
            let sketched = KPIReport.compute(facts: facts, query: q, quantiles: .sketched)
            let exact = KPIReport.compute(facts: facts, query: q, quantiles: .exact)
            let want = maxima(exact)
            let differing = maxima(got).filter { k, v in want[k].map { $0 != v } ?? true }.keys.sorted()
            #expect(differing.isEmpty, "\(context) \(q): max_s differs at \(differing.prefix(3)): \(differing.prefix(3).map { "\(String(describing: maxima(got)[$0]!)) vs \(String(describing: want[$0] ?? nil))" })")
            #expect(got == sketched, "\(context) \(q)")
            #expect(got.total.ordersAllocated == exact.total.ordersAllocated && got.total.fillRate == exact.total.fillRate
                && got.total.allocationDelay.meanSeconds == exact.total.allocationDelay.meanSeconds, "\(context) \(q)")
        }
    }

    /// Property: late events that retract bucket maxima and minima, in shuffled and duplicated arrival,
    /// in batches of any size, for every tier layout: every document equals the reference from the facts,
    /// `max_s` exactly; after retention too.
    @Test(arguments: [UInt64(1), 2, 3])
    func maxIsExactAfterLateEventsRetractExtremes(_ seed: UInt64) throws {
        let w = Self.lateExtremes(seed: seed)
        let reference = OrderFacts.fold(w.onTime + w.late)
        var rng = SplitMix64(seed: seed &* 7919)
        let queries = try Self.queries(&rng)
        for widths: [Micros] in [KPIFactsRollup.storeBucketWidths, [hour], [6 * hour, 15 * minute, minute]] {
            for arrival in Arrival.allCases {
                var store = MemoryStore(widths: widths)
                try Self.ingest(Self.stream(w, arrival, &rng), into: &store, maxBatch: 40, &rng)
                #expect(store.facts == reference)
                let context = "seed \(seed) widths \(widths.map { $0 / second }) \(arrival)"
                try Self.expectExact(store, widths: widths, facts: reference.values, queries: queries, context)
                // Retention retracts the orders last active before the cutoff, the extremes among them.
                let cutoff = Self.start + 3 * hour
                try store.retain(from: cutoff)
                try Self.expectExact(store, widths: widths, facts: reference.values.filter { $0.lastEventAt! >= cutoff }, queries: queries,
                                     context + " after retention")
            }
        }
    }

    /// The same events in different arrival orders and batches give byte-identical documents.
    @Test func documentsAreByteIdenticalInAnyArrivalOrder() throws {
        let w = Self.lateExtremes(seed: 11)
        var rng = SplitMix64(seed: 5)
        let queries = try Self.queries(&rng)
        var first: [String]?
        for round in 0..<6 {
            var store = MemoryStore()
            let arrival: Arrival = round % 2 == 0 ? .lateLast : .shuffledWithDuplicates
            try Self.ingest(Self.stream(w, arrival, &rng), into: &store, maxBatch: [1, 7, 50, 400, 3, 1_000][round], &rng)
            let service = KPIService(reader: store)
            let texts = try queries.map { try service.document($0).json.jsonString }
            if let first {
                for (q, (a, b)) in zip(queries, zip(first, texts)) { #expect(a == b, "round \(round) \(arrival), query \(q)") }
            } else {
                first = texts
            }
        }
    }

    /// The workload above does retract maxima: some rows end with a maximum they cannot know, and the
    /// documents stay exact through them. With hours only, an hour row that lost its maximum is answered
    /// from the facts; with hours and minutes, the writer learns an hour's maximum back from its minute rows
    /// where they tell it, and a query answers a minute that lost its own from the facts.
    @Test func lateRetractionsLeaveRowsWithAnUnknownMaximum() throws {
        let w = Self.lateExtremes(seed: 1)
        let q = try KPIQuery(from: Self.start, to: Self.start + 6 * hour)
        func unknown(_ store: MemoryStore, _ dimension: String) throws -> [RollupKey] {
            try store.rollupRows(dimension: dimension, in: [q.window]).filter {
                try KPIRollupBlock.decode($0.bytes).contains { !$0.accumulator.maxIsExact }
            }.map(\.key)
        }
        var hours = MemoryStore(widths: [hour])
        var rng = SplitMix64(seed: 2)
        try Self.ingest(w.onTime, into: &hours, maxBatch: 40, &rng)
        #expect(try hours.rowsWithUnknownMax() == 0, "rows that only ever gained values know their maximum")
        try Self.ingest(w.late, into: &hours, maxBatch: 40, &rng)
        let unknownHours = try unknown(hours, "total@3600s")
        #expect(!unknownHours.isEmpty)
        let plan = q.rollupPlan(bucketWidths: [hour]).deferring(unknownHours.map(\.bucketStart), tier: 0)
        for k in unknownHours {
            #expect(!plan.inRollups(KPIRollupKey(dimension: nil, group: nil, bucketStart: k.bucketStart, bucketWidth: hour)))
            #expect(plan.inFacts(k.bucketStart) && plan.inFacts(k.bucketStart + hour - 1))
        }
        try Self.expectExact(hours, widths: [hour], facts: hours.facts.values, queries: [q], "hours only")

        var tiers = MemoryStore()
        try Self.ingest(w.onTime + w.late, into: &tiers, maxBatch: 40, &rng)
        let unknownMinutes = try unknown(tiers, "total@60s")
        #expect(!unknownMinutes.isEmpty)
        #expect(try unknown(tiers, "total@3600s").count < unknownHours.count, "hours learn their maximum from their minutes")
        try Self.expectExact(tiers, widths: KPIFactsRollup.storeBucketWidths, facts: tiers.facts.values, queries: [q], "hours and minutes")
    }
}
