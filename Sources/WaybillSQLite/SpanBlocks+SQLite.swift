import WaybillModel
import WaybillStore

/// Span blocks as rows: `span_blocks` (one block a row, by trace and by start) and `span_keys` (the
/// correlation keys that join traces to orders).
extension SpanBlocks {
    /// Binds a trace id as the `trace` column stores it: 16 bytes, or the text when it is not 32 lowercase hex digits.
    static func bindTrace(_ st: Statement, _ i: Int32, _ traceID: String) {
        if let b = idBytes(traceID, count: 16) { st.bindBlob(i, b) } else { st.bind(i, traceID) }
    }

    static func traceID(_ st: Statement, _ c: Int32) -> String {
        st.isBlob(c) ? hex(st.blob(c)) : st.text(c)
    }

    /// `decode`, with any failure reported as the engine error it is (a block the store wrote cannot be read).
    static func decodeBlock(_ body: [UInt8], traceID: String, start: Micros, lookup: (Int64) throws -> Entry) throws -> [Span] {
        do {
            return try decode(body, traceID: traceID, start: start, lookup: lookup)
        } catch let e as StoreError {
            throw e
        } catch {
            throw StoreError.engine("span block of trace \(traceID): \(error)")
        }
    }

    /// The blocks stored for a trace, read through `c`.
    static func blocks(ofTrace t: String, _ c: Connection, lookup: (Int64) throws -> Entry) throws -> [(seq: Int64, spans: [Span])] {
        let q = try c.prepare("SELECT seq, start, body FROM span_blocks WHERE trace = ?")
        defer { q.reset() }
        bindTrace(q, 1, t)
        var out: [(seq: Int64, spans: [Span])] = []
        while try q.step() { out.append((q.int64(0), try decodeBlock(q.blob(2), traceID: t, start: q.int64(1), lookup: lookup))) }
        return out
    }

    /// Every span stored for each trace, read through `c`.
    static func spans(ofTraces traceIDs: [String], _ c: Connection, lookup: (Int64) throws -> Entry) throws -> [Span] {
        try traceIDs.flatMap { try blocks(ofTrace: $0, c, lookup: lookup).flatMap(\.spans) }
    }
}

/// Writes span blocks and span keys, and the service view's rollups (`SpanRollups`), inside a transaction
/// its caller opened (the writer session, or a migration). The dictionary entries it enters are forgotten
/// again if that transaction rolls back.
final class SpanBlockWriter {
    let conn: Connection
    let dictionary: SpanDictionary
    /// False for the conversion of version 5's spans, which runs before `span_rollups` exists (its
    /// backfill counts them later).
    let rollups: Bool

    init(conn: Connection, rollups: Bool = true) {
        self.conn = conn
        self.rollups = rollups
        dictionary = SpanDictionary(conn: conn)
    }

    /// Stores spans (with the correlation key each carries); a `(trace id, span id)` already stored,
    /// or earlier in `spans`, is a duplicate.
    func write(_ spans: [(span: Span, key: String?)]) throws -> AppendResult {
        try dictionary.loadIfNeeded()
        var order: [String] = []
        var byTrace: [String: [(span: Span, key: String?)]] = [:]
        for item in spans {
            if byTrace[item.span.traceID] == nil { order.append(item.span.traceID) }
            byTrace[item.span.traceID, default: []].append(item)
        }
        let insert = try conn.prepare("INSERT INTO span_blocks(trace, start, last, n, body) VALUES(?,?,?,?,?)")
        let upsert = try conn.prepare("""
            INSERT INTO span_keys(key, trace, last) VALUES(?,?,?)
            ON CONFLICT(key, trace) DO UPDATE SET last = max(last, excluded.last)
            """)
        var r = AppendResult()
        var seen = Set<String>()
        var rollupChanges = SpanRollups.Pending()
        for t in order {
            let all = byTrace[t]!
            seen.removeAll(keepingCapacity: true)
            let blocks = try SpanBlocks.blocks(ofTrace: t, conn, lookup: dictionary.entry)
            for b in blocks { for s in b.spans { seen.insert(s.spanID) } }
            var group: [Span] = []
            // Correlation keys once per (key, trace), with the latest start of a span that carries it.
            var keyLast: [String: Micros] = [:]
            for (s, k) in all where seen.insert(s.spanID).inserted {
                group.append(s)
                if let k { keyLast[k] = max(keyLast[k] ?? s.start, s.start) }
            }
            r.duplicates += all.count - group.count
            r.accepted += group.count
            if rollups { rollupChanges.add(trace: blocks.flatMap(\.spans), added: group) }
            group.sort { $0.start < $1.start }
            // The block written last is the one still growing.
            let latest = blocks.filter { !$0.spans.isEmpty }.max { $0.seq < $1.seq }
            if let latest, !group.isEmpty, latest.spans.count + group.count <= SpanBlocks.maxMergedSpans {
                let merged = (latest.spans + group).sorted { $0.start < $1.start }
                if SpanBlocks.within(merged[0].start, merged[merged.count - 1].start) {
                    try rewrite(seq: latest.seq, merged)
                    group = []
                }
            }
            var lo = 0
            while lo < group.count {
                var hi = lo + 1
                while hi < group.count, hi - lo < SpanBlocks.maxSpans, SpanBlocks.within(group[lo].start, group[hi].start) { hi += 1 }
                let base = group[lo].start
                insert.reset()
                SpanBlocks.bindTrace(insert, 1, t)
                insert.bind(2, base).bind(3, group[hi - 1].start).bind(4, hi - lo).bindBlob(5, try encode(group[lo..<hi], base: base))
                try insert.run()
                lo = hi
            }
            for (k, last) in keyLast {
                upsert.reset()
                upsert.bind(1, k)
                SpanBlocks.bindTrace(upsert, 2, t)
                upsert.bind(3, last)
                try upsert.run()
            }
        }
        try rollupChanges.write(conn)
        return r
    }

    private func encode(_ spans: ArraySlice<Span>, base: Micros) throws -> [UInt8] {
        try dictionary.loadIfNeeded()
        return try SpanBlocks.encode(spans, base: base, dictionary: dictionary)
    }

    /// Replaces a block's spans (sorted by start, not empty).
    private func rewrite(seq: Int64, _ spans: [Span]) throws {
        let update = try conn.prepare("UPDATE span_blocks SET start = ?, last = ?, n = ?, body = ? WHERE seq = ?")
        update.bind(1, spans[0].start).bind(2, spans[spans.count - 1].start).bind(3, spans.count)
        update.bindBlob(4, try encode(spans[...], base: spans[0].start)).bind(5, seq)
        try update.run()
    }

    /// Deletes the spans that start before `cutoff`; blocks that straddle it are rewritten without them.
    func deleteBefore(_ cutoff: Micros) throws {
        try conn.prepare("DELETE FROM span_blocks WHERE start < ?1 AND last < ?1").bind(1, cutoff).run()
        let s = try conn.prepare("SELECT seq, trace, start, body FROM span_blocks WHERE start < ?")
        s.bind(1, cutoff)
        var straddling: [(Int64, String, [Span])] = []
        while try s.step() {
            let t = SpanBlocks.traceID(s, 1)
            do {
                straddling.append((s.int64(0), t, try SpanBlocks.decodeBlock(s.blob(3), traceID: t, start: s.int64(2), lookup: dictionary.entry)))
            } catch {
                s.reset()
                throw error
            }
        }
        s.reset()
        for (seq, _, spans) in straddling {
            let kept = spans.filter { $0.start >= cutoff }.sorted { $0.start < $1.start }
            if !kept.isEmpty { try rewrite(seq: seq, kept) }
        }
        try conn.prepare("DELETE FROM span_keys WHERE last < ?").bind(1, cutoff).run()
        if rollups { try SpanRollups.deleteBefore(cutoff, conn) }
    }
}
