import CSQLite
import Foundation
import WaybillModel
import WaybillStore

/// The embedded engine: one SQLite database in WAL mode, written by a single group-commit writer
/// thread and read through a small pool of connections.
public final class SQLiteStore: WaybillStore, WorkflowStore, @unchecked Sendable {
    public struct Options: Sendable {
        /// `FULL` (default) also survives power loss: every append is answered once the WAL holding it is
        /// synced (by a thread of its own, `WALSyncer`); `NORMAL` survives process crashes only.
        public var synchronous: String = "FULL"
        /// Page cache of the writer connection, in MiB.
        public var writerCacheMiB = 64
        /// Page cache of each reader connection, in MiB.
        public var readerCacheMiB = 16
        /// Events waiting to be written beyond which `append` throws `StoreError.overloaded`.
        public var maxQueuedEvents = 20_000
        /// Most events written in one transaction.
        public var maxBatchEvents = 20_000
        /// Memory-mapped reads for the writer: its index probes read pages without a syscall each.
        /// Mapped pages count towards RSS, so this is bounded.
        public var mmapBytes = 64 << 20
        /// Events whose idempotency hashes stay in memory before they are merged into the `dedup` index.
        public var recentDedupLimit = 300_000
        /// Span attributes (span, then resource) whose value joins a span to an order: events.md section 4,
        /// configured by `collectors/waybill-collectors.yaml`. Applied when a span is stored.
        public var correlationKeys = SpanCorrelation.defaultKeys
        /// How long a write waits for a lock another process holds before it fails with a `busy` fault.
        public var busyTimeoutMillis = 10_000
        /// While writes fail with a fault, the writer tries a small write this often when idle, so the
        /// fault clears once its cause is gone even when no client writes.
        public var faultProbeSeconds = 2.0
        /// Bulk loads only (`waybill ingest`): order rows and KPI rollup rows are written once per epoch of
        /// this many events (or `deferredFactsOrders` distinct orders, or until another kind of write or
        /// close), the facts merged in memory meanwhile, instead of in every transaction that touches an
        /// order (`OrdersTable.Deferral`); nil (the default): every transaction writes its orders' rows and
        /// rollups. Readers see facts and KPIs behind the events during an epoch (rows and rollups agree
        /// with each other), and a store closed mid-epoch (kill -9) recomputes them from the stored events
        /// when it is next opened.
        public var deferredFactsEvents: Int?
        public var deferredFactsOrders = 30_000
        /// Servers (`waybill serve`, `waybill demo`): KPI rollup rows are written once per window of this many
        /// commits (or `rollupWindowOrders` distinct orders, or a reader of rollups in this process, or
        /// `rollupIdleFoldSeconds` without writes), each order's facts before the window journalled
        /// in its commit (`RollupWindow`); nil (the default): in every commit. Readers in this process always
        /// see rollups of every committed event; another process reading the store sees them at most one
        /// window behind. Only the process that holds `LoadLock` keeps a window.
        public var rollupWindowCommits: Int?
        public var rollupWindowOrders = 20_000
        /// Seconds without writes after which the writer folds an open rollup window.
        public var rollupIdleFoldSeconds = 0.2
        /// WAL frames (8 KiB pages) past which a checkpoint copies them into the database file. It runs on
        /// a thread of its own (`WALCheckpointer`); the writer runs one itself only past 8 times as many.
        public var walCheckpointPages: Int32 = 8000
        public init() {}
    }

    public let path: String
    let options: Options
    let writer: GroupCommitWriter
    let writeSession: EventWriteSession
    let readers: ReaderPool
    /// The WAL checkpoints, off the writer thread; nil with `WAYBILL_INLINE_CHECKPOINTS` set (SQLite's
    /// automatic checkpoint inside the commit, as before: for A/B benchmarks).
    let checkpointer: WALCheckpointer?
    let spanDictionary = SpanDictionaryCache()
    /// The preset dictionaries of event blocks, shared by the writer and the readers.
    let eventDictionary = EventDictionary()
    private let health = StorageHealthMonitor()

    /// - Parameter rollup: maintains KPI rollups beside the facts (the server and CLI pass the KPI engine's).
    public init(path: String, options: Options = Options(), rollup: (any FactsRollup)? = nil) throws {
        self.path = path
        self.options = options
        let conn = try Connection(path: path, busyTimeoutMillis: Int32(clamping: options.busyTimeoutMillis))
        // Larger pages halve the per-page syscalls of WAL writes and checkpoints; only takes effect on a new file.
        // WAYBILL_PAGE_SIZE (512-65536, a power of two) sets another for A/B benchmarks.
        let pageSize = ProcessInfo.processInfo.environment["WAYBILL_PAGE_SIZE"].flatMap(Int.init)
            .flatMap { $0 >= 512 && $0 <= 65536 && $0 & ($0 - 1) == 0 ? $0 : nil } ?? 8192
        try conn.exec("PRAGMA page_size=\(pageSize)")
        try conn.exec("PRAGMA journal_mode=WAL")
        try conn.exec("PRAGMA synchronous=\(options.synchronous == "NORMAL" ? "NORMAL" : "FULL")")
        try conn.exec("PRAGMA cache_size=-\(options.writerCacheMiB * 1024)")
        try conn.exec("PRAGMA temp_store=MEMORY")
        try conn.exec("PRAGMA secure_delete=OFF")
        try conn.exec("PRAGMA wal_autocheckpoint=\(options.walCheckpointPages)")
        try conn.exec("PRAGMA mmap_size=\(options.mmapBytes)")
        try Schema.migrate(conn)
        let write = try EventWriteSession(conn: conn, rollup: rollup, recentDedupLimit: options.recentDedupLimit,
                                          correlationKeys: options.correlationKeys, dictionary: eventDictionary,
                                          deferredFacts: options.deferredFactsEvents.map {
                                              OrdersTable.Deferral(maxOrders: options.deferredFactsOrders, maxEvents: $0) },
                                          rollupWindow: options.rollupWindowCommits.flatMap {
                                              $0 > 1 ? RollupWindow.Bounds(commits: $0, orders: options.rollupWindowOrders) : nil },
                                          loadLock: LoadLock(storePath: path))
        writeSession = write
        conn.health = health
        // FULL: the writer commits without waiting for the disk and a thread of its own syncs the WAL before
        // the commits are answered (`WALSyncer`); WAYBILL_INLINE_SYNC=1 syncs inside each commit, as before
        // (for A/B benchmarks).
        var syncer: WALSyncer?
        if options.synchronous != "NORMAL", ProcessInfo.processInfo.environment["WAYBILL_INLINE_SYNC"] == nil,
           try Self.journalMode(conn) == "wal" {
            try conn.exec("PRAGMA synchronous=NORMAL")
            syncer = WALSyncer(databasePath: path, health: health)
        }
        writer = GroupCommitWriter(session: write, maxQueuedEvents: options.maxQueuedEvents, maxBatchEvents: options.maxBatchEvents,
                                   health: health, faultProbeSeconds: options.faultProbeSeconds, syncer: syncer,
                                   idleFoldSeconds: options.rollupIdleFoldSeconds)
        checkpointer = ProcessInfo.processInfo.environment["WAYBILL_INLINE_CHECKPOINTS"] != nil ? nil
            : try WALCheckpointer(path: path, writer: conn, synchronous: options.synchronous, threshold: options.walCheckpointPages,
                                  busyTimeoutMillis: Int32(clamping: options.busyTimeoutMillis))
        readers = ReaderPool(path: path, cacheMiB: options.readerCacheMiB)
    }

    deinit { close() }

    static func journalMode(_ conn: Connection) throws -> String {
        let s = try conn.prepare("PRAGMA journal_mode")
        defer { s.reset() }
        return try s.step() ? s.text(0).lowercased() : ""
    }

    public func close() {
        writer.stop()
        checkpointer?.stop()
        writeSession.releaseLoadLock()
        if writeSession.profiling {
            FileHandle.standardError.write(Data("writer phases (s): \(writeSession.phaseSeconds.sorted { $0.key < $1.key })\n".utf8))
        }
    }

    public func append(_ events: [CloudEvent]) async throws -> AppendResult {
        if events.isEmpty { return AppendResult() }
        return try await writer.append(events)
    }

    public func appendSpans(_ spans: [Span]) async throws -> AppendResult {
        if spans.isEmpty { return AppendResult() }
        return try await writer.appendSpans(spans)
    }

    public func spans(startingIn range: Range<Micros>, limit: Int) throws -> [Span] {
        guard limit > 0, !range.isEmpty else { return [] }
        return try readers.with { c in
            // A block holds starts within `maxWidth` of its first, so blocks that begin up to that much
            // before the window may hold spans in it. Once `limit` spans are found, a block that starts
            // after the limit-th earliest of them cannot change the answer.
            let s = try c.prepare("SELECT trace, start, body FROM span_blocks WHERE start >= ? AND start < ? AND last >= ? ORDER BY start")
            s.bind(1, SpanBlocks.earliestBlockStart(for: range.lowerBound)).bind(2, range.upperBound).bind(3, range.lowerBound)
            defer { s.reset() }
            var out: [Span] = []
            var bound: Micros?
            while try s.step() {
                if let bound, s.int64(1) > bound { break }
                for sp in try spanDictionary.decode(s.blob(2), traceID: SpanBlocks.traceID(s, 0), start: s.int64(1), c)
                where range.contains(sp.start) { out.append(sp) }
                if bound == nil, out.count >= limit {
                    out.sort { $0.start < $1.start }
                    bound = out[limit - 1].start
                }
            }
            out.sort { ($0.start, $0.traceID, $0.spanID) < ($1.start, $1.traceID, $1.spanID) }
            return Array(out.prefix(limit))
        }
    }

    public func deleteEvents(before cutoff: Micros) async throws -> Int {
        try await writer.deleteBefore(cutoff)
    }

    /// Queued on the writer behind every write accepted before it, so it commits after them.
    public func saveCheckpoint(name: String, bytes: [UInt8]) async throws {
        try await writer.transaction { c in
            let s = try c.prepare("INSERT OR REPLACE INTO checkpoints(name, saved_at, body) VALUES(?, ?, coalesce(?, X''))")
            s.bind(1, name).bind(2, currentMicros())
            s.bindBlob(3, bytes)
            try s.run()
        }
    }

    public func loadCheckpoint(name: String) throws -> StoredCheckpoint? {
        try readers.with { c in
            let s = try c.prepare("SELECT body, saved_at FROM checkpoints WHERE name = ?")
            s.bind(1, name)
            defer { s.reset() }
            return try s.step() ? StoredCheckpoint(bytes: s.blob(0), savedAt: s.int64(1)) : nil
        }
    }

    public func stats() throws -> StoreStats {
        try readers.with { c in
            StoreStats(events: try c.scalarInt("SELECT coalesce(sum(n), 0) FROM event_blocks"),
                       orders: try c.scalarInt("SELECT count(*) FROM orders"),
                       linkedKeys: try KeyLinks.count(c),
                       queuedEvents: writer.queuedEvents)
        }
    }

    public var queuedEvents: Int { writer.queuedEvents }

    public var storageHealth: StorageHealth { health.health }

    // MARK: Reading

    public func trace(key: String) throws -> Trace? {
        try readers.with { c in
            let group = try KeyLinks.group(of: key, c)
            let root = group?.root
            let members = group?.members ?? [key]
            let events = try EventBlockTable.events(ofSubjects: members, dictionary: eventDictionary, c)
            let spans = try loadSpans(c, members: members, events: events)
            if events.isEmpty && root == nil && spans.isEmpty { return nil }
            let correlation = root ?? key
            return Trace(correlationID: correlation, keys: members, events: events, facts: try Self.loadFacts(c, correlation), spans: spans)
        }
    }

    public func facts(orderID: String) throws -> OrderFacts? {
        try readers.with { c in try Self.loadFacts(c, orderID) }
    }

    /// Every span of every trace that belongs to the group: traces named by its events' `traceparent`,
    /// and traces of which some span carries one of its keys.
    func loadSpans(_ c: Connection, members: [String], events: [CloudEvent]) throws -> [Span] {
        let traceIDs = Set(events.compactMap(\.traceID)).union(try Self.keyedTraces(members, c).values.joined())
        return try spanDictionary.spans(ofTraces: traceIDs.sorted(), c)
    }

    /// The traces of which some span carries one of `keys` (`span_keys`), by key.
    static func keyedTraces(_ keys: [String], _ c: Connection) throws -> [String: Set<String>] {
        let byKey = try c.prepare("SELECT trace FROM span_keys WHERE key = ?")
        defer { byKey.reset() }
        var out: [String: Set<String>] = [:]
        for k in keys {
            byKey.reset()
            byKey.bind(1, k)
            while try byKey.step() { out[k, default: []].insert(SpanBlocks.traceID(byKey, 0)) }
        }
        return out
    }

    /// The spans of many keys' traces in one pass: every event block and span block is decoded once for all
    /// the keys, where one `trace(key:)` per key would decode a block once per order it holds (a block holds
    /// the events of many interleaved orders).
    public func traceSpans(keys: [String]) throws -> [String: [Span]] {
        try readers.with { c in
            var membersOf: [String: [String]] = [:]
            for k in Set(keys) { membersOf[k] = try KeyLinks.group(of: k, c)?.members ?? [k] }
            let members = Set(membersOf.values.joined()).sorted()
            var tracesOf = try Self.keyedTraces(members, c)
            for e in try EventBlockTable.events(ofSubjects: members, dictionary: eventDictionary, c) {
                if let t = e.traceID { tracesOf[e.subject, default: []].insert(t) }
            }
            return TraceSpanGroups.spans(groups: membersOf, traces: tracesOf,
                                         spans: try spanDictionary.spans(ofTraces: Set(tracesOf.values.joined()).sorted(), c))
        }
    }

    static func loadFacts(_ c: Connection, _ orderID: String) throws -> OrderFacts? {
        let s = try c.prepare("SELECT \(FactsCodec.rowColumns) FROM orders WHERE order_id = ?")
        s.bind(1, orderID)
        defer { s.reset() }
        guard try s.step() else { return nil }
        return FactsCodec.decode(s, at: 0)
    }

    public func searchOrders(_ q: OrderQuery) throws -> OrderPage {
        var sql = "SELECT order_id, state, state_since, first_time, last_time, event_count, channel, alloc_wh, ship_wh FROM orders WHERE 1=1"
        var binds: [(Statement, Int32) -> Void] = []
        func add(_ clause: String, _ b: @escaping (Statement, Int32) -> Void) {
            sql += " AND " + clause
            binds.append(b)
        }
        if let s = q.state { add("state = ?") { $0.bind($1, Int64(s.rawValue)) } }
        func contains(_ column: String, _ word: String) {
            let needles = WordSetColumn.needles(word)
            sql += " AND (" + needles.map { _ in "instr(\(column), ?) > 0" }.joined(separator: " OR ") + ")"
            for n in needles { binds.append { $0.bindBlob($1, n) } }
        }
        if let t = q.type { contains("types", t) }
        if let s = q.source { contains("sources", s) }
        if let w = q.warehouse {
            add("(alloc_wh = ?") { $0.bind($1, w) }
            sql += " OR ship_wh = ?)"
            binds.append { $0.bind($1, w) }
        }
        if let ch = q.channel { add("channel = ?") { $0.bind($1, ch) } }
        if let r = q.region { add("region = ?") { $0.bind($1, r) } }
        if let to = q.to { add("first_time < ?") { $0.bind($1, to) } }
        if let from = q.from { add("last_time >= ?") { $0.bind($1, from) } }
        if let stuck = q.stuckFor {
            let cutoff = q.now - stuck
            add("state_since <= ?") { $0.bind($1, cutoff) }
            sql += " AND state NOT IN (\(Stage.invoiced.rawValue), \(Stage.cancelled.rawValue))"
        }
        if let cursor = q.cursor {
            guard let (t, id) = OrderCursor.decode(cursor) else { throw QueryError(field: "cursor", rule: "is not a cursor this server issued") }
            add("(first_time < ?") { $0.bind($1, t) }
            sql += " OR (first_time = ? AND order_id < ?))"
            binds.append { $0.bind($1, t) }
            binds.append { $0.bind($1, id) }
        }
        let limit = max(1, min(q.limit, 10_000))
        sql += " ORDER BY first_time DESC, order_id DESC LIMIT \(limit + 1)"
        return try readers.with { c in
            let s = try c.prepare(sql)
            for (i, b) in binds.enumerated() { b(s, Int32(i + 1)) }
            defer { s.reset() }
            var out: [OrderSummary] = []
            while try s.step() {
                out.append(OrderSummary(
                    correlationID: s.text(0), state: s.optInt64(1).flatMap { Stage(rawValue: Int($0)) }, stateSince: s.optInt64(2),
                    firstEventAt: s.int64(3), lastEventAt: s.int64(4), eventCount: s.int(5), channel: s.optText(6),
                    warehouse: s.optText(8) ?? s.optText(7)))
            }
            var next: String?
            if out.count > limit {
                out.removeLast()
                next = out.last.map { OrderCursor.encode($0.firstEventAt, $0.correlationID) }
            }
            return OrderPage(orders: out, nextCursor: next)
        }
    }

    /// Before a read of rollup or drill rows: the writer folds its rollup window, so that they hold every
    /// committed event (`RollupWindow`). A fold that fails (a full disk fails the appends too) leaves the
    /// read to the rows as last folded: reads stay available while writes fail.
    func rollupsCurrent() {
        try? writer.foldRollups()
    }

    public func rollupRows(dimension: String, in ranges: [Range<Micros>]) throws -> [(key: RollupKey, bytes: [UInt8])] {
        rollupsCurrent()
        return try storedRollupRows(dimension: dimension, in: ranges)
    }

    /// The rows as last folded, without waiting for the writer (`RollupReader.contextRollupRows`).
    public func contextRollupRows(dimension: String, in ranges: [Range<Micros>]) throws -> [(key: RollupKey, bytes: [UInt8])] {
        try storedRollupRows(dimension: dimension, in: ranges)
    }

    private func storedRollupRows(dimension: String, in ranges: [Range<Micros>]) throws -> [(key: RollupKey, bytes: [UInt8])] {
        try readers.with { c in
            // A row is its parts in order (`RollupTable`), one code per dimension and group.
            let s = try c.prepare("SELECT bucket, part, acc FROM rollups WHERE d = ? AND bucket >= ? AND bucket < ? ORDER BY bucket, part")
            var out: [(key: RollupKey, bytes: [UInt8])] = []
            for (code, group) in try RollupDimCodes.codes(c, dim: dimension) {
                for r in ranges {
                    s.reset()
                    s.bind(1, code).bind(2, r.lowerBound).bind(3, r.upperBound)
                    while try s.step() {
                        if s.int64(1) > 0, let last = out.last, last.key.bucketStart == s.int64(0), last.key.group == group {
                            out[out.count - 1].bytes += s.blob(2)
                        } else {
                            out.append((RollupKey(dimension: dimension, group: group, bucketStart: s.int64(0)), s.blob(2)))
                        }
                    }
                }
            }
            s.reset()
            return out
        }
    }

    public func kpiFacts(in ranges: [Range<Micros>]) throws -> [OrderFacts] {
        try readers.with { c in
            var seen = Set<Int64>()
            var out: [OrderFacts] = []
            for column in ["allocated_at", "shipped_at"] {
                let s = try c.prepare("SELECT rid, \(FactsCodec.rowColumns) FROM orders WHERE \(column) >= ? AND \(column) < ?")
                for r in ranges {
                    s.reset()
                    s.bind(1, r.lowerBound).bind(2, r.upperBound)
                    while try s.step() {
                        guard seen.insert(s.int64(0)).inserted else { continue }
                        if let f = FactsCodec.decode(s, at: 1) { out.append(f) }
                    }
                }
                s.reset()
            }
            return out
        }
    }
}


/// Read connections, checked out one per call. SQLite reads are microseconds, so they run on the
/// caller's thread instead of hopping to another executor.
final class ReaderPool: @unchecked Sendable {
    private let path: String
    private let cacheMiB: Int
    private let lock = NSLock()
    private var idle: [Connection] = []

    init(path: String, cacheMiB: Int) {
        self.path = path
        self.cacheMiB = cacheMiB
    }

    func with<T>(_ body: (Connection) throws -> T) throws -> T {
        lock.lock()
        var conn = idle.popLast()
        lock.unlock()
        if conn == nil {
            let c = try Connection(path: path)
            try c.exec("PRAGMA cache_size=-\(cacheMiB * 1024)")
            try c.exec("PRAGMA query_only=1")
            conn = c
        }
        let c = conn!
        defer {
            lock.lock()
            if idle.count < 8 { idle.append(c) }
            lock.unlock()
        }
        return try body(c)
    }
}
