import CSQLite
import Foundation
import WaybillModel
import WaybillStore

/// The write path, run by the writer thread only: dedup, append, per-order facts and links,
/// all inside one transaction per batch.
final class EventWriteSession {
    let conn: Connection
    /// Idempotency hashes of the events after `mergedSeq`, kept in memory instead of in a B-tree: a
    /// hash index is written at random places, and each dirty page costs WAL and checkpoint syscalls.
    /// They are persisted by the events themselves (rebuilt from `events` at open) and merged into the
    /// `dedup` table in one sorted pass every `recentDedupLimit` events.
    private var recent: [Int64: Int64] = [:]
    /// The rare second event whose hash is already in `recent`.
    private var recentCollisions: [Int64: [Int64]] = [:]
    /// Entries added by the open transaction, taken out again if it rolls back.
    private var uncommittedRecent: [Int64] = []
    /// Every event with `seq <= mergedSeq` has its hash in `dedup`.
    private var mergedSeq: Int64 = 0
    let recentDedupLimit: Int

    /// Facts of recently updated orders, so the hot path does not re-read and re-parse them. Only this
    /// session writes `orders`, so the cache is exact; it is dropped whenever a transaction rolls back.
    private var factsCache: [String: (rid: Int64, facts: OrderFacts)] = [:]
    private let factsCacheLimit = 20_000

    private let eventKey: Statement
    private let probeMerged: Statement
    private let insertEvent: Statement

    private var filter = DedupFilter(capacity: 0)
    /// Built on the first write, so opening a store only to read (the CLI) does not scan every hash.
    private var filterReady = false

    let rollup: (any FactsRollup)?
    /// Span attributes that join a span to an order (`SpanCorrelation`), checked when the span is stored.
    let correlationKeys: [String]
    let spanWriter: SpanBlockWriter

    init(conn: Connection, rollup: (any FactsRollup)?, recentDedupLimit: Int = 300_000,
         correlationKeys: [String] = SpanCorrelation.defaultKeys) throws {
        self.conn = conn
        self.correlationKeys = correlationKeys
        spanWriter = SpanBlockWriter(conn: conn)
        self.rollup = rollup
        self.recentDedupLimit = recentDedupLimit
        eventKey = try Statement(conn: conn, sql: "SELECT source, id FROM events WHERE seq = ?")
        probeMerged = try Statement(conn: conn, sql: "SELECT e.source, e.id FROM dedup d JOIN events e ON e.seq = d.seq WHERE d.h = ?")
        insertEvent = try Statement(conn: conn, sql: "INSERT INTO events(time, subject, source, id, type, trace_id, raw) VALUES(?,?,?,?,?,?,?)")
        try rebuildRollupsIfNeeded()
    }

    /// Reloads the recent hashes: the events stored after the last merge.
    private func loadRecent() throws {
        recent.removeAll()
        recentCollisions.removeAll()
        let m = try conn.prepare("SELECT value FROM meta WHERE key = 'dedup_merged_seq'")
        mergedSeq = try m.step() ? Int64(m.text(0)) ?? 0 : 0
        m.reset()
        let s = try conn.prepare("SELECT seq, source, id FROM events WHERE seq > ?")
        s.bind(1, mergedSeq)
        while try s.step() { addRecent(Self.dedupHash(source: s.text(1), id: s.text(2)), s.int64(0)) }
        s.reset()
    }

    private func addRecent(_ h: Int64, _ seq: Int64) {
        if recent[h] == nil { recent[h] = seq } else { recentCollisions[h, default: []].append(seq) }
    }

    /// Rebuilds every rollup row from the stored facts when the database has none for this rollup's
    /// layout (a new rollup, changed bucket widths, or a database written without one).
    private func rebuildRollupsIfNeeded() throws {
        guard let rollup else { return }
        let marker = rollup.layout
        let m = try conn.prepare("SELECT value FROM meta WHERE key = 'rollup_bucket'")
        let current = try m.step() ? m.text(0) : nil
        m.reset()
        guard current != marker else { return }
        try conn.exec("BEGIN IMMEDIATE")
        do {
            try conn.exec("DELETE FROM rollups")
            let s = try conn.prepare("SELECT facts FROM orders ORDER BY rid")
            var batch: [FactsTransition] = []
            func flush() throws {
                try writeRollups(rollup, batch)
                batch.removeAll(keepingCapacity: true)
            }
            while try s.step() {
                if let f = OrderFacts(storageBytes: s.blob(0)) {
                    batch.append(FactsTransition(old: nil, new: f))
                    if batch.count >= 10_000 { try flush() }
                }
            }
            s.reset()
            try flush()
            try conn.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES('rollup_bucket', ?)").bind(1, marker).run()
            try conn.exec("COMMIT")
        } catch {
            try? conn.exec("ROLLBACK")
            throw error
        }
    }

    private func writeRollups(_ rollup: any FactsRollup, _ transitions: [FactsTransition]) throws {
        guard !transitions.isEmpty else { return }
        let read = try conn.prepare("SELECT acc FROM rollups WHERE dim = ? AND bucket = ? AND gk = ?")
        let put = try conn.prepare("INSERT OR REPLACE INTO rollups(dim, bucket, gk, acc) VALUES(?, ?, ?, ?)")
        let del = try conn.prepare("DELETE FROM rollups WHERE dim = ? AND bucket = ? AND gk = ?")
        let rows = try rollup.update(transitions) { key in
            read.reset()
            read.bind(1, key.dimension).bind(2, key.bucketStart).bind(3, Schema.groupKey(key.group))
            defer { read.reset() }
            return try read.step() ? read.blob(0) : nil
        }
        for (key, bytes) in rows {
            let s = bytes == nil ? del : put
            s.reset()
            s.bind(1, key.dimension).bind(2, key.bucketStart).bind(3, Schema.groupKey(key.group))
            if let bytes { s.bindBlob(4, bytes) }
            try s.run()
        }
    }

    /// Fills the filter from every stored hash (at first write, and when it has grown full).
    private func rebuildFilter(minimumCapacity: Int) throws {
        let stored = try conn.scalarInt("SELECT count(*) FROM dedup") + recent.count
        var f = DedupFilter(capacity: max(minimumCapacity, stored * 2))
        let s = try conn.prepare("SELECT h FROM dedup")
        while try s.step() { f.insert(s.int64(0)) }
        s.reset()
        for h in recent.keys { f.insert(h) }
        filter = f
    }

    /// Writes the recent hashes into `dedup` in one sorted pass, so each leaf page of that index is
    /// written once per merge rather than once per transaction.
    func mergeRecentDedup() throws {
        guard !recent.isEmpty else { return }
        var rows: [(Int64, Int64)] = recent.map { ($0.key, $0.value) }
        for (h, seqs) in recentCollisions { for q in seqs { rows.append((h, q)) } }
        rows.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        let top = rows.map(\.1).max() ?? mergedSeq
        try conn.exec("BEGIN IMMEDIATE")
        do {
            let ins = try conn.prepare("INSERT OR IGNORE INTO dedup(h, seq) VALUES(?, ?)")
            for (h, q) in rows {
                ins.reset()
                try ins.bind(1, h).bind(2, q).run()
            }
            let newMerged = max(mergedSeq, top, Int64(try conn.scalarInt("SELECT coalesce(max(seq), 0) FROM events")))
            try conn.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES('dedup_merged_seq', ?)").bind(1, String(newMerged)).run()
            try conn.exec("COMMIT")
            mergedSeq = newMerged
            recent.removeAll(keepingCapacity: true)
            recentCollisions.removeAll()
        } catch {
            try? conn.exec("ROLLBACK")
            throw error
        }
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
        let batches = prepared.map(\.events)
        phase(nil)
        try conn.exec("BEGIN IMMEDIATE")
        do {
            var results: [AppendResult] = []
            results.reserveCapacity(batches.count)
            var fresh: [(batch: Int, index: Int)] = []
            for b in batches.indices {
                var r = AppendResult()
                for i in batches[b].indices {
                    if try insert(batches[b][i]) {
                        r.accepted += 1
                        fresh.append((b, i))
                    } else {
                        r.duplicates += 1
                    }
                }
                results.append(r)
            }
            phase("insert")
            try updateFacts(prepared, fresh)
            phase("facts")
            try updateLinks(batches, fresh)
            phase("links")
            try conn.exec("COMMIT")
            phase("commit")
            uncommittedRecent.removeAll(keepingCapacity: true)
            if filter.count > filter.capacity { try rebuildFilter(minimumCapacity: filter.capacity * 2) }
            if recent.count >= recentDedupLimit {
                try mergeRecentDedup()
                phase("dedup-merge")
            }
            return results
        } catch {
            try? conn.exec("ROLLBACK")
            factsCache.removeAll()
            // The rolled-back events are not stored: forget their hashes (reloading is exact).
            if !uncommittedRecent.isEmpty {
                uncommittedRecent.removeAll()
                try? loadRecent()
            }
            throw error
        }
    }

    /// 64-bit FNV-1a of `source`, a separator and `id`: the narrow idempotency index.
    static func dedupHash(source: String, id: String) -> Int64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in source.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        h = (h ^ 0xFF) &* 0x100_0000_01b3
        for b in id.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Int64(bitPattern: h)
    }

    /// Inserts unless `(source, id)` is stored already; true when inserted.
    private func insert(_ e: CloudEvent) throws -> Bool {
        let h = Self.dedupHash(source: e.source, id: e.id)
        if !filterReady {
            try loadRecent()
            try rebuildFilter(minimumCapacity: 1 << 20)
            filterReady = true
        }
        if filter.mayContain(h) {
            if let first = recent[h] {
                for seq in [first] + (recentCollisions[h] ?? []) {
                    eventKey.reset()
                    eventKey.bind(1, seq)
                    if try eventKey.step(), eventKey.text(0) == e.source, eventKey.text(1) == e.id {
                        eventKey.reset()
                        return false
                    }
                }
                eventKey.reset()
            }
            probeMerged.reset()
            probeMerged.bind(1, h)
            while try probeMerged.step() {
                if probeMerged.text(0) == e.source && probeMerged.text(1) == e.id {
                    probeMerged.reset()
                    return false
                }
            }
            probeMerged.reset()
        }
        let ins = insertEvent
        ins.reset()
        ins.bind(1, e.time).bind(2, e.subject).bind(3, e.source).bind(4, e.id).bind(5, e.type).bind(6, e.traceID)
        ins.bindBlob(7, e.raw)
        try ins.run()
        let seq = sqlite3_last_insert_rowid(conn.db)
        addRecent(h, seq)
        uncommittedRecent.append(h)
        // Into the filter at once, so a repeat later in the same transaction is probed. After a rollback
        // the filter may hold hashes that were never stored: that only costs an exact probe.
        filter.insert(h)
        return true
    }

    /// Merges the facts of the fresh order events into `orders`. Each append arrives with its events
    /// already folded per order (done on the caller's thread, off this one); an append whose order had
    /// a duplicate is refolded from its fresh events only, so a duplicate never contributes.
    private func updateFacts(_ prepared: [PreparedAppend], _ fresh: [(batch: Int, index: Int)]) throws {
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
        guard !deltas.isEmpty else { return }
        var transitions: [FactsTransition] = []
        let load = try conn.prepare("SELECT rid, facts FROM orders WHERE order_id = ?")
        let upd = try conn.prepare("""
            UPDATE orders SET state=?, state_since=?, first_time=?, last_time=?, event_count=?, accepted_at=?, allocated_at=?,
            released_at=?, shipped_at=?, channel=?, region=?, alloc_wh=?, ship_wh=?, types=?, sources=?, facts=?,
            validated_at=?, picked_at=?, packed_at=?, delivered_at=?, invoiced_at=?, cancelled_at=? WHERE rid=?
            """)
        let ins = try conn.prepare("""
            INSERT INTO orders(state, state_since, first_time, last_time, event_count, accepted_at, allocated_at,
            released_at, shipped_at, channel, region, alloc_wh, ship_wh, types, sources, facts,
            validated_at, picked_at, packed_at, delivered_at, invoiced_at, cancelled_at, order_id)
            VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
            """)
        // Sorted so that the transaction's writes do not depend on dictionary order.
        for subject in deltas.keys.sorted() {
            var facts = OrderFacts(orderID: subject)
            var rid: Int64?
            if let cached = factsCache[subject] {
                rid = cached.rid
                facts = cached.facts
            } else {
                load.bind(1, subject)
                if try load.step() {
                    rid = load.int64(0)
                    if let f = OrderFacts(storageBytes: load.blob(1)) { facts = f }
                }
                load.reset()
            }
            let old = rid == nil ? nil : facts
            facts.merge(deltas[subject]!)
            if rollup != nil { transitions.append(FactsTransition(old: old, new: facts)) }
            let s = rid == nil ? ins : upd
            s.bind(1, facts.state.map { Int64($0.rawValue) }).bind(2, facts.stateSince)
            s.bind(3, facts.firstEventAt ?? 0).bind(4, facts.lastEventAt ?? 0).bind(5, facts.eventCount)
            s.bind(6, facts.acceptedAt).bind(7, facts.allocatedAt).bind(8, facts.releasedAt).bind(9, facts.shippedAt)
            s.bind(10, facts.channel).bind(11, facts.region).bind(12, facts.allocationWarehouse).bind(13, facts.shipmentWarehouse)
            s.bind(14, "|" + facts.types.sorted().joined(separator: "|") + "|")
            s.bind(15, "|" + facts.sources.sorted().joined(separator: "|") + "|")
            s.bindBlob(16, facts.storageBytes)
            // The stage columns the alert deadlines read (the other four stages have their own columns above).
            for (i, stage) in Self.extraStageColumns.enumerated() { s.bind(Int32(17 + i), facts.stageTimes[stage]) }
            if let rid { s.bind(23, rid) } else { s.bind(23, subject) }
            try s.run()
            if factsCache.count >= factsCacheLimit { factsCache.removeAll(keepingCapacity: true) }
            factsCache[subject] = (rid ?? sqlite3_last_insert_rowid(conn.db), facts)
            if rid == nil, let root = try root(of: subject) {
                // A key already in a link group became an order: the group's root may change.
                try rewriteGroup(members: try members(of: root))
            }
        }
        if let rollup { try writeRollups(rollup, transitions) }
    }

    static let extraStageColumns: [Stage] = [.validated, .picked, .packed, .delivered, .invoiced, .cancelled]

    private func updateLinks(_ batches: [[CloudEvent]], _ fresh: [(batch: Int, index: Int)]) throws {
        for f in fresh where batches[f.batch][f.index].data?["links"] != nil {
            let e = batches[f.batch][f.index]
            for l in e.links where l != e.subject { try union(e.subject, l) }
        }
    }

    private func root(of key: String) throws -> String? {
        let s = try conn.prepare("SELECT root FROM keys WHERE key = ?")
        s.bind(1, key)
        defer { s.reset() }
        return try s.step() ? s.text(0) : nil
    }

    private func members(of root: String) throws -> [String] {
        let s = try conn.prepare("SELECT key FROM keys WHERE root = ?")
        s.bind(1, root)
        defer { s.reset() }
        var out: [String] = []
        while try s.step() { out.append(s.text(0)) }
        return out
    }

    private func isOrder(_ key: String) throws -> Bool {
        let s = try conn.prepare("SELECT 1 FROM orders WHERE order_id = ?")
        s.bind(1, key)
        defer { s.reset() }
        return try s.step()
    }

    /// Joins the groups of `a` and `b`. The root of a group is a function of its members only (the
    /// smallest key that is an order, else the smallest key), so it does not depend on arrival order.
    private func union(_ a: String, _ b: String) throws {
        let ra = try root(of: a), rb = try root(of: b)
        if let ra, ra == rb { return }
        var all = Set(try ra.map(members(of:)) ?? [a])
        all.formUnion(try rb.map(members(of:)) ?? [b])
        try rewriteGroup(members: Array(all))
    }

    private func rewriteGroup(members: [String]) throws {
        var orders: [String] = []
        for m in members where try isOrder(m) { orders.append(m) }
        guard let newRoot = orders.min() ?? members.min() else { return }
        let s = try conn.prepare("INSERT OR REPLACE INTO keys(key, root) VALUES(?, ?)")
        for m in members {
            s.bind(1, m).bind(2, newRoot)
            try s.run()
        }
    }

    /// Stores several appends of spans in one transaction, one result each; `(trace id, span id)`
    /// already stored, by an earlier append or earlier in the same one, is a duplicate.
    func writeSpans(_ batches: [[Span]]) throws -> [AppendResult] {
        try conn.exec("BEGIN IMMEDIATE")
        do {
            let results = try batches.map { spans in
                try spanWriter.write(spans.map { ($0, SpanCorrelation.key(of: $0, keys: correlationKeys)) })
            }
            try conn.exec("COMMIT")
            spanWriter.committed()
            return results
        } catch {
            try? conn.exec("ROLLBACK")
            spanWriter.rolledBack()
            throw error
        }
    }

    func transaction(_ body: (Connection) throws -> Void) throws {
        try conn.exec("BEGIN IMMEDIATE")
        do {
            try body(conn)
            try conn.exec("COMMIT")
        } catch {
            try? conn.exec("ROLLBACK")
            throw error
        }
    }

    func deleteBefore(_ cutoff: Micros) throws -> Int {
        try conn.exec("BEGIN IMMEDIATE")
        do {
            try conn.prepare("DELETE FROM dedup WHERE seq IN (SELECT seq FROM events WHERE time < ?)").bind(1, cutoff).run()
            try conn.prepare("DELETE FROM events WHERE time < ?").bind(1, cutoff).run()
            let n = conn.changes
            try spanWriter.deleteBefore(cutoff)
            if let rollup {
                // Retract the deleted orders from the rollups before their facts go.
                let s = try conn.prepare("SELECT facts FROM orders WHERE last_time < ?")
                s.bind(1, cutoff)
                var gone: [FactsTransition] = []
                while try s.step() {
                    if let f = OrderFacts(storageBytes: s.blob(0)) {
                        gone.append(FactsTransition(old: f, new: OrderFacts(orderID: f.orderID)))
                    }
                }
                s.reset()
                try writeRollups(rollup, gone)
            }
            try conn.prepare("DELETE FROM orders WHERE last_time < ?").bind(1, cutoff).run()
            try conn.exec("COMMIT")
            spanWriter.committed()
            factsCache.removeAll()
            // Deleted events leave the recent hashes too; the filter may keep their bits (false positives only).
            if filterReady { try loadRecent() }
            return n
        } catch {
            try? conn.exec("ROLLBACK")
            spanWriter.rolledBack()
            throw error
        }
    }
}

/// One append with its order events folded into facts per order before it reaches the writer.
struct PreparedAppend: Sendable {
    let events: [CloudEvent]
    let facts: [String: OrderFacts]
}

/// Batches concurrent appends into shared transactions (group commit) on one dedicated thread, so
/// blocking SQLite calls never occupy the Swift concurrency pool and throughput does not depend on
/// request size. The queue is bounded: past `maxQueuedEvents` an append is refused, not buffered.
final class GroupCommitWriter: @unchecked Sendable {
    private enum Job {
        case append(PreparedAppend, CheckedContinuation<AppendResult, any Error>)
        case delete(Micros, CheckedContinuation<Int, any Error>)
        case spans([Span], CheckedContinuation<AppendResult, any Error>)
        /// Any other write (alert records, outbox, an index), in its own transaction on the writer's connection.
        case transaction(@Sendable (Connection) throws -> Void, CheckedContinuation<Void, any Error>)
    }

    private let session: EventWriteSession
    private let maxQueued: Int
    private let maxBatch: Int
    private let cond = NSCondition()
    private var jobs: [Job] = []
    private var queued = 0
    private var stopping = false
    private var stopped = false
    /// Tests hold the writer to fill its queue deterministically.
    private var paused = false
    private var thread: Thread?

    init(session: EventWriteSession, maxQueuedEvents: Int, maxBatchEvents: Int) {
        self.session = session
        self.maxQueued = maxQueuedEvents
        self.maxBatch = maxBatchEvents
        let t = Thread { [unowned self] in self.run() }
        t.name = "waybill-writer"
        t.stackSize = 4 << 20
        thread = t
        t.start()
    }

    var queuedEvents: Int {
        cond.lock()
        defer { cond.unlock() }
        return queued
    }

    func append(_ events: [CloudEvent]) async throws -> AppendResult {
        // Folding facts here runs on the caller's thread, in parallel with the writer.
        let prepared = PreparedAppend(events: events, facts: OrderFacts.fold(events))
        return try await enqueue(count: events.count) { .append(prepared, $0) }
    }

    func appendSpans(_ spans: [Span]) async throws -> AppendResult {
        try await enqueue(count: spans.count) { .spans(spans, $0) }
    }

    /// Queues a write of `count` items, or refuses it at once when the store is closing or the queue is full.
    private func enqueue(count: Int, _ job: @escaping (CheckedContinuation<AppendResult, any Error>) -> Job) async throws -> AppendResult {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<AppendResult, any Error>) in
            cond.lock()
            if stopping {
                cond.unlock()
                c.resume(throwing: StoreError.unavailable("the store is closing"))
                return
            }
            // An oversized request is still taken when the queue is empty, so no request can starve.
            if queued > 0 && queued + count > maxQueued {
                cond.unlock()
                c.resume(throwing: StoreError.overloaded(retryAfterSeconds: 1))
                return
            }
            jobs.append(job(c))
            queued += count
            cond.signal()
            cond.unlock()
        }
    }

    func deleteBefore(_ cutoff: Micros) async throws -> Int {
        try await enqueueUnbounded { .delete(cutoff, $0) }
    }

    /// Runs `body` in one transaction on the writer thread.
    func transaction(_ body: @escaping @Sendable (Connection) throws -> Void) async throws {
        try await enqueueUnbounded { .transaction(body, $0) }
    }

    /// Queues a job that runs in a transaction of its own and is not counted against the queue bound.
    private func enqueueUnbounded<T>(_ job: @escaping (CheckedContinuation<T, any Error>) -> Job) async throws -> T {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<T, any Error>) in
            cond.lock()
            if stopping {
                cond.unlock()
                c.resume(throwing: StoreError.unavailable("the store is closing"))
                return
            }
            jobs.append(job(c))
            cond.signal()
            cond.unlock()
        }
    }

    func setPaused(_ p: Bool) {
        cond.lock()
        paused = p
        cond.broadcast()
        cond.unlock()
    }

    /// Finishes every queued job, then ends the thread.
    func stop() {
        cond.lock()
        if stopped { cond.unlock(); return }
        stopping = true
        cond.broadcast()
        while !stopped { cond.wait() }
        cond.unlock()
    }

    private func run() {
        while true {
            cond.lock()
            while (jobs.isEmpty || paused) && !stopping { cond.wait() }
            if jobs.isEmpty && stopping {
                stopped = true
                cond.broadcast()
                cond.unlock()
                return
            }
            // Take appends (or span appends) up to the batch size, or one delete or other transaction.
            var take: [Job] = []
            var n = 0
            if case .delete = jobs[0] {
                take.append(jobs.removeFirst())
            } else if case .transaction = jobs[0] {
                take.append(jobs.removeFirst())
            } else if case .spans = jobs[0] {
                // Span appends share a transaction too, up to the batch size.
                while let first = jobs.first, case .spans(let ss, _) = first, take.isEmpty || n + ss.count <= maxBatch {
                    take.append(jobs.removeFirst())
                    n += ss.count
                }
            } else {
                while let first = jobs.first, case .append(let p, _) = first, take.isEmpty || n + p.events.count <= maxBatch {
                    take.append(jobs.removeFirst())
                    n += p.events.count
                }
            }
            cond.unlock()
            execute(take)
            cond.lock()
            queued -= n
            cond.unlock()
        }
    }

    private func execute(_ take: [Job]) {
        if case .delete(let cutoff, let c) = take[0] {
            do { c.resume(returning: try session.deleteBefore(cutoff)) } catch { c.resume(throwing: error) }
            return
        }
        if case .transaction(let body, let c) = take[0] {
            do { c.resume(returning: try session.transaction(body)) } catch { c.resume(throwing: error) }
            return
        }
        if case .spans = take[0] {
            commit(take.compactMap { if case .spans(let s, let c) = $0 { return (s, c) } else { return nil } }, session.writeSpans)
        } else {
            commit(take.compactMap { if case .append(let p, let c) = $0 { return (p, c) } else { return nil } }, session.write)
        }
    }

    /// Writes the batches of several jobs in one transaction and answers each job.
    private func commit<Batch>(_ jobs: [(Batch, CheckedContinuation<AppendResult, any Error>)], _ write: ([Batch]) throws -> [AppendResult]) {
        do {
            let results = try write(jobs.map(\.0))
            for (j, r) in zip(jobs, results) { j.1.resume(returning: r) }
        } catch {
            for j in jobs { j.1.resume(throwing: error) }
        }
    }
}
