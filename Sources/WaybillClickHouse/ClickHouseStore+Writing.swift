import Foundation
import WaybillModel
import WaybillStore

/// The write path. Each step is idempotent and every step is redone for every event of a call, fresh or
/// duplicate, so a call that failed halfway and is retried (its events then answered as duplicates)
/// still completes the links and facts of the first try.
extension ClickHouseStore {
    /// Subjects per `IN (...)` list, so that statements stay well under ClickHouse's query size limit.
    static let chunk = 1_000

    /// The time range condition on `events.time` for the subjects `subject \(set)` selects (`IN _keys`,
    /// `GLOBAL IN _keys`, `IN ('a','b')`): the days `event_days` lists for them (scalar subqueries, which
    /// ClickHouse replaces by their values before it chooses partitions).
    func eventDaysRange(set: String, _ table: (String) -> String) -> String {
        "time >= (SELECT min(day) FROM \(table("event_days")) WHERE subject \(set)) * \(ClickHouseSchema.day) "
            + "AND time < (SELECT max(day) + 1 FROM \(table("event_days")) WHERE subject \(set)) * \(ClickHouseSchema.day)"
    }

    static func dayOf(_ time: Micros) -> Micros {
        time >= 0 ? time / ClickHouseSchema.day : (time - ClickHouseSchema.day + 1) / ClickHouseSchema.day
    }

    /// Round trips of a call, each a set of statements sent at once, in two stages:
    /// stage A (one call at a time in this process, in arrival order):
    /// 1. the days of the call's events into `event_days` (before any of its events is stored, so a
    ///    reader that finds an event finds its day), beside the read of which `(source, id)` are stored;
    /// 2. the fresh events and their link edges;
    /// stage B (one call at a time, in the order the calls left stage A; the next call's stage A runs
    /// meanwhile):
    /// 3. the count of each touched order's distinct stored events, beside the rollup index and first
    ///    change marks of the facts the call is expected to produce (the cached facts with the call's
    ///    events that they do not fold yet); where the count equals what the cached facts fold plus
    ///    those events, no other writer added any and the expected facts are the refold; the other
    ///    orders are refolded from their stored events (one more round, and their index rows and marks);
    /// 4. the facts rows; 5. the change marks after them.
    /// Reads of events by subject go to the shard that holds the subjects, within their days.
    ///
    /// Two calls of this process overlap as two servers' calls may (stage B of one beside stage A of
    /// the next): a call's dup read starts after the previous call's events are stored, so a resend in
    /// the next call is found; the facts cache is read and written in stage B only, in call order; and
    /// since the previous call's refold may already have read this call's events, the cache keeps which
    /// events each order's facts fold (`FactsCache.Entry.keys`) and applies only the others.
    public func append(_ events: [CloudEvent]) async throws -> AppendResult {
        if events.isEmpty { return AppendResult() }
        let staged = try await write(events: events.count) { () -> Staged in
            // 1. The days (of every event of the call: a retried call completes what its first try began)
            // and which (source, id) are stored already (under the same subjects).
            var days = ShardedRows(shards, binary: true)
            var seenDays = Set<SubjectDay>()
            // The loops read the events' fields in place (`events[i].x`): a loop variable copies each
            // event, ten retains and releases (a tenth of the client's CPU went to such copies).
            for i in events.indices {
                let subject = events[i].subject, day = Self.dayOf(events[i].time)
                guard seenDays.insert(SubjectDay(subject: subject, day: day)).inserted else { continue }
                days.row(subject) { r in
                    r.str("subject", subject)
                    r.int("day", day)
                }
            }
            let dayRows = days
            async let daysStored: Void = insert("event_days", dayRows)
            var stored = Set<PairKey>()
            let subjects = Array(Set(events.map(\.subject))).sorted()
            // Only the stored rows whose id is one of the call's (the call's ids as a second external
            // table, `_ids`): a row with another id cannot be one of the call's `(source, id)`. Without
            // it the read returned every stored event of the call's subjects (112,421 rows for the 243,686
            // events of `bench/clickhouse.sh`'s file, against its 12,332 resends).
            let ids = events.withUnsafeBufferPointer { ev in
                var ids: [String] = []
                ids.reserveCapacity(ev.count)
                for i in ev.indices { ids.append(ev[i].id) }
                return ExternalTable(name: "_ids", ids)
            }
            let reads = routedByKeys(subjects, more: [ids]) { table, set in
                "SELECT source, id FROM \(table("events")) WHERE subject \(set) AND \(eventDaysRange(set: set, table)) "
                    + "AND id \(set.replacingOccurrences(of: ExternalKeys.name, with: ids.name))"
            }
            for body in try await queryAllAsync(reads, format: "RowBinary") {
                var r = RowBinaryReader(body)
                while !r.atEnd { stored.insert(PairKey(source: try r.string(), id: try r.string())) }
            }
            try await daysStored
            var staged = Staged()
            var orders = Set<String>()
            // Through the buffer: `events[i].isOrderEvent` (a computed property of an array element)
            // copied the whole event, ten retains and releases, a few percent of the client's CPU.
            let eventRows = events.withUnsafeBufferPointer { ev in
                var rows = ShardedRows(shards, binary: true)
                for i in ev.indices {
                    let subject = ev[i].subject, isOrder = ev[i].isOrderEvent
                    if isOrder { orders.insert(subject) }
                    guard stored.insert(PairKey(source: ev[i].source, id: ev[i].id)).inserted else {
                        staged.result.duplicates += 1
                        continue
                    }
                    staged.result.accepted += 1
                    if isOrder { staged.fresh[subject, default: []].append(i) }
                    rows.row(subject) { r in
                        r.int("time", ev[i].time)
                        r.str("subject", subject)
                        r.str("source", ev[i].source)
                        r.str("id", ev[i].id)
                        r.str("type", ev[i].type)
                        r.str("trace_id", ev[i].traceID ?? "")
                        r.bytes("raw", ev[i].raw)
                    }
                }
                return rows
            }
            staged.orders = orders.sorted()
            // Link edges, both ways (a re-sent edge is a copy the merges drop).
            let edgeRows = events.withUnsafeBufferPointer { ev in
                var edges = ShardedRows(shards, binary: true)
                for i in ev.indices where ev[i].data?["links"] != nil {
                    let subject = ev[i].subject
                    for l in ev[i].links where l != subject {
                        for (a, b) in [(subject, l), (l, subject)] {
                            edges.row(a) { r in
                                r.str("a", a)
                                r.str("b", b)
                            }
                        }
                    }
                }
                return edges
            }
            // 2. Events and edges at once, the events once every earlier call has counted its orders'
            // stored events (a count that included this call's would send those orders to the refold).
            async let edgesStored: Void = insert("links", edgeRows)
            if !eventRows.isEmpty { await pipeline.awaitCounted() }
            try await insert("events", eventRows)
            try await edgesStored
            // Stage B's place: taken while stage A is still held, so stage B runs in this order.
            staged.ticket = pipeline.ticket()
            return staged
        }
        // 3. to 5.
        try await pipeline.run(staged.ticket) {
            if !staged.orders.isEmpty {
                try await counted { try await settleFacts(staged.orders, events: events, fresh: staged.fresh) { pipeline.counted(staged.ticket) } }
            }
        }
        return staged.result
    }

    /// What stage A of `append` hands to stage B.
    struct Staged {
        var result = AppendResult()
        /// The order events of the call not stored before it, by order (indexes into the call's events).
        var fresh: [String: [Int]] = [:]
        /// Every order the call's events touch (duplicates included).
        var orders: [String] = []
        var ticket = 0
    }

    /// An event's `(source, id)` (a span's `(trace_id, span_id)`) as a set member, without building a string per event.
    struct PairKey: Hashable {
        let source: String
        let id: String
    }

    /// A subject and a day of its events (`event_days`).
    struct SubjectDay: Hashable {
        let subject: String
        let day: Micros
    }

    /// The key `FactsCache` keeps for an event folded into an order's facts (64 bits of its `(source, id)`).
    static func foldKey(_ source: String, _ id: String) -> UInt64 {
        var h = Hasher()
        h.combine(source)
        h.combine(id)
        return UInt64(bitPattern: Int64(h.finalize()))
    }

    /// Makes the newest facts of `orders` their refold from their stored order events (each `(source,
    /// id)` once) and the facts of events retention deleted, and writes them as new versions.
    ///
    /// Shortcut: this process caches the facts it last wrote for an order with the keys of the distinct
    /// stored events they fold. The expected facts are the cached ones with the call's `fresh` events
    /// they do not fold applied; when the number of stored rows of the order's events is the cached number
    /// plus those, the stored set is exactly the cached one and those (no other writer added any), so the
    /// expected facts are the refold, without reading the events back. Otherwise the order is refolded
    /// from the stored events. The index rows and first marks of the expected facts go beside the count.
    /// `afterCount` is called once the count is read (`TicketPipeline.counted`).
    func settleFacts(_ orders: [String], events: [CloudEvent], fresh: [String: [Int]], afterCount: () -> Void = {}) async throws {
        // The facts every touched order is expected to have: its cached facts with the fresh events they
        // do not fold applied, or, for an order this process has not seen, the fold of its fresh events.
        var expected: [String: (facts: OrderFacts, keys: [UInt64], added: Int)] = [:]
        var previous: [String: OrderFacts] = [:]
        expected.reserveCapacity(orders.count)
        // Through the buffer: `f.apply(events[i])` copied each event out of the array first.
        events.withUnsafeBufferPointer { ev in
            for o in orders {
                let add = fresh[o] ?? []
                if let c = factsCache.get(o) {
                    var f = c.facts, keys = c.keys, added = 0
                    for i in add {
                        let k = Self.foldKey(ev[i].source, ev[i].id)
                        guard !keys.contains(k) else { continue }
                        keys.append(k)
                        f.apply(ev[i])
                        added += 1
                    }
                    expected[o] = (f, keys, added)
                    previous[o] = c.facts
                } else if !add.isEmpty {
                    var f = OrderFacts(orderID: o)
                    for i in add { f.apply(ev[i]) }
                    expected[o] = (f, add.map { Self.foldKey(ev[$0].source, ev[$0].id) }, add.count)
                }
            }
        }
        let expectedFacts = expected.map { (order: $0.key, facts: $0.value.facts) }
        let (unindexed, marked) = try indexedBuckets(expectedFacts, written: previous)
        // 3. The index rows and first marks of the expected facts (an index row for a bucket the facts end
        // up outside costs only a read: buckets are computed from the orders' current facts), beside the
        // stored count of each order's distinct events, on the orders' shards, within their days. The
        // rows of buckets the facts this process last wrote for the order fall in are stored already
        // (a facts row is written only after its index rows), so only the others go.
        async let marksStored: Void = insertFirst("rollup_dirty", Self.dirtyRows(marked, at: currentMicros()))
        async let keysStored: Void = insert("rollup_keys", rollupKeyRows(expectedFacts.map(\.order), buckets: unindexed, shards: shards))
        // Rows, not distinct events: rows >= distinct >= the cached events plus this call's new ones (all
        // stored, and distinct), so rows equal to that sum mean distinct equals it, without deduplicating
        // (half the read's cost). Copies (a retried call, two servers storing one event at the same
        // instant) only send the order to the refold, which reads each event once.
        var storedCount: [String: Int] = [:]
        let counts = routedByKeys(orders) { table, set in
            "SELECT subject, count() AS n FROM \(table("events")) "
                + "WHERE subject \(set) AND \(eventDaysRange(set: set, table)) AND startsWith(type, 'order.') GROUP BY subject"
        }
        for body in try await queryAllAsync(counts, format: "RowBinary") {
            var r = RowBinaryReader(body)
            while !r.atEnd {
                let s = try r.string()
                storedCount[s] = Int(clamping: try r.uint64())
            }
        }
        afterCount()
        try await marksStored
        try await keysStored
        var facts: [String: (facts: OrderFacts, keys: [UInt64])] = [:]
        var refold: [String] = []
        for o in orders {
            guard let x = expected[o] else {
                refold.append(o)
                continue
            }
            // `keys` of the expected facts are the cached ones and the added ones (the cache is stage B's alone).
            let cachedKeys = previous[o] == nil ? nil : x.keys.count - x.added
            if let cachedKeys, cachedKeys + x.added == storedCount[o] ?? 0 {
                facts[o] = (x.facts, x.keys)
            } else if cachedKeys == nil, x.added == storedCount[o] ?? 0 {
                // Every stored event of the order is one of this call's (a new order): the fold of
                // them is the refold. Such an order has no base either (`facts_base`): an order keeps a
                // base only while it has stored events after the cut.
                facts[o] = (x.facts, x.keys)
            } else {
                refold.append(o)
            }
        }
        var changed = marked
        if !refold.isEmpty {
            var folded: [String: (facts: OrderFacts, keys: [UInt64])] = [:]
            var before: [OrderFacts] = []
            // The newest stored facts (whose rollup buckets change too), the stored events and the
            // bases, each chunk at once.
            try await withThrowingTaskGroup(of: ([OrderFacts], [String: (facts: OrderFacts, keys: [UInt64])]).self) { group in
                for part in refold.chunked(Self.chunk) {
                    group.addTask { try await self.refoldChunk(Array(part)) }
                }
                for try await (b, got) in group {
                    before += b
                    folded.merge(got) { a, _ in a }
                }
            }
            let all = folded.values.map(\.facts)
            let (buckets, more) = try touchedBuckets(all, old: before)
            async let marks: Void = insertFirst("rollup_dirty", Self.dirtyRows(more, at: currentMicros()))
            try await insert("rollup_keys", rollupKeyRows(all.map(\.orderID), buckets: buckets, shards: shards))
            try await marks
            changed.formUnion(more)
            for (o, f) in folded { facts[o] = f }
        }
        // 4. The facts, then 5. the marks after them.
        var rows = ShardedRows(shards, binary: true)
        for (f, _) in facts.values { rows.row(f.orderID) { r in Self.factsColumns(&r, f) } }
        try await insert("orders", rows)
        try await insertFirst("rollup_dirty", Self.dirtyRows(changed, at: currentMicros()))
        for (o, f) in facts { factsCache.put(o, FactsCache.Entry(facts: f.facts, keys: f.keys)) }
    }

    /// The refold of `part` from its stored order events and bases, with its newest stored facts, and
    /// the keys of the events folded (each stored `(source, id)` once; a base's events are not listed).
    func refoldChunk(_ part: [String]) async throws -> (previous: [OrderFacts], facts: [String: (facts: OrderFacts, keys: [UInt64])]) {
        let beforeSQL = "SELECT \(Self.factsHex()) FROM \(t.table("orders")) WHERE order_id IN \(SQL.list(part)) ORDER BY order_id, ver DESC LIMIT 1 BY order_id"
        let eventsSQL = "SELECT source, id, type, time, subject, raw FROM \(t.table("events")) "
            + "WHERE subject IN \(SQL.list(part)) AND startsWith(type, 'order.') LIMIT 1 BY subject, source, id"
        let baseSQL = "SELECT order_id, \(Self.factsHex("argMax(facts, ver)")) FROM \(t.table("facts_base")) WHERE order_id IN \(SQL.list(part)) GROUP BY order_id"
        async let before = queryAsync(beforeSQL)
        async let rows = queryAsync(eventsSQL)
        async let bases = queryAsync(baseSQL)
        // The facts of events retention deleted (orders that outlived a cut), folded first.
        var folded: [String: (facts: OrderFacts, keys: [UInt64])] = [:]
        for r in try await bases {
            if let id = r["order_id"]?.stringValue, let f = Self.facts(r) { folded[id] = (f, []) }
        }
        for r in try await rows {
            guard let e = Self.event(r) else { continue }
            folded[e.subject, default: (OrderFacts(orderID: e.subject), [])].facts.apply(e)
            folded[e.subject]!.keys.append(Self.foldKey(e.source, e.id))
        }
        return (try await before.compactMap(Self.facts), folded)
    }

    static func dirtyRows(_ keys: some Sequence<RollupKey>, at: Micros) -> RowWriter {
        var marks = RowWriter(binary: true)
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
        try await insertFirst("rollup_dirty", Self.dirtyRows([Self.everyBucket], at: currentMicros()))
    }

    /// The columns of an `orders` row (between `begin` and `end`).
    static func factsColumns(_ rows: inout RowWriter, _ f: OrderFacts) {
        rows.str("order_id", f.orderID)
        rows.uint("ver", UInt64(f.eventCount))
        rows.optInt8("state", f.state.map { Int8($0.rawValue) })
        rows.optInt("state_since", f.stateSince)
        rows.int("first_time", f.firstEventAt ?? 0)
        rows.int("last_time", f.lastEventAt ?? 0)
        rows.uint32("event_count", UInt32(clamping: f.eventCount))
        rows.optStr("channel", f.channel)
        rows.optStr("region", f.region)
        rows.optStr("alloc_wh", f.allocationWarehouse)
        rows.optStr("ship_wh", f.shipmentWarehouse)
        for s in Stage.allCases { rows.optInt(ClickHouseSchema.stageColumn(s), Self.stageTime(f, s)) }
        rows.strings("types", f.types.sorted())
        rows.strings("sources", f.sources.sorted())
        // Binary (about 200 bytes against 1,200 of JSON: a third of the bytes an ingest sent was facts).
        rows.blob("facts", OrderFactsBinary.encode(f))
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
            var stored = Set<PairKey>()
            for part in Array(Set(spans.map(\.traceID))).sorted().chunked(Self.chunk) {
                for r in try await queryAsync("SELECT trace_id, span_id FROM \(t.table("spans")) WHERE trace_id IN \(SQL.list(part))") {
                    stored.insert(PairKey(source: r["trace_id"]?.stringValue ?? "", id: r["span_id"]?.stringValue ?? ""))
                }
            }
            var result = AppendResult()
            var rows = RowWriter(), keys = RowWriter()
            for s in spans {
                guard stored.insert(PairKey(source: s.traceID, id: s.spanID)).inserted else {
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

    /// Makes `rollup_keys` hold this rollup's index keys for every order: rebuilt from the stored facts
    /// when the store was last written with another rollup or none, or with another index (`indexLayout`).
    /// Blocking (at open).
    func prepareRollupIndex() throws {
        let wanted = indexLayout
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
                        "SELECT order_id, \(Self.factsHex()) FROM \(latestOrders("order_id > \(SQL.quote(after))")) ORDER BY order_id LIMIT 20000 FORMAT JSONEachRow"))
                    guard let last = rows.last?["order_id"]?.stringValue else { break }
                    after = last
                    // Only the index: the facts rows are current already.
                    let facts = rows.compactMap(Self.facts)
                    let buckets = try facts.map(indexKeys)
                    let keys = rollupKeyRows(facts.map(\.orderID), buckets: buckets)
                    if !keys.isEmpty { _ = try client.sendBlocking("INSERT INTO \(t.table("rollup_keys")) \(keys.format)", rows: keys.bytes) }
                    let marks = Self.dirtyRows(Set(buckets.joined()), at: currentMicros())
                    if !marks.isEmpty { _ = try client.sendBlocking("INSERT INTO \(t.table("rollup_dirty")) \(marks.format)", rows: marks.bytes) }
                }
            }
            // Cached buckets of another layout must not be read as this one's.
            let all = Self.dirtyRows([Self.everyBucket], at: currentMicros())
            _ = try client.sendBlocking("INSERT INTO \(t.table("rollup_dirty")) \(all.format)", rows: all.bytes)
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

    /// What `rollup_keys` and `rollup_dirty` are written for (`meta`'s `rollup_layout`): the rollup's layout,
    /// and for the KPI engine's that they hold one key per slot (`KPIBucketKeys.indexKey`; a store
    /// indexed one key per bucket, before, is indexed again at open).
    var indexLayout: String {
        guard let rollup else { return "" }
        return bucketKeys == nil ? rollup.layout : rollup.layout + "/slots1"
    }

    /// The name `rollup_keys` and `rollup_dirty` hold a stored rollup dimension's buckets under.
    func indexDimension(_ dimension: String) -> String {
        bucketKeys?.indexName(dimension) ?? dimension
    }

    /// The index keys (`indexKeys(_:)`) of each of the `new` facts that the facts this process last wrote
    /// for the same order (`written`: their index rows are stored) do not have, and every index key of the
    /// new and the written facts (the marks that change). For the KPI engine's rollup the sets are of
    /// slots (`KPIBucketKeys.Slot`), made keys at the end.
    func indexedBuckets(_ new: [(order: String, facts: OrderFacts)], written: [String: OrderFacts]) throws
        -> (unindexed: [[RollupKey]], all: Set<RollupKey>) {
        var unindexed: [[RollupKey]] = []
        unindexed.reserveCapacity(new.count)
        if let keys = bucketKeys {
            var all = Set<KPIBucketKeys.Slot>()
            for i in new.indices {
                var s = keys.slots(new[i].facts)
                all.formUnion(s)
                if let w = written[new[i].order] {
                    if keys.sameBuckets(w, new[i].facts) {
                        s = []
                    } else {
                        let old = keys.slots(w)
                        all.formUnion(old)
                        s.removeAll(where: old.contains)
                    }
                }
                unindexed.append(keys.indexKeys(s))
            }
            return (unindexed, Set(keys.indexKeys(all)))
        }
        var all = Set<RollupKey>()
        for (order, f) in new {
            var b = try indexKeys(f)
            all.formUnion(b)
            if let w = written[order] {
                let old = try indexKeys(w)
                all.formUnion(old)
                b.subtract(old)
            }
            unindexed.append(Array(b))
        }
        return (unindexed, all)
    }

    /// The index keys (`indexKeys(_:)`) of each of the `new` facts, and every index key of those and of
    /// the `old` facts they replace (the marks that change).
    func touchedBuckets(_ new: [OrderFacts], old: [OrderFacts]) throws -> (each: [[RollupKey]], all: Set<RollupKey>) {
        if let keys = bucketKeys {
            var all = Set<KPIBucketKeys.Slot>()
            var each: [[RollupKey]] = []
            each.reserveCapacity(new.count)
            for f in new {
                let s = keys.slots(f)
                all.formUnion(s)
                each.append(keys.indexKeys(s))
            }
            for f in old { all.formUnion(keys.slots(f)) }
            return (each, Set(keys.indexKeys(all)))
        }
        let each = try new.map { Array(try indexKeys($0)) }
        var all = Set<RollupKey>()
        for b in each { all.formUnion(b) }
        for f in old { all.formUnion(try indexKeys(f)) }
        return (each, all)
    }

    /// The keys these facts are indexed under in `rollup_keys` and marked under in `rollup_dirty`
    /// (dimension and bucket start; no group). For the KPI engine's rollup, one per slot of its buckets
    /// (`KPIBucketKeys.indexKey`), computed from the facts' parts directly; for another rollup, every
    /// bucket it would write for the order as new (asking it costs, for the KPI rollup, encoding every
    /// row's sketches: a fifth of a bulk load's client time went there).
    func indexKeys(_ f: OrderFacts) throws -> Set<RollupKey> {
        if let keys = bucketKeys { return Set(keys.indexKeys(keys.slots(f))) }
        guard let rollup else { return [] }
        return try Self.bucketsByUpdate(rollup, f)
    }

    /// The buckets `rollup.update` writes for `f` as a new order.
    static func bucketsByUpdate(_ rollup: any FactsRollup, _ f: OrderFacts) throws -> Set<RollupKey> {
        var out = Set<RollupKey>()
        for (k, _) in try rollup.update([FactsTransition(old: nil, new: f)], read: { _ in nil }) {
            out.insert(RollupKey(dimension: k.dimension, group: nil, bucketStart: k.bucketStart))
        }
        return out
    }

    /// The rows of `rollup_keys` for these orders: each of the order's buckets (`buckets[i]` for `orders[i]`).
    func rollupKeyRows(_ orders: [String], buckets: [some Sequence<RollupKey>]) -> RowWriter {
        var keys = RowWriter(binary: true)
        for p in rollupKeyRows(orders, buckets: buckets, shards: nil).parts { keys.append(p) }
        return keys
    }

    /// The same rows kept apart by the shard of their order (`rollup_keys` is sharded by `order_id`).
    func rollupKeyRows(_ orders: [String], buckets: [some Sequence<RollupKey>], shards: ShardMap?) -> ShardedRows {
        var keys = ShardedRows(shards, binary: true)
        guard rollup != nil else { return keys }
        for (order, set) in zip(orders, buckets) {
            for k in set {
                keys.row(order) { r in
                    r.str("dim", k.dimension)
                    r.int("bucket", k.bucketStart)
                    r.str("order_id", order)
                }
            }
        }
        return keys
    }

    // MARK: Retention

    public func deleteEvents(before cutoff: Micros) async throws -> Int {
        // With the first stage held and every earlier append's second stage done (the facts cache is theirs).
        try await write { try await pipeline.run(pipeline.ticket()) {
            factsCache.clear()
            defer { factsCache.clear() }
            let counted = try await queryAsync("SELECT count() AS n FROM (SELECT source, id FROM \(t.table("events")) WHERE time < \(cutoff) GROUP BY source, id)")
            let removed = Int(counted.first?["n"]?.int64 ?? 0)
            // Orders that outlive the cut keep their facts whole: the facts of their deleted events become their base.
            let partial = try await queryAsync("SELECT order_id FROM \(latestOrders()) WHERE first_time < \(cutoff) AND last_time >= \(cutoff)")
                .compactMap { $0["order_id"]?.stringValue }
            for part in partial.chunked(Self.chunk) {
                var base: [String: OrderFacts] = [:]
                for r in try await queryAsync("SELECT order_id, \(Self.factsHex("argMax(facts, ver)")) FROM \(t.table("facts_base")) "
                                              + "WHERE order_id IN \(SQL.list(part)) GROUP BY order_id") {
                    if let id = r["order_id"]?.stringValue, let f = Self.facts(r) {
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
            // The days whose partitions went (a trace reads no further than the days listed).
            let oldDays = try await queryAsync("SELECT count() AS n FROM \(t.table("event_days")) WHERE day < \(firstDay)")
            if (oldDays.first?["n"]?.int64 ?? 0) > 0 {
                try await onEveryNode("ALTER TABLE \(t.local("event_days")) DELETE WHERE day < \(firstDay)")
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
        } }
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

/// The facts this process last wrote per order, with the keys (`ClickHouseStore.foldKey`) of the
/// distinct stored events they fold (`settleFacts`; the events of a `facts_base` are not listed).
/// Bounded: emptied when full. Read and written by stage B of the write path only (one call at a time).
final class FactsCache: @unchecked Sendable {
    struct Entry {
        var facts: OrderFacts
        var keys: [UInt64]
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
