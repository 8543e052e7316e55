import CSQLite
import Foundation
import WaybillModel
import WaybillStore

/// One append with its order events folded into facts per order before it reaches the writer.
struct PreparedAppend: Sendable {
    let events: [CloudEvent]
    let facts: [String: OrderFacts]
}

/// The write path, run by the writer thread only: each batch of appends is deduplicated, appended to
/// `events`, folded into `orders` (and the rollups) and joined in `keys`, all in one transaction.
final class EventWriteSession {
    let conn: Connection
    let dedup: DedupIndex
    let orders: OrdersTable
    let links: KeyLinks
    let rollups: RollupTable?
    let spanWriter: SpanBlockWriter
    /// Span attributes that join a span to an order (`SpanCorrelation`), checked when the span is stored.
    let correlationKeys: [String]
    private let insertEvent: Statement

    init(conn: Connection, rollup: (any FactsRollup)?, recentDedupLimit: Int = 300_000,
         correlationKeys: [String] = SpanCorrelation.defaultKeys) throws {
        self.conn = conn
        self.correlationKeys = correlationKeys
        spanWriter = SpanBlockWriter(conn: conn)
        dedup = try DedupIndex(conn: conn, recentLimit: recentDedupLimit)
        orders = OrdersTable(conn: conn)
        links = KeyLinks(conn: conn, orders: orders)
        rollups = rollup.map { RollupTable(conn: conn, rollup: $0) }
        insertEvent = try Statement(conn: conn, sql: "INSERT INTO events(time, subject, source, id, type, trace_id, raw) VALUES(?,?,?,?,?,?,?)")
        if let rollups { try rollups.rebuildIfStale() } else { try RollupTable.forgetLayout(conn) }
    }


    /// Seconds spent in each phase of the write path, printed at close when `WAYBILL_WRITER_PROFILE` is set.
    var phaseSeconds: [String: Double] = [:]
    let profiling = ProcessInfo.processInfo.environment["WAYBILL_WRITER_PROFILE"] != nil
    private var phaseStart: Micros = 0
    private func phase(_ name: String?) {
        guard profiling else { return }
        let now = currentMicros()
        if let name { phaseSeconds[name, default: 0] += Double(now - phaseStart) / 1e6 }
        phaseStart = now
    }

    /// Writes several appends in one transaction; returns the outcome of each, in order.
    func write(_ prepared: [PreparedAppend]) throws -> [AppendResult] {
        phase(nil)
        let results = try conn.transaction {
            var results: [AppendResult] = []
            results.reserveCapacity(prepared.count)
            var fresh: [(batch: Int, index: Int)] = []
            for b in prepared.indices {
                var r = AppendResult()
                for i in prepared[b].events.indices {
                    if try insert(prepared[b].events[i]) {
                        r.accepted += 1
                        fresh.append((b, i))
                    } else {
                        r.duplicates += 1
                    }
                }
                results.append(r)
            }
            phase("insert")
            let transitions = try orders.merge(factsDeltas(prepared, fresh), transitions: rollups != nil, created: links.orderCreated)
            try rollups?.apply(transitions)
            phase("facts")
            for f in fresh { try links.add(linksOf: prepared[f.batch].events[f.index]) }
            phase("links")
            return results
        }
        phase("commit")
        // The appends are committed: a fault in the upkeep below must not answer them as failed (their
        // clients would retry what is stored). A failed merge leaves the hashes in memory and is tried
        // again after the next commit; `health` has the fault.
        do {
            try dedup.growFilterIfFull()
            if dedup.mergeDue {
                try dedup.mergeRecent()
                phase("dedup-merge")
            }
        } catch StoreError.fault {}
        return results
    }

    /// Inserts unless `(source, id)` is stored already; true when inserted.
    private func insert(_ e: CloudEvent) throws -> Bool {
        let h = DedupIndex.hash(source: e.source, id: e.id)
        if try dedup.contains(source: e.source, id: e.id, hash: h) { return false }
        let ins = insertEvent
        ins.reset()
        ins.bind(1, e.time).bind(2, e.subject).bind(3, e.source).bind(4, e.id).bind(5, e.type).bind(6, e.traceID)
        ins.bindBlob(7, e.raw)
        try ins.run()
        dedup.inserted(hash: h, seq: sqlite3_last_insert_rowid(conn.db))
        return true
    }

    /// The facts the fresh order events add, per order. Each append arrives with its events already
    /// folded per order (done on the caller's thread, off this one); an append whose order had a
    /// duplicate is refolded from its fresh events only, so a duplicate never contributes.
    private func factsDeltas(_ prepared: [PreparedAppend], _ fresh: [(batch: Int, index: Int)]) -> [String: OrderFacts] {
        var freshCount: [Int: [String: Int]] = [:]
        for f in fresh where prepared[f.batch].events[f.index].isOrderEvent {
            freshCount[f.batch, default: [:]][prepared[f.batch].events[f.index].subject, default: 0] += 1
        }
        var deltas: [String: OrderFacts] = [:]
        for (b, counts) in freshCount {
            let p = prepared[b]
            var refold: Set<String> = []
            for (subject, n) in counts {
                if let partial = p.facts[subject], partial.eventCount == n {
                    if deltas[subject] == nil { deltas[subject] = partial } else { deltas[subject]!.merge(partial) }
                } else {
                    refold.insert(subject)
                }
            }
            guard !refold.isEmpty else { continue }
            let freshIndexes = Set(fresh.filter { $0.batch == b }.map(\.index))
            for (i, e) in p.events.enumerated() where freshIndexes.contains(i) && refold.contains(e.subject) {
                deltas[e.subject, default: OrderFacts(orderID: e.subject)].apply(e)
            }
        }
        return deltas
    }

    /// Stores several appends of spans in one transaction, one result each; `(trace id, span id)`
    /// already stored, by an earlier append or earlier in the same one, is a duplicate.
    func writeSpans(_ batches: [[Span]]) throws -> [AppendResult] {
        try conn.transaction {
            try batches.map { spans in
                try spanWriter.write(spans.map { ($0, SpanCorrelation.key(of: $0, keys: correlationKeys)) })
            }
        }
    }
}
