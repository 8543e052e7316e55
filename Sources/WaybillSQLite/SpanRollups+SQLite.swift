import WaybillModel
import WaybillStore

/// The service view's aggregates, kept as span blocks are written (`span_rollups`): per bucket of an hour
/// and of a minute, one row per service (spans, errors, a `SpanDurationHistogram` of durations) and one per
/// pair of services with calls between them (calls, errors). A call (a span whose parent span is in
/// another service) is counted in the bucket of the callee span's start, by the write that brings the
/// second of the two spans, so each call is counted once whichever arrives first.
enum SpanRollups {
    /// Hours and minutes: a window reads hour rows for its whole hours, minute rows for the whole minutes
    /// beside them, and only its sub-minute edges from the span blocks.
    static let widths: [Micros] = [3_600_000_000, 60_000_000]
    /// The finest width: every other is a whole number of it.
    static let minute: Micros = 60_000_000

    /// The start of the bucket of width `w` holding `t` (the lowest one for times within a bucket of the minimum).
    static func floor(_ t: Micros, _ w: Micros) -> Micros {
        let r = t % w
        guard r < 0 else { return t - r }
        let (b, overflow) = (t - r).subtractingReportingOverflow(w)
        return overflow ? Micros.min : b
    }

    /// The first bucket boundary at or after `t` (the maximum time when none is representable).
    static func ceil(_ t: Micros, _ w: Micros) -> Micros {
        let f = floor(t, w)
        if f == t { return t }
        let (b, overflow) = f.addingReportingOverflow(w)
        return overflow ? Micros.max : b
    }

    struct Key: Hashable {
        var width: Micros
        var bucket: Micros
        /// 0: a service's row (`caller` empty); 1: the calls from `caller` to `service`.
        var kind: Int
        var caller: String
        var service: String
    }

    struct Row {
        var spans = 0
        var errors = 0
        var durations = SpanDurationHistogram()
    }

    /// Changes collected during one write, applied once per row.
    struct Pending {
        var rows: [Key: Row] = [:]

        var isEmpty: Bool { rows.isEmpty }

        /// Changes are collected in minute rows only; `write` folds them into the hour rows.
        mutating func addSpan(_ s: Span, caller: String?) {
            let k = Key(width: minute, bucket: floor(s.start, minute), kind: 0, caller: "", service: s.service)
            Self.count(s, into: &rows[k, default: Row()], duration: true)
            if let caller, caller != s.service { addCall(from: caller, to: s) }
        }

        mutating func addCall(from caller: String, to s: Span) {
            let k = Key(width: minute, bucket: floor(s.start, minute), kind: 1, caller: caller, service: s.service)
            Self.count(s, into: &rows[k, default: Row()], duration: false)
        }

        /// One hash lookup a span, the row changed in place.
        private static func count(_ s: Span, into r: inout Row, duration: Bool) {
            r.spans += 1
            if s.status == .error { r.errors += 1 }
            if duration { r.durations.add(ServiceAggregates.duration(s)) }
        }

        /// Counts the new spans of one trace (`added`, not stored before) and the calls they complete,
        /// given the spans of the trace stored before them.
        mutating func add(trace stored: [Span], added: [Span]) {
            guard !added.isEmpty else { return }
            var service: [String: String] = [:]
            for s in stored { service[s.spanID] = s.service }
            var addedIDs: [String: String] = [:]
            for s in added {
                service[s.spanID] = s.service
                addedIDs[s.spanID] = s.service
            }
            for s in added { addSpan(s, caller: s.parentSpanID.flatMap { service[$0] }) }
            // Spans stored before their parent: the parent's arrival completes their call.
            for c in stored {
                guard let p = c.parentSpanID, let caller = addedIDs[p], caller != c.service else { continue }
                addCall(from: caller, to: c)
            }
        }

        /// Adds the changes to the stored rows of every width (inside the caller's transaction).
        func write(_ conn: Connection) throws {
            guard !rows.isEmpty else { return }
            var all = rows
            for w in widths where w != minute {
                for (k, r) in rows {
                    var c = k
                    c.width = w
                    c.bucket = floor(k.bucket, w)
                    var sum = all[c] ?? Row()
                    sum.spans += r.spans
                    sum.errors += r.errors
                    sum.durations.merge(r.durations)
                    all[c] = sum
                }
            }
            let read = try conn.prepare("SELECT spans, errors, durations FROM span_rollups WHERE width=? AND bucket=? AND kind=? AND caller=? AND service=?")
            let upsert = try conn.prepare("INSERT OR REPLACE INTO span_rollups(width, bucket, kind, caller, service, spans, errors, durations) VALUES(?,?,?,?,?,?,?,?)")
            for (k, change) in all {
                read.reset()
                read.bind(1, k.width).bind(2, k.bucket).bind(3, Int64(k.kind)).bind(4, k.caller).bind(5, k.service)
                var row = change
                if try read.step() {
                    row.spans += read.int(0)
                    row.errors += read.int(1)
                    if k.kind == 0, !read.isNull(2) {
                        do {
                            row.durations.merge(try SpanDurationHistogram(serialized: read.blob(2)))
                        } catch {
                            read.reset()
                            throw StoreError.engine("span rollup row \(k): \(error)")
                        }
                    }
                }
                read.reset()
                upsert.reset()
                upsert.bind(1, k.width).bind(2, k.bucket).bind(3, Int64(k.kind)).bind(4, k.caller).bind(5, k.service)
                upsert.bind(6, row.spans).bind(7, row.errors)
                if k.kind == 0 { upsert.bindBlob(8, row.durations.serialized) } else { upsert.bind(8, nil as Int64?) }
                try upsert.run()
            }
        }
    }

    /// Creates `span_rollups` in a store that has none and fills it from the span blocks, trace by trace,
    /// in one transaction (`meta.span_rollups_backfill` is 1 once done). Kept beside the numbered migrations
    /// rather than in them, so its place among them does not matter: it runs once, as the store opens.
    static func ensureTable(_ c: Connection) throws {
        let m = try c.prepare("SELECT value FROM meta WHERE key = 'span_rollups_backfill'")
        let done = try m.step() && m.text(0) == "1"
        m.reset()
        guard !done else { return }
        try c.transaction {
            try c.exec("""
                CREATE TABLE IF NOT EXISTS span_rollups(width INTEGER NOT NULL, bucket INTEGER NOT NULL, kind INTEGER NOT NULL,
                                                        caller TEXT NOT NULL, service TEXT NOT NULL, spans INTEGER NOT NULL,
                                                        errors INTEGER NOT NULL, durations BLOB,
                                                        PRIMARY KEY(width, bucket, kind, caller, service)) WITHOUT ROWID;
                """)
            try backfill(c)
        }
    }

    /// Fills `span_rollups` from every span block (each trace's spans together, so each call is counted once).
    static func backfill(_ c: Connection) throws {
        let dictionary = SpanDictionary(conn: c)
        try dictionary.loadIfNeeded()
        try c.exec("DELETE FROM span_rollups")
        let s = try c.prepare("SELECT trace, start, body FROM span_blocks ORDER BY trace")
        var changes = Pending()
        var trace: [UInt8]? = nil
        var spans: [Span] = []
        func flushTrace() {
            changes.add(trace: [], added: spans)
            spans.removeAll(keepingCapacity: true)
        }
        do {
            while try s.step() {
                let raw = s.isBlob(0) ? s.blob(0) : Array(s.text(0).utf8)
                if raw != trace {
                    flushTrace()
                    trace = raw
                    if changes.rows.count > 50_000 {
                        try changes.write(c)
                        changes = Pending()
                    }
                }
                let t = SpanBlocks.traceID(s, 0)
                spans += try SpanBlocks.decodeBlock(s.blob(2), traceID: t, start: s.int64(1), lookup: dictionary.entry)
            }
        } catch {
            s.reset()
            throw error
        }
        s.reset()
        flushTrace()
        try changes.write(c)
        try c.exec("INSERT OR REPLACE INTO meta(key, value) VALUES('span_rollups_backfill', '1')")
    }

    /// Drops the rows of buckets that end at or before `cutoff` (retention). A bucket that straddles it
    /// keeps counting the spans retention removed from it until it ends.
    static func deleteBefore(_ cutoff: Micros, _ conn: Connection) throws {
        try conn.prepare("DELETE FROM span_rollups WHERE bucket + width <= ?").bind(1, cutoff).run()
    }
}

extension SQLiteStore: ServiceRollupReader {
    /// Hour rows for the window's whole hours, minute rows for its other whole minutes, and the spans of
    /// its sub-minute edges from the span blocks (a call there looks its parent span up in its trace).
    public func serviceAggregates(in range: Range<Micros>) throws -> ServiceAggregates {
        var out = ServiceAggregates()
        guard !range.isEmpty else { return out }
        let (hour, minute) = (SpanRollups.widths[0], SpanRollups.widths[1])
        let lo = range.lowerBound, hi = range.upperBound
        var rows: [(Micros, Range<Micros>)] = []
        var raw: [Range<Micros>] = []
        let mLo = SpanRollups.ceil(lo, minute), mHi = SpanRollups.floor(hi, minute)
        if mLo >= mHi {
            raw = [range]
        } else {
            raw = [lo..<mLo, mHi..<hi]
            let hLo = SpanRollups.ceil(mLo, hour), hHi = SpanRollups.floor(mHi, hour)
            if hLo >= hHi {
                rows = [(minute, mLo..<mHi)]
            } else {
                rows = [(minute, mLo..<hLo), (hour, hLo..<hHi), (minute, hHi..<mHi)]
            }
        }
        return try readers.with { c in
            let q = try c.prepare("SELECT kind, caller, service, spans, errors, durations FROM span_rollups WHERE width=? AND bucket>=? AND bucket<?")
            defer { q.reset() }
            for (w, r) in rows where !r.isEmpty {
                q.reset()
                q.bind(1, w).bind(2, r.lowerBound).bind(3, r.upperBound)
                while try q.step() {
                    if q.int(0) == 0 {
                        var s = ServiceAggregates.Service()
                        s.spans = q.int(3)
                        s.errors = q.int(4)
                        do {
                            s.durations = try SpanDurationHistogram(serialized: q.blob(5))
                        } catch {
                            throw StoreError.engine("span rollup row of \(q.text(2)): \(error)")
                        }
                        var one = ServiceAggregates()
                        one.services[q.text(2)] = s
                        out.merge(one)
                    } else {
                        var one = ServiceAggregates()
                        var calls = ServiceAggregates.Calls()
                        calls.calls = q.int(3)
                        calls.errors = q.int(4)
                        one.calls[.init(from: q.text(1), to: q.text(2))] = calls
                        out.merge(one)
                    }
                }
            }
            for r in raw where !r.isEmpty { try rawAggregates(r, c, into: &out) }
            return out
        }
    }

    /// The spans starting in `range` read from their blocks, each call's parent looked up in its trace.
    private func rawAggregates(_ range: Range<Micros>, _ c: Connection, into out: inout ServiceAggregates) throws {
        let s = try c.prepare("SELECT trace, start, body FROM span_blocks WHERE start >= ? AND start < ? AND last >= ?")
        s.bind(1, SpanBlocks.earliestBlockStart(for: range.lowerBound)).bind(2, range.upperBound).bind(3, range.lowerBound)
        var spans: [Span] = []
        do {
            while try s.step() {
                for sp in try spanDictionary.decode(s.blob(2), traceID: SpanBlocks.traceID(s, 0), start: s.int64(1), c)
                where range.contains(sp.start) { spans.append(sp) }
            }
        } catch {
            s.reset()
            throw error
        }
        s.reset()
        var service: [String: String] = [:]
        for sp in spans { service[sp.traceID + "/" + sp.spanID] = sp.service }
        var loaded = Set<String>()
        for sp in spans {
            var caller: String?
            if let p = sp.parentSpanID {
                let k = sp.traceID + "/" + p
                if service[k] == nil, loaded.insert(sp.traceID).inserted {
                    for other in try spanDictionary.spans(ofTraces: [sp.traceID], c) { service[other.traceID + "/" + other.spanID] = other.service }
                }
                caller = service[k]
            }
            out.add(sp, caller: caller)
        }
    }
}
