import Foundation
import WaybillModel
import WaybillStore

/// The write path. Each step is idempotent and every step is redone for every event of a call, fresh or
/// duplicate, so a call that failed halfway and is retried (its events then answered as duplicates)
/// still completes the links and facts of the first try.
extension ClickHouseStore {
    /// Subjects per `IN (...)` list, so that statements stay well under ClickHouse's query size limit.
    static let chunk = 1_000

    public func append(_ events: [CloudEvent]) async throws -> AppendResult {
        if events.isEmpty { return AppendResult() }
        return try await write(events: events.count) {
            // 1. Which (source, id) are stored already (under the same subjects).
            var stored = Set<String>()
            let subjects = Array(Set(events.map(\.subject))).sorted()
            // The chunks' reads at once: one round trip for the whole call.
            let statements = subjects.chunked(Self.chunk).map { "SELECT source, id FROM \(t.table("events")) WHERE subject IN \(SQL.list($0))" }
            for rows in try await queryAllAsync(statements) {
                for r in rows { stored.insert(Self.pairKey(r["source"]?.stringValue ?? "", r["id"]?.stringValue ?? "")) }
            }
            var result = AppendResult()
            var rows = RowWriter()
            var fresh: [String: [CloudEvent]] = [:]
            for e in events {
                let k = Self.pairKey(e.source, e.id)
                guard stored.insert(k).inserted else {
                    result.duplicates += 1
                    continue
                }
                result.accepted += 1
                if e.isOrderEvent { fresh[e.subject, default: []].append(e) }
                rows.begin()
                rows.int("time", e.time)
                rows.str("subject", e.subject)
                rows.str("source", e.source)
                rows.str("id", e.id)
                rows.str("type", e.type)
                rows.str("trace_id", e.traceID ?? "")
                rows.str("raw", String(decoding: e.raw, as: UTF8.self))
                rows.end()
            }
            // 2. The events (synchronously on their shards), while 3. the link edges go in beside them.
            let eventRows = rows
            async let eventsStored: Void = insert("events", eventRows)
            // 3. Link edges, both ways (a re-sent edge is a copy the merges drop).
            var edges = RowWriter()
            for e in events where e.data?["links"] != nil {
                for l in e.links where l != e.subject {
                    for (a, b) in [(e.subject, l), (l, e.subject)] {
                        edges.begin()
                        edges.str("a", a)
                        edges.str("b", b)
                        edges.end()
                    }
                }
            }
            try await insert("links", edges)
            try await eventsStored
            // 4. The facts of every order the call touched, refolded from everything stored.
            let orders = Set(events.filter(\.isOrderEvent).map(\.subject))
            if !orders.isEmpty { try await refoldFacts(Array(orders).sorted(), fresh: fresh) }
            return result
        }
    }

    static func pairKey(_ source: String, _ id: String) -> String { source + "\u{0}" + id }

    /// Recomputes the facts of `orders` from their stored order events (each `(source, id)` once) and
    /// the facts of events retention deleted, and writes them as new versions.
    ///
    /// Shortcut: this process caches the facts it last wrote for an order with the number of distinct
    /// stored events they fold. When the stored number is now that plus the order's `fresh` events of
    /// this call, the stored set is exactly the cached one and the fresh ones (no other writer added
    /// any), so the cached facts with the fresh events applied are the refold, without reading the
    /// events back. Otherwise the order is refolded from the stored events.
    func refoldFacts(_ orders: [String], fresh: [String: [CloudEvent]]) async throws {
        // Chunks hold different orders: they are refolded at once.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for part in orders.chunked(Self.chunk) {
                var mine: [String: [CloudEvent]] = [:]
                for o in part { if let e = fresh[o] { mine[o] = e } }
                group.addTask { try await self.refoldChunk(Array(part), fresh: mine) }
            }
            try await group.waitForAll()
        }
    }

    func refoldChunk(_ part: [String], fresh: [String: [CloudEvent]]) async throws {
        do {
            var storedCount: [String: Int] = [:]
            // The stored count of each order's distinct events.
            for r in try await queryAsync("SELECT subject, count() AS n FROM (SELECT subject, source, id FROM \(t.table("events")) "
                                          + "WHERE subject IN \(SQL.list(part)) AND startsWith(type, 'order.') GROUP BY subject, source, id) GROUP BY subject") {
                if let s = r["subject"]?.stringValue { storedCount[s] = Int(r["n"]?.int64 ?? 0) }
            }
            var facts: [String: OrderFacts] = [:]
            var previous: [OrderFacts] = []
            var refold: [String] = []
            for o in part {
                let add = fresh[o] ?? []
                if let c = factsCache.get(o), c.inTable + add.count == storedCount[o] ?? 0 {
                    var f = c.facts
                    for e in add { f.apply(e) }
                    facts[o] = f
                    previous.append(c.facts)
                } else if !add.isEmpty, add.count == storedCount[o] ?? 0, factsCache.get(o) == nil {
                    // Every stored event of the order is one of this call's (a new order): the fold of
                    // them is the refold, without reading them back. Such an order has no base either
                    // (`facts_base`): an order keeps a base only while it has stored events after the cut.
                    var f = OrderFacts(orderID: o)
                    for e in add { f.apply(e) }
                    facts[o] = f
                } else {
                    refold.append(o)
                }
            }
            if !refold.isEmpty {
                // The newest stored facts (whose rollup buckets change too) and the stored events, in parallel.
                let beforeSQL = "SELECT facts FROM \(t.table("orders")) WHERE order_id IN \(SQL.list(refold)) ORDER BY order_id, ver DESC LIMIT 1 BY order_id"
                let eventsSQL = "SELECT source, id, type, time, subject, raw FROM \(t.table("events")) "
                    + "WHERE subject IN \(SQL.list(refold)) AND startsWith(type, 'order.') LIMIT 1 BY subject, source, id"
                let baseSQL = "SELECT order_id, argMax(facts, ver) AS facts FROM \(t.table("facts_base")) WHERE order_id IN \(SQL.list(refold)) GROUP BY order_id"
                async let before = queryAsync(beforeSQL)
                async let rows = queryAsync(eventsSQL)
                async let bases = queryAsync(baseSQL)
                // The facts of events retention deleted (orders that outlived a cut), folded first.
                var folded: [String: OrderFacts] = [:]
                for r in try await bases {
                    if let id = r["order_id"]?.stringValue, let f = Self.facts(r) { folded[id] = f }
                }
                for r in try await rows {
                    guard let e = Self.event(r) else { continue }
                    folded[e.subject, default: OrderFacts(orderID: e.subject)].apply(e)
                }
                for (o, f) in folded { facts[o] = f }
                previous += try await before.compactMap(Self.facts)
            }
            try await writeFacts(Array(facts.values), previous: previous)
            for (o, f) in facts {
                let fromBase = f.eventCount - (storedCount[o] ?? 0)
                // Cached only when the count is consistent (a base, if any, accounts for the rest).
                if fromBase >= 0 { factsCache.put(o, FactsCache.Entry(facts: f, inTable: storedCount[o] ?? 0)) }
            }
        }
    }

    /// Writes facts rows (and first their rollup-index rows, so a reader that sees a version also finds
    /// it in the index), then marks the rollup buckets of the new and the `previous` facts changed
    /// (`rollup_dirty`), after the facts are stored: a cached bucket computed before is then older than
    /// the mark and is recomputed (`rollupRows`).
    func writeFacts(_ all: [OrderFacts], previous: [OrderFacts] = []) async throws {
        guard !all.isEmpty else { return }
        let buckets = try all.map(rollupBuckets)
        var changed = Set<RollupKey>()
        for b in buckets { changed.formUnion(b) }
        for f in previous { changed.formUnion(try rollupBuckets(f)) }
        // Marked before as well, beside the index: every bucket that holds orders has a mark, so the
        // marks list the buckets (`rollupRows`) even when a writer dies before its second marks.
        let before = Self.dirtyRows(changed, at: currentMicros())
        async let marked: Void = insert("rollup_dirty", before)
        try await insert("rollup_keys", try rollupKeyRows(all, buckets: buckets))
        try await marked
        var rows = RowWriter()
        for f in all { Self.factsRow(&rows, f) }
        try await insert("orders", rows)
        try await insert("rollup_dirty", Self.dirtyRows(changed, at: currentMicros()))
    }

    static func dirtyRows(_ keys: some Sequence<RollupKey>, at: Micros) -> RowWriter {
        var marks = RowWriter()
        for k in keys {
            marks.begin()
            marks.str("dim", k.dimension)
            marks.int("bucket", k.bucketStart)
            marks.int("at", at)
            marks.end()
        }
        return marks
    }

    /// The mark that invalidates every cached bucket.
    static let everyBucket = RollupKey(dimension: "*", group: nil, bucketStart: 0)

    /// Marks every cached rollup bucket changed (retention, a new rollup layout).
    func markAllRollupsChanged() async throws {
        try await insert("rollup_dirty", Self.dirtyRows([Self.everyBucket], at: currentMicros()))
    }

    static func factsRow(_ rows: inout RowWriter, _ f: OrderFacts) {
        rows.begin()
        rows.str("order_id", f.orderID)
        rows.uint("ver", UInt64(f.eventCount))
        rows.optInt("state", f.state.map { Int64($0.rawValue) })
        rows.optInt("state_since", f.stateSince)
        rows.int("first_time", f.firstEventAt ?? 0)
        rows.int("last_time", f.lastEventAt ?? 0)
        rows.int("event_count", Int64(f.eventCount))
        rows.optStr("channel", f.channel)
        rows.optStr("region", f.region)
        rows.optStr("alloc_wh", f.allocationWarehouse)
        rows.optStr("ship_wh", f.shipmentWarehouse)
        for s in Stage.allCases { rows.optInt(ClickHouseSchema.stageColumn(s), Self.stageTime(f, s)) }
        rows.strings("types", f.types.sorted())
        rows.strings("sources", f.sources.sorted())
        rows.str("facts", String(decoding: f.storageBytes, as: UTF8.self))
        rows.end()
    }

    /// The time of a stage as the SQLite engine's columns keep it (the first accepted, allocation,
    /// release and shipment; the earliest event of the other stages).
    static func stageTime(_ f: OrderFacts, _ s: Stage) -> Micros? {
        switch s {
        case .accepted: return f.acceptedAt
        case .allocated: return f.allocatedAt
        case .released: return f.releasedAt
        case .shipped: return f.shippedAt
        default: return f.stageTimes[s]
        }
    }

    /// An event from a row of `events` (`source, id, type, time, subject, raw`, optionally `trace_id`).
    static func event(_ r: JSONValue) -> CloudEvent? {
        guard let id = r["id"]?.stringValue, let source = r["source"]?.stringValue, let type = r["type"]?.stringValue,
              let time = r["time"]?.int64, let subject = r["subject"]?.stringValue, let raw = r["raw"]?.stringValue else { return nil }
        let bytes = Array(raw.utf8)
        let data = (try? JSONParser.parse(bytes))?["data"]
        let trace = r["trace_id"]?.stringValue
        return CloudEvent(id: id, source: source, type: type, time: time, subject: subject,
                          traceID: trace?.isEmpty == false ? trace : nil, data: data.flatMap { $0.isNull ? nil : $0 }, raw: bytes)
    }

    // MARK: Spans

    public func appendSpans(_ spans: [Span]) async throws -> AppendResult {
        if spans.isEmpty { return AppendResult() }
        return try await write(events: spans.count) {
            var stored = Set<String>()
            for part in Array(Set(spans.map(\.traceID))).sorted().chunked(Self.chunk) {
                for r in try await queryAsync("SELECT trace_id, span_id FROM \(t.table("spans")) WHERE trace_id IN \(SQL.list(part))") {
                    stored.insert(Self.pairKey(r["trace_id"]?.stringValue ?? "", r["span_id"]?.stringValue ?? ""))
                }
            }
            var result = AppendResult()
            var rows = RowWriter(), keys = RowWriter()
            for s in spans {
                guard stored.insert(Self.pairKey(s.traceID, s.spanID)).inserted else {
                    result.duplicates += 1
                    continue
                }
                result.accepted += 1
                rows.begin()
                rows.str("trace_id", s.traceID)
                rows.str("span_id", s.spanID)
                rows.int("start", s.start)
                rows.str("body", s.storageJSON.jsonString)
                rows.end()
                if let key = SpanCorrelation.key(of: s, keys: options.correlationKeys) {
                    keys.begin()
                    keys.str("key", key)
                    keys.str("trace_id", s.traceID)
                    keys.int("start", s.start)
                    keys.end()
                }
            }
            // Keys first: a span is never visible without the join that makes it part of an order.
            try await insert("span_keys", keys)
            try await insert("spans", rows)
            return result
        }
    }

    // MARK: Rollup index

    /// Makes `rollup_keys` hold this rollup's buckets for every order: rebuilt from the stored facts when
    /// the store was last written with another rollup or none (`FactsRollup.layout`). Blocking (at open).
    func prepareRollupIndex() throws {
        let wanted = rollup?.layout ?? ""
        do {
            let current = try ClickHouseClient.rows(client.sendBlocking(
                "SELECT value FROM \(t.table("meta")) WHERE key = 'rollup_layout' ORDER BY ver DESC LIMIT 1 FORMAT JSONEachRow"))
                .first?["value"]?.stringValue
            guard current != wanted else { return }
            if rollup != nil {
                for n in nodes { _ = try client.sendBlocking("TRUNCATE TABLE \(t.local("rollup_keys"))", only: n) }
                var after = ""
                while true {
                    let rows = try ClickHouseClient.rows(client.sendBlocking(
                        "SELECT order_id, facts FROM \(latestOrders("order_id > \(SQL.quote(after))")) ORDER BY order_id LIMIT 20000 FORMAT JSONEachRow"))
                    guard let last = rows.last?["order_id"]?.stringValue else { break }
                    after = last
                    // Only the index: the facts rows are current already.
                    let facts = rows.compactMap(Self.facts)
                    let buckets = try facts.map(rollupBuckets)
                    let keys = try rollupKeyRows(facts, buckets: buckets)
                    if !keys.isEmpty { _ = try client.sendBlocking("INSERT INTO \(t.table("rollup_keys")) FORMAT JSONEachRow", rows: keys.bytes) }
                    let marks = Self.dirtyRows(Set(buckets.joined()), at: currentMicros())
                    if !marks.isEmpty { _ = try client.sendBlocking("INSERT INTO \(t.table("rollup_dirty")) FORMAT JSONEachRow", rows: marks.bytes) }
                }
            }
            // Cached buckets of another layout must not be read as this one's.
            _ = try client.sendBlocking("INSERT INTO \(t.table("rollup_dirty")) FORMAT JSONEachRow",
                                        rows: Self.dirtyRows([Self.everyBucket], at: currentMicros()).bytes)
            var row = RowWriter()
            row.begin()
            row.str("key", "rollup_layout")
            row.str("value", wanted)
            row.uint("ver", Versions.next())
            row.end()
            _ = try client.sendBlocking("INSERT INTO \(t.table("meta")) FORMAT JSONEachRow", rows: row.bytes)
        } catch let e as ClickHouseError {
            throw e.storeError
        }
    }

    /// The rollup buckets (dimension and bucket start; no group) these facts fall in.
    func rollupBuckets(_ f: OrderFacts) throws -> Set<RollupKey> {
        guard let rollup else { return [] }
        var out = Set<RollupKey>()
        for (k, _) in try rollup.update([FactsTransition(old: nil, new: f)], read: { _ in nil }) {
            out.insert(RollupKey(dimension: k.dimension, group: nil, bucketStart: k.bucketStart))
        }
        return out
    }

    /// The rows of `rollup_keys` for these facts: each bucket of the rollup that the order's facts fall in.
    func rollupKeyRows(_ all: [OrderFacts], buckets: [Set<RollupKey>]? = nil) throws -> RowWriter {
        var keys = RowWriter()
        guard rollup != nil else { return keys }
        for (i, f) in all.enumerated() {
            for k in try buckets?[i] ?? rollupBuckets(f) {
                keys.begin()
                keys.str("dim", k.dimension)
                keys.int("bucket", k.bucketStart)
                keys.str("order_id", f.orderID)
                keys.end()
            }
        }
        return keys
    }

    // MARK: Retention

    public func deleteEvents(before cutoff: Micros) async throws -> Int {
        try await write {
            factsCache.clear()
            defer { factsCache.clear() }
            let counted = try await queryAsync("SELECT count() AS n FROM (SELECT source, id FROM \(t.table("events")) WHERE time < \(cutoff) GROUP BY source, id)")
            let removed = Int(counted.first?["n"]?.int64 ?? 0)
            // Orders that outlive the cut keep their facts whole: the facts of their deleted events become their base.
            let partial = try await queryAsync("SELECT order_id FROM \(latestOrders()) WHERE first_time < \(cutoff) AND last_time >= \(cutoff)")
                .compactMap { $0["order_id"]?.stringValue }
            for part in partial.chunked(Self.chunk) {
                var base: [String: OrderFacts] = [:]
                for r in try await queryAsync("SELECT order_id, argMax(facts, ver) AS facts FROM \(t.table("facts_base")) "
                                              + "WHERE order_id IN \(SQL.list(part)) GROUP BY order_id") {
                    if let id = r["order_id"]?.stringValue, let f = r["facts"]?.stringValue.flatMap({ OrderFacts(storageBytes: Array($0.utf8)) }) {
                        base[id] = f
                    }
                }
                for r in try await queryAsync("SELECT source, id, type, time, subject, raw FROM \(t.table("events")) WHERE subject IN \(SQL.list(part)) "
                                              + "AND startsWith(type, 'order.') AND time < \(cutoff) LIMIT 1 BY subject, source, id") {
                    guard let e = Self.event(r) else { continue }
                    base[e.subject, default: OrderFacts(orderID: e.subject)].apply(e)
                }
                var rows = RowWriter()
                for f in base.values {
                    rows.begin()
                    rows.str("order_id", f.orderID)
                    rows.uint("ver", UInt64(f.eventCount))
                    rows.str("facts", String(decoding: f.storageBytes, as: UTF8.self))
                    rows.end()
                }
                try await insert("facts_base", rows)
            }
            // Orders whose last event goes: every version of their facts (older versions of the others
            // may go too: the newest, which stays, is the one read) and their base.
            let gone = try await queryAsync("SELECT order_id FROM \(latestOrders()) WHERE last_time < \(cutoff)").compactMap { $0["order_id"]?.stringValue }
            let firstDay = cutoff >= 0 ? cutoff / ClickHouseSchema.day : (cutoff - ClickHouseSchema.day + 1) / ClickHouseSchema.day
            for (table, column) in [("events", "time"), ("spans", "start"), ("span_keys", "start")] {
                // Whole days go as partitions; the rest of the cut day by a delete.
                for n in nodes {
                    let parts = try ClickHouseClient.rows(await client.send(
                        "SELECT DISTINCT partition FROM system.parts WHERE database = \(SQL.quote(url.database)) "
                        + "AND table = \(SQL.quote(t.local(table).split(separator: ".").last.map(String.init) ?? table)) AND active FORMAT JSONEachRow", only: n))
                    for p in parts {
                        guard let text = p["partition"]?.stringValue, let day = Int64(text), day < firstDay else { continue }
                        _ = try await client.send("ALTER TABLE \(t.local(table)) DROP PARTITION \(day)", only: n)
                    }
                }
                let left = try await queryAsync("SELECT count() AS n FROM \(t.table(table)) WHERE \(column) < \(cutoff)")
                if (left.first?["n"]?.int64 ?? 0) > 0 {
                    try await onEveryNode("ALTER TABLE \(t.local(table)) DELETE WHERE \(column) < \(cutoff)")
                }
            }
            if !gone.isEmpty {
                try await onEveryNode("ALTER TABLE \(t.local("orders")) DELETE WHERE last_time < \(cutoff)")
                for part in gone.chunked(Self.chunk) {
                    try await onEveryNode("ALTER TABLE \(t.local("facts_base")) DELETE WHERE order_id IN \(SQL.list(part))")
                }
            }
            try await waitForMutations()
            try await markAllRollupsChanged()
            return removed
        }
    }

    /// Waits until every node has finished the deletes asked of it.
    func waitForMutations() async throws {
        let deadline = Date().addingTimeInterval(options.mutationTimeoutSeconds)
        for n in nodes {
            while true {
                let rows = try ClickHouseClient.rows(await client.send(
                    "SELECT count() AS n FROM system.mutations WHERE database = \(SQL.quote(url.database)) AND is_done = 0 FORMAT JSONEachRow", only: n))
                if (rows.first?["n"]?.int64 ?? 0) == 0 { break }
                if Date() > deadline { throw StoreError.engine("ClickHouse has not finished the retention deletes after \(Int(options.mutationTimeoutSeconds)) s") }
                try await Task.sleep(nanoseconds: 20_000_000)
            }
        }
    }
}

extension Array {
    func chunked(_ n: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: n).map { self[$0..<Swift.min($0 + n, count)] }
    }
}

/// The facts this process last wrote per order, with how many distinct stored events they fold
/// (`refoldFacts`). Bounded: emptied when full. Used only by the serialized write path.
final class FactsCache: @unchecked Sendable {
    struct Entry {
        var facts: OrderFacts
        var inTable: Int
    }

    private let lock = NSLock()
    private var entries: [String: Entry] = [:]
    let limit: Int

    init(limit: Int = 200_000) { self.limit = limit }

    func get(_ order: String) -> Entry? { lock.withLock { entries[order] } }

    func put(_ order: String, _ e: Entry) {
        lock.withLock {
            if entries.count >= limit { entries.removeAll(keepingCapacity: true) }
            entries[order] = e
        }
    }

    func clear() { lock.withLock { entries.removeAll() } }
}
