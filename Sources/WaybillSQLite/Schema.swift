/// Schema migrations, applied in order once each; `meta.schema_version` records how far a database is.
///
/// Layout and why:
/// - `events` is appended in arrival order (`seq` is the rowid), so the table itself is written
///   sequentially. Its indexes are `(subject, time)` for trace assembly and `time` for retention and
///   time-range reads (events arrive roughly in time order, so that index grows at its right edge).
/// - Idempotency uses a 64-bit hash of `(source, id)` (collisions are resolved by comparing the stored
///   pair). A hash index is written at random places, and on this kind of machine every dirty page
///   costs WAL and checkpoint syscalls, so its maintenance is deferred: the hashes of the newest events
///   live in memory (rebuilt from `events` after `meta.dedup_merged_seq` at open) and are merged into
///   `dedup` in one sorted pass every few hundred thousand events, so each leaf page of that index is
///   written once per merge rather than once per transaction. A Bloom filter in front answers "new"
///   for nearly every event without touching either.
/// - `orders` holds the per-order facts of kpis.md, updated incrementally at ingest; orders are created
///   roughly in time order, so the rows being updated are recent and stay in cache.
/// - `keys` is the link structure of events.md section 3: every key that takes part in a link points to
///   the root (correlation id) of its group, so a trace is a few index seeks, never a scan.
enum Schema {
    static let migrations: [String] = [
        """
        CREATE TABLE events(
            seq INTEGER PRIMARY KEY,
            time INTEGER NOT NULL,
            subject TEXT NOT NULL,
            source TEXT NOT NULL,
            id TEXT NOT NULL,
            type TEXT NOT NULL,
            trace_id TEXT,
            raw BLOB NOT NULL
        );
        CREATE TABLE dedup(h INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(h, seq)) WITHOUT ROWID;
        CREATE TABLE dedup_recent(h INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(h, seq)) WITHOUT ROWID;
        CREATE INDEX events_subject ON events(subject, time);
        CREATE INDEX events_time ON events(time);
        CREATE TABLE orders(
            rid INTEGER PRIMARY KEY,
            order_id TEXT NOT NULL UNIQUE,
            state INTEGER,
            state_since INTEGER,
            first_time INTEGER NOT NULL,
            last_time INTEGER NOT NULL,
            event_count INTEGER NOT NULL,
            accepted_at INTEGER,
            allocated_at INTEGER,
            released_at INTEGER,
            shipped_at INTEGER,
            channel TEXT,
            region TEXT,
            alloc_wh TEXT,
            ship_wh TEXT,
            types TEXT NOT NULL,
            sources TEXT NOT NULL,
            facts BLOB NOT NULL
        );
        CREATE INDEX orders_first ON orders(first_time);
        CREATE INDEX orders_state ON orders(state, state_since);
        CREATE TABLE keys(key TEXT PRIMARY KEY, root TEXT NOT NULL) WITHOUT ROWID;
        CREATE INDEX keys_root ON keys(root);
        """,
        // KPI rollups (opaque accumulators per dimension, bucket and group; `gk` is "" for the null group
        // and "=" + value otherwise), and the facts indexes that answer the unaligned edges of a window.
        """
        CREATE TABLE rollups(dim TEXT NOT NULL, bucket INTEGER NOT NULL, gk TEXT NOT NULL, acc BLOB NOT NULL,
                             PRIMARY KEY(dim, bucket, gk)) WITHOUT ROWID;
        CREATE INDEX orders_allocated ON orders(allocated_at) WHERE allocated_at IS NOT NULL;
        CREATE INDEX orders_shipped ON orders(shipped_at) WHERE shipped_at IS NOT NULL;
        """,
        // The recent hashes moved from a table into memory (see above).
        """
        INSERT OR IGNORE INTO dedup(h, seq) SELECT h, seq FROM dedup_recent;
        DROP TABLE dedup_recent;
        INSERT OR REPLACE INTO meta(key, value) SELECT 'dedup_merged_seq', CAST(coalesce(max(seq), 0) AS TEXT) FROM events;
        """,
        // Spans: by trace id (the unique key's prefix) and by the order key a span carries. The trace ids
        // of an order's events come from the events themselves, so `events` needs no trace index.
        """
        CREATE TABLE spans(seq INTEGER PRIMARY KEY, trace_id TEXT NOT NULL, span_id TEXT NOT NULL, start INTEGER NOT NULL,
                           order_key TEXT, body BLOB NOT NULL);
        CREATE UNIQUE INDEX spans_id ON spans(trace_id, span_id);
        CREATE INDEX spans_order ON spans(order_key) WHERE order_key IS NOT NULL;
        """,
        // The service view reads spans by start time.
        """
        CREATE INDEX spans_start ON spans(start);
        """,
        // Checkpoints of the embedded services (`WorkflowStore`): one row per name, replaced in one
        // transaction. A rowid table, since a body is megabytes (overflow pages, not a wide B-tree key).
        """
        CREATE TABLE IF NOT EXISTS checkpoints(name TEXT PRIMARY KEY, saved_at INTEGER NOT NULL, body BLOB NOT NULL);
        """,
    ]

    static func groupKey(_ g: String?) -> String { g.map { "=" + $0 } ?? "" }
    static func group(fromKey k: String) -> String? { k.isEmpty ? nil : String(k.dropFirst()) }

    static func migrate(_ c: Connection) throws {
        try c.exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
        let s = try c.prepare("SELECT value FROM meta WHERE key = 'schema_version'")
        let current = try s.step() ? Int(s.text(0)) ?? 0 : 0
        s.reset()
        guard current < migrations.count else { return }
        try c.exec("BEGIN IMMEDIATE")
        do {
            for v in current..<migrations.count { try c.exec(migrations[v]) }
            try c.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', ?)").bind(1, String(migrations.count)).run()
            try c.exec("COMMIT")
        } catch {
            try? c.exec("ROLLBACK")
            throw error
        }
    }
}
