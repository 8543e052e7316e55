import Foundation
import WaybillKPI
import WaybillModel
import WaybillStore

extension ClickHouseStore {
    /// The newest facts row of each order (optionally only orders matching `prefilter`, a condition on the
    /// rows of `orders` that holds for an order's newest row whenever the answer needs that order).
    func latestOrders(_ prefilter: String? = nil) -> String {
        "(SELECT * FROM \(t.table("orders"))" + (prefilter.map { " WHERE " + $0 } ?? "") + " ORDER BY order_id, ver DESC LIMIT 1 BY order_id)"
    }

    /// How a read selects a `facts` column (of `orders`, `facts_base`; `column` may be an expression of
    /// it): in hex, since the stored value is binary (`OrderFactsBinary`), which JSON output would not
    /// carry intact. `facts(_:)` reads it.
    static func factsHex(_ column: String = "facts") -> String { "hex(\(column)) AS facts_hex" }

    /// The facts of a row read with `factsHex`.
    static func facts(_ r: JSONValue) -> OrderFacts? {
        guard let hex = r["facts_hex"]?.stringValue, let bytes = Hex.decode(hex) else { return nil }
        return storedFacts(bytes)
    }

    /// A stored facts value: binary (`OrderFactsBinary`, written since 2026-12-04), or JSON (`storageBytes`:
    /// rows written before, and `facts_base`).
    static func storedFacts(_ b: [UInt8]) -> OrderFacts? {
        b.first == UInt8(ascii: "{") ? OrderFacts(storageBytes: b) : OrderFactsBinary.decode(b)
    }

    public func facts(orderID: String) throws -> OrderFacts? {
        try query("SELECT \(Self.factsHex()) FROM \(t.table("orders")) WHERE order_id = \(SQL.quote(orderID)) ORDER BY ver DESC LIMIT 1").first.flatMap(Self.facts)
    }

    // MARK: Traces

    /// The keys linked to `key`, directly or transitively (`key` included), walking the stored edges.
    func linkGroup(_ key: String) throws -> (members: Set<String>, linked: Bool) {
        var members: Set<String> = [key]
        var linked = false
        try walkLinks(from: [key], members: &members, linked: &linked)
        return (members, linked)
    }

    func linksStatements(_ keys: [String]) -> [Routed] {
        routed(keys) { part, table in ["SELECT DISTINCT b FROM \(table("links")) WHERE a IN \(SQL.list(part))"] }
    }

    /// Follows the edges from `frontier` (one round trip per hop, each shard's edges at once), adding
    /// what it finds to `members`.
    func walkLinks(from start: [String], members: inout Set<String>, linked: inout Bool) throws {
        var frontier = start
        while !frontier.isEmpty {
            var next: [String] = []
            for rows in try parallelQueries(linksStatements(frontier)) {
                for r in rows {
                    linked = true
                    if let b = r["b"]?.stringValue, members.insert(b).inserted { next.append(b) }
                }
            }
            frontier = next
        }
    }

    /// What a trace reads of a group's keys, as independent statements, each on the shard that holds
    /// its keys: the newest facts of its orders (kind 0), its events (kind 1) and the traces its keys
    /// join (kind 2). (Events, facts, edges and span keys are all sharded by the key.)
    func groupStatements(_ keys: [String]) -> [(kind: Int, read: Routed)] {
        var out: [(Int, Routed)] = []
        let reads = routed(keys) { part, table in
            ["SELECT order_id, \(Self.factsHex()) FROM \(table("orders")) WHERE order_id IN \(SQL.list(part)) ORDER BY order_id, ver DESC LIMIT 1 BY order_id",
             // Only the days that hold the keys' events (`event_days`): ClickHouse replaces the scalar
             // subqueries by their values before it chooses partitions and granules.
             "SELECT source, id, type, time, subject, trace_id, raw FROM \(table("events")) WHERE subject IN \(SQL.list(part)) "
                + "AND time >= (SELECT min(day) FROM \(table("event_days")) WHERE subject IN \(SQL.list(part))) * \(ClickHouseSchema.day) "
                + "AND time < (SELECT max(day) + 1 FROM \(table("event_days")) WHERE subject IN \(SQL.list(part))) * \(ClickHouseSchema.day) "
                + "LIMIT 1 BY subject, source, id",
             "SELECT DISTINCT trace_id FROM \(table("span_keys")) WHERE key IN \(SQL.list(part))"]
        }
        for (i, r) in reads.enumerated() { out.append((i % 3, r)) }
        return out
    }

    /// One round trip for the common case: the key's edges and, at the same time, what the trace reads
    /// of the key itself (all on the key's shard). Only a key with links walks them and reads the other
    /// members after.
    public func trace(key: String) throws -> Trace? {
        let own = groupStatements([key])
        let first = try parallelQueries(linksStatements([key]) + own.map(\.read))
        var members: Set<String> = [key]
        var linked = false
        var frontier: [String] = []
        for r in first[0] {
            linked = true
            if let b = r["b"]?.stringValue, members.insert(b).inserted { frontier.append(b) }
        }
        try walkLinks(from: frontier, members: &members, linked: &linked)
        var parts: [(kind: Int, rows: [JSONValue])] = zip(own, first.dropFirst()).map { ($0.kind, $1) }
        let others = members.subtracting([key]).sorted()
        if !others.isEmpty {
            let more = groupStatements(others)
            parts += zip(more, try parallelQueries(more.map(\.read))).map { ($0.kind, $1) }
        }
        var events: [CloudEvent] = []
        var keyed: [String] = []
        var orderFacts: [String: OrderFacts] = [:]
        for (kind, rows) in parts {
            switch kind {
            case 0: for r in rows { if let id = r["order_id"]?.stringValue, let f = Self.facts(r) { orderFacts[id] = f } }
            case 1: events += rows.compactMap(Self.event)
            default: keyed += rows.compactMap { $0["trace_id"]?.stringValue }
            }
        }
        let sortedMembers = members.sorted()
        // The group's name: its smallest order id, else its smallest key (a function of the members only).
        let root: String? = linked ? (orderFacts.keys.min() ?? sortedMembers.first) : nil
        let spans = try loadSpans(traceIDs: Set(events.compactMap(\.traceID)).union(keyed))
        if events.isEmpty && root == nil && spans.isEmpty { return nil }
        let correlation = root ?? key
        return Trace(correlationID: correlation, keys: linked ? sortedMembers : [key], events: events, facts: orderFacts[correlation], spans: spans)
    }

    /// The spans of many keys' traces in a few round trips for all of them (where `trace(key:)` per key
    /// makes two or more each): the link edges hop by hop from every key at once, then the trace ids of
    /// every member's events and span keys, then the spans.
    public func traceSpans(keys: [String]) throws -> [String: [Span]] {
        let asked = Set(keys).sorted()
        guard !asked.isEmpty else { return [:] }
        var edges: [String: Set<String>] = [:]
        var members = Set(asked)
        var frontier = asked
        while !frontier.isEmpty {
            var next: [String] = []
            let reads = routed(frontier) { part, table in ["SELECT DISTINCT a, b FROM \(table("links")) WHERE a IN \(SQL.list(part))"] }
            for rows in try parallelQueries(reads) {
                for r in rows {
                    guard let a = r["a"]?.stringValue, let b = r["b"]?.stringValue else { continue }
                    edges[a, default: []].insert(b)
                    if members.insert(b).inserted { next.append(b) }
                }
            }
            frontier = next
        }
        let reads = routed(members.sorted()) { part, table in
            ["SELECT DISTINCT subject AS k, trace_id FROM \(table("events")) WHERE subject IN \(SQL.list(part)) AND trace_id != '' "
                + "AND time >= (SELECT min(day) FROM \(table("event_days")) WHERE subject IN \(SQL.list(part))) * \(ClickHouseSchema.day) "
                + "AND time < (SELECT max(day) + 1 FROM \(table("event_days")) WHERE subject IN \(SQL.list(part))) * \(ClickHouseSchema.day)",
             "SELECT DISTINCT key AS k, trace_id FROM \(table("span_keys")) WHERE key IN \(SQL.list(part))"]
        }
        var tracesOf: [String: Set<String>] = [:]
        for rows in try parallelQueries(reads) {
            for r in rows {
                if let k = r["k"]?.stringValue, let t = r["trace_id"]?.stringValue, !t.isEmpty { tracesOf[k, default: []].insert(t) }
            }
        }
        var groups: [String: [String]] = [:]
        for k in asked {
            // The key's group: what its edges reach (links are stored in both directions).
            var group: Set<String> = [k]
            var stack = [k]
            while let x = stack.popLast() { for y in edges[x] ?? [] where group.insert(y).inserted { stack.append(y) } }
            groups[k] = Array(group)
        }
        return TraceSpanGroups.spans(groups: groups, traces: tracesOf, spans: try loadSpans(traceIDs: Set(tracesOf.values.joined())))
    }

    func loadSpans(traceIDs: Set<String>) throws -> [Span] {
        guard !traceIDs.isEmpty else { return [] }
        let reads = routed(traceIDs.sorted()) { part, table in
            ["SELECT body FROM \(table("spans")) WHERE trace_id IN \(SQL.list(part)) LIMIT 1 BY trace_id, span_id"]
        }
        return try parallelQueries(reads).joined().compactMap(Self.span)
    }

    static func span(_ r: JSONValue) -> Span? {
        r["body"]?.stringValue.flatMap { try? JSONParser.parse($0) }.flatMap(Span.init(storageJSON:))
    }

    public func spans(startingIn range: Range<Micros>, limit: Int) throws -> [Span] {
        guard limit > 0, !range.isEmpty else { return [] }
        let rows = try query("SELECT body FROM \(t.table("spans")) WHERE start >= \(range.lowerBound) AND start < \(range.upperBound) "
                             + "ORDER BY start, trace_id, span_id LIMIT 1 BY trace_id, span_id LIMIT \(limit)")
        return rows.compactMap(Self.span).sorted { ($0.start, $0.traceID, $0.spanID) < ($1.start, $1.traceID, $1.spanID) }
    }

    // MARK: Search

    public func searchOrders(_ q: OrderQuery) throws -> OrderPage {
        var conditions: [String] = []
        if let s = q.state { conditions.append("state = \(s.rawValue)") }
        if let ty = q.type { conditions.append("has(types, \(SQL.quote(ty)))") }
        if let s = q.source { conditions.append("has(sources, \(SQL.quote(s)))") }
        if let w = q.warehouse { conditions.append("(alloc_wh = \(SQL.quote(w)) OR ship_wh = \(SQL.quote(w)))") }
        if let ch = q.channel { conditions.append("channel = \(SQL.quote(ch))") }
        if let r = q.region { conditions.append("region = \(SQL.quote(r))") }
        if let to = q.to { conditions.append("first_time < \(to)") }
        if let from = q.from { conditions.append("last_time >= \(from)") }
        if let stuck = q.stuckFor {
            conditions.append("state_since <= \(q.now - stuck) AND state NOT IN (\(Stage.invoiced.rawValue), \(Stage.cancelled.rawValue))")
        }
        if let cursor = q.cursor {
            guard let (time, id) = OrderCursor.decode(cursor) else { throw QueryError(field: "cursor", rule: "is not a cursor this server issued") }
            conditions.append("(first_time < \(time) OR (first_time = \(time) AND order_id < \(SQL.quote(id))))")
        }
        let limit = max(1, min(q.limit, 10_000))
        let sql = "SELECT order_id, state, state_since, first_time, last_time, event_count, channel, alloc_wh, ship_wh FROM \(latestOrders())"
            + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND "))
            + " ORDER BY first_time DESC, order_id DESC LIMIT \(limit + 1)"
        var out: [OrderSummary] = try query(sql).map { r in
            OrderSummary(correlationID: r["order_id"]?.stringValue ?? "", state: r["state"]?.int64.flatMap { Stage(rawValue: Int($0)) },
                         stateSince: r["state_since"]?.int64, firstEventAt: r["first_time"]?.int64 ?? 0, lastEventAt: r["last_time"]?.int64 ?? 0,
                         eventCount: Int(r["event_count"]?.int64 ?? 0), channel: r["channel"]?.stringValue,
                         warehouse: r["ship_wh"]?.stringValue ?? r["alloc_wh"]?.stringValue)
        }
        var next: String?
        if out.count > limit {
            out.removeLast()
            next = out.last.map { OrderCursor.encode($0.firstEventAt, $0.correlationID) }
        }
        return OrderPage(orders: out, nextCursor: next)
    }


    // MARK: KPI inputs

    static func rangeCondition(_ column: String, _ ranges: [Range<Micros>]) -> String {
        "(" + ranges.map { "(\(column) >= \($0.lowerBound) AND \(column) < \($0.upperBound))" }.joined(separator: " OR ") + ")"
    }

    public func kpiFacts(in ranges: [Range<Micros>]) throws -> [OrderFacts] {
        let ranges = ranges.filter { !$0.isEmpty }
        guard !ranges.isEmpty else { return [] }
        let cond = Self.rangeCondition("allocated_at", ranges) + " OR " + Self.rangeCondition("shipped_at", ranges)
        // An order's rows are on one shard: the prefilter reads that shard's own table.
        let pre = "order_id IN (SELECT order_id FROM \(t.local("orders")) WHERE \(cond))"
        return try query("SELECT \(Self.factsHex()) FROM \(latestOrders(pre)) WHERE \(cond)").compactMap(Self.facts)
    }

    /// A cached bucket is read only when it was computed more than `Options.rollupCacheMargin` after the
    /// bucket's last change mark (the clocks of several Waybill servers may differ by up to that), and only for this long after it was computed (bounds what a writer that died between its facts
    /// and its change marks leaves stale).
    static let rollupCacheLife: Micros = 3_600_000_000

    /// Computed from the current facts of the orders indexed under the buckets, so they are exact
    /// whatever several writers did concurrently; a bucket computed so is kept in `rollup_cache` and read
    /// from there while no write has changed it since (`rollup_dirty`).
    ///
    /// Why the cache stays exact: a writer marks a bucket after the facts that change it are stored, with
    /// the time then; a reader stamps a bucket with the time before it reads the facts. A reader that
    /// missed a write's facts began reading before they were stored, so before the mark: its stamp is
    /// older than the mark and the bucket is recomputed.
    public func rollupRows(dimension: String, in ranges: [Range<Micros>]) throws -> [(key: RollupKey, bytes: [UInt8])] {
        guard let rollup else { return [] }
        let ranges = ranges.filter { !$0.isEmpty }
        guard !ranges.isEmpty else { return [] }
        let stamp = currentMicros()
        let inRanges = Self.rangeCondition("bucket", ranges)
        // The index and the marks hold a tier's dimensions under one name (`indexDimension`).
        let indexed = indexDimension(dimension)
        // Both tables are sharded by the constant 0: read on the first shard's node, in its own tables.
        // Every bucket that holds orders has marks (written before its index rows and after its facts).
        let marks = routedFirst { table in
            "SELECT dim, bucket, max(at) AS changed FROM \(table("rollup_dirty")) WHERE (dim = \(SQL.quote(indexed)) AND \(inRanges)) "
                + "OR dim = '*' GROUP BY dim, bucket"
        }
        func cacheRead(_ condition: String) -> Routed {
            routedFirst { table in
                "SELECT bucket, argMax(rows, at) AS cached_rows, max(at) AS computed FROM \(table("rollup_cache")) "
                    + "WHERE layout = \(SQL.quote(rollup.layout)) AND dim = \(SQL.quote(dimension)) AND \(condition) GROUP BY bucket"
            }
        }
        // Buckets this process computed or read before are kept in it (`bucketCache`): once it holds this
        // dimension, a report reads only the marks, and `rollup_cache` only for the buckets it lacks.
        let warm = bucketCache.holds(rollup.layout, dimension)
        let answers = try parallelQueries(warm ? [marks] : [marks, cacheRead(inRanges)])
        var everything: Micros = .min
        var changed: [Micros: Micros] = [:]
        for r in answers[0] {
            guard let at = r["changed"]?.int64 else { continue }
            if r["dim"]?.stringValue == "*" { everything = max(everything, at) } else if let b = r["bucket"]?.int64 { changed[b] = at }
        }
        func valid(_ at: Micros, _ mark: Micros) -> Bool {
            at > max(mark, everything) + options.rollupCacheMargin && at > stamp - Self.rollupCacheLife
        }
        var fromProcess: [Micros: [(key: RollupKey, bytes: [UInt8])]] = [:]
        var lacking: [Micros] = []
        for (b, mark) in changed {
            if let c = bucketCache.get(rollup.layout, dimension, b), valid(c.at, mark) { fromProcess[b] = c.rows } else { lacking.append(b) }
        }
        var cachedRows: [JSONValue] = warm ? [] : answers[1]
        if warm, !lacking.isEmpty {
            let reads = lacking.sorted().chunked(Self.chunk).map { cacheRead("bucket IN (\($0.map(String.init).joined(separator: ",")))") }
            cachedRows = try parallelQueries(reads).flatMap { $0 }
        }
        var cached: [Micros: (at: Micros, rows: String)] = [:]
        for r in cachedRows {
            if let b = r["bucket"]?.int64, let at = r["computed"]?.int64, let rows = r["cached_rows"]?.stringValue { cached[b] = (at, rows) }
        }
        var out: [(key: RollupKey, bytes: [UInt8])] = []
        var stale: [Micros] = []
        var hits = 0
        for (b, mark) in changed.sorted(by: { $0.key < $1.key }) {
            if let rows = fromProcess[b] {
                out += rows
                hits += 1
            } else if let c = cached[b], valid(c.at, mark), let rows = Self.decodeCachedRows(c.rows, dimension: dimension, bucket: b) {
                out += rows
                hits += 1
                bucketCache.put(rollup.layout, dimension, b, at: c.at, rows: rows)
            } else {
                stale.append(b)
            }
        }
        rollupCacheCounts.add(hits: hits, computed: stale.count)
        guard !stale.isEmpty else { return out }
        // The stale buckets, from the current facts of the orders indexed under them: a day of hourly
        // buckets per read (bounded memory), as many at once as the machine has cores (decoding and
        // folding facts is the larger part of the cost).
        let parts = stale.chunked(48).map(Array.init)
        final class Computed: @unchecked Sendable {
            var rows: [Micros: [(key: RollupKey, bytes: [UInt8])]] = [:]
            var failure: Error?
        }
        let computed = Computed()
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: parts.count) { i in
            do {
                let part = parts[i]
                let pre = "order_id IN (SELECT order_id FROM \(t.local("rollup_keys")) WHERE dim = \(SQL.quote(indexed)) "
                    + "AND bucket IN (\(part.map(String.init).joined(separator: ","))))"
                let facts = try query("SELECT \(Self.factsHex()) FROM \(latestOrders(pre))").compactMap(Self.facts)
                var rows: [RollupKey: [UInt8]] = [:]
                // Folded in batches through `read`, as the rollup would keep them. The KPI rollup's step
                // rows are `StepRollup`'s: for them only that part of it runs (the trace documents' step
                // comparison reads them; folding every KPI dimension too cost several times more).
                let stepsOnly = dimension == StepRollup.dimension && rollup is KPIFactsRollup
                for chunk in facts.chunked(5_000) {
                    let transitions = chunk.map { FactsTransition(old: nil, new: $0) }
                    let updates = stepsOnly ? try StepRollup.update(transitions) { rows[$0] } : try rollup.update(transitions) { rows[$0] }
                    for (k, bytes) in updates { rows[k] = bytes }
                }
                let wanted = Set(part)
                lock.withLock {
                    for (k, bytes) in rows where k.dimension == dimension && wanted.contains(k.bucketStart) {
                        computed.rows[k.bucketStart, default: []].append((k, bytes))
                    }
                }
            } catch {
                lock.withLock { computed.failure = error }
            }
        }
        if let failure = computed.failure { throw failure }
        let fresh = computed.rows
        var cache = RowWriter()
        for b in stale {
            let rows = fresh[b] ?? []
            out += rows
            bucketCache.put(rollup.layout, dimension, b, at: stamp, rows: rows)
            cache.begin()
            cache.str("layout", rollup.layout)
            cache.str("dim", dimension)
            cache.int("bucket", b)
            cache.int("at", stamp)
            cache.str("rows", Self.encodeCachedRows(rows))
            cache.end()
        }
        // Keeping them is an optimization: a failure here loses nothing.
        _ = try? client.sendBlocking("INSERT INTO \(t.table("rollup_cache")) FORMAT JSONEachRow", rows: cache.bytes)
        return out
    }

    /// A bucket's rows as `rollup_cache` keeps them: `[[group or null, hex of the row], ...]`.
    static func encodeCachedRows(_ rows: [(key: RollupKey, bytes: [UInt8])]) -> String {
        let doc = JSONValue.array(rows.map { .array([$0.key.group.map { .string($0) } ?? .null, .string(Hex.encode($0.bytes))]) })
        return String(decoding: doc.jsonBytes, as: UTF8.self)
    }

    static func decodeCachedRows(_ text: String, dimension: String, bucket: Micros) -> [(key: RollupKey, bytes: [UInt8])]? {
        guard case .array(let items)? = try? JSONParser.parse(text) else { return nil }
        var out: [(key: RollupKey, bytes: [UInt8])] = []
        for item in items {
            guard case .array(let pair) = item, pair.count == 2, let bytes = pair[1].stringValue.flatMap(Hex.decode) else { return nil }
            out.append((RollupKey(dimension: dimension, group: pair[0].stringValue, bucketStart: bucket), bytes))
        }
        return out
    }

    /// Reads run at once (each its own HTTP request), answered in the order given. The first runs on
    /// the calling thread, each other on a thread of its own (a few per trace; they wait on the network,
    /// so the machine's core count must not limit them, and Swift's cooperative pool must not be used:
    /// the caller may be a synchronous reader that other code awaits).
    func parallelQueries(_ statements: [String]) throws -> [[JSONValue]] {
        try parallelQueries(statements.map { Routed(sql: $0, hosts: [], fallback: $0) })
    }

    func parallelQueries(_ statements: [Routed]) throws -> [[JSONValue]] {
        if statements.count <= 1 { return try statements.map { try query($0) } }
        final class Answers: @unchecked Sendable {
            var rows: [[JSONValue]]
            var failure: Error?
            init(_ n: Int) { rows = Array(repeating: [], count: n) }
        }
        let got = Answers(statements.count)
        let lock = NSLock()
        let group = DispatchGroup()
        @Sendable func run(_ i: Int) {
            do {
                let rows = try query(statements[i])
                lock.withLock { got.rows[i] = rows }
            } catch {
                lock.withLock { got.failure = error }
            }
        }
        for i in statements.indices.dropFirst() {
            group.enter()
            Thread.detachNewThread {
                run(i)
                group.leave()
            }
        }
        run(0)
        group.wait()
        if let failure = got.failure { throw failure }
        return got.rows
    }
}
