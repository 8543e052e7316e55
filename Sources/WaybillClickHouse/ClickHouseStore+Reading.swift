import Foundation
import WaybillModel
import WaybillStore

extension ClickHouseStore {
    /// The newest facts row of each order (optionally only orders matching `prefilter`, a condition on the
    /// rows of `orders` that holds for an order's newest row whenever the answer needs that order).
    func latestOrders(_ prefilter: String? = nil) -> String {
        "(SELECT * FROM \(t.table("orders"))" + (prefilter.map { " WHERE " + $0 } ?? "") + " ORDER BY order_id, ver DESC LIMIT 1 BY order_id)"
    }

    static func facts(_ r: JSONValue) -> OrderFacts? {
        r["facts"]?.stringValue.flatMap { OrderFacts(storageBytes: Array($0.utf8)) }
    }

    public func facts(orderID: String) throws -> OrderFacts? {
        try query("SELECT facts FROM \(t.table("orders")) WHERE order_id = \(SQL.quote(orderID)) ORDER BY ver DESC LIMIT 1").first.flatMap(Self.facts)
    }

    // MARK: Traces

    /// The keys linked to `key`, directly or transitively (`key` included), walking the stored edges.
    func linkGroup(_ key: String) throws -> (members: Set<String>, linked: Bool) {
        var members: Set<String> = [key]
        var frontier: [String] = [key]
        var linked = false
        while !frontier.isEmpty {
            var next: [String] = []
            for part in frontier.chunked(Self.chunk) {
                for r in try query("SELECT DISTINCT b FROM \(t.table("links")) WHERE a IN \(SQL.list(part))") {
                    linked = true
                    if let b = r["b"]?.stringValue, members.insert(b).inserted { next.append(b) }
                }
            }
            frontier = next
        }
        return (members, linked)
    }

    public func trace(key: String) throws -> Trace? {
        let (memberSet, linked) = try linkGroup(key)
        let members = memberSet.sorted()
        // Independent reads of the group in parallel: the newest facts of its orders (which also name
        // the group), its events, and the traces its keys join.
        final class Parts: @unchecked Sendable {
            var factsRows: [JSONValue] = [], events: [CloudEvent] = [], keyed: [String] = []
            var failure: Error?
        }
        let got = Parts()
        let lock = NSLock()
        DispatchQueue.concurrentPerform(iterations: 3) { i in
            do {
                switch i {
                case 0:
                    let rows = try query("SELECT order_id, facts FROM \(t.table("orders")) WHERE order_id IN \(SQL.list(members)) "
                                         + "ORDER BY order_id, ver DESC LIMIT 1 BY order_id")
                    lock.withLock { got.factsRows = rows }
                case 1:
                    var out: [CloudEvent] = []
                    for part in members.chunked(Self.chunk) {
                        for r in try query("SELECT source, id, type, time, subject, trace_id, raw FROM \(t.table("events")) WHERE subject IN \(SQL.list(part)) "
                                           + "LIMIT 1 BY subject, source, id") {
                            if let e = Self.event(r) { out.append(e) }
                        }
                    }
                    lock.withLock { got.events = out }
                default:
                    var out: [String] = []
                    for part in members.chunked(Self.chunk) {
                        out += try query("SELECT DISTINCT trace_id FROM \(t.table("span_keys")) WHERE key IN \(SQL.list(part))").compactMap { $0["trace_id"]?.stringValue }
                    }
                    lock.withLock { got.keyed = out }
                }
            } catch {
                lock.withLock { got.failure = error }
            }
        }
        if let failure = got.failure { throw failure }
        let events = got.events
        var orderFacts: [String: OrderFacts] = [:]
        for r in got.factsRows { if let id = r["order_id"]?.stringValue, let f = Self.facts(r) { orderFacts[id] = f } }
        // The group's name: its smallest order id, else its smallest key (a function of the members only).
        let root: String? = linked ? (orderFacts.keys.min() ?? members.first) : nil
        let spans = try loadSpans(traceIDs: Set(events.compactMap(\.traceID)).union(got.keyed))
        if events.isEmpty && root == nil && spans.isEmpty { return nil }
        let correlation = root ?? key
        return Trace(correlationID: correlation, keys: linked ? members : [key], events: events, facts: orderFacts[correlation], spans: spans)
    }

    func loadSpans(traceIDs: Set<String>) throws -> [Span] {
        var out: [Span] = []
        for part in traceIDs.sorted().chunked(Self.chunk) {
            for r in try query("SELECT body FROM \(t.table("spans")) WHERE trace_id IN \(SQL.list(part)) LIMIT 1 BY trace_id, span_id") {
                if let s = Self.span(r) { out.append(s) }
            }
        }
        return out
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
        return try query("SELECT facts FROM \(latestOrders(pre)) WHERE \(cond)").compactMap(Self.facts)
    }

    /// Computed from the current facts of the orders indexed under the buckets, so they are exact
    /// whatever several writers did concurrently.
    public func rollupRows(dimension: String, in ranges: [Range<Micros>]) throws -> [(key: RollupKey, bytes: [UInt8])] {
        guard let rollup else { return [] }
        let ranges = ranges.filter { !$0.isEmpty }
        guard !ranges.isEmpty else { return [] }
        let pre = "order_id IN (SELECT order_id FROM \(t.local("rollup_keys")) WHERE dim = \(SQL.quote(dimension)) AND \(Self.rangeCondition("bucket", ranges)))"
        let facts = try query("SELECT facts FROM \(latestOrders(pre))").compactMap(Self.facts)
        var rows: [RollupKey: [UInt8]] = [:]
        // Folded in batches through `read`, as the rollup would keep them.
        for part in facts.chunked(5_000) {
            let updates = try rollup.update(part.map { FactsTransition(old: nil, new: $0) }) { rows[$0] }
            for (k, bytes) in updates { rows[k] = bytes }
        }
        return rows.filter { k, _ in k.dimension == dimension && ranges.contains { $0.contains(k.bucketStart) } }.map { (key: $0.key, bytes: $0.value) }
    }
}
