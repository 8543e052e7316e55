import WaybillModel
import WaybillStore

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
/// - Spans (version 6) are stored in blocks, one row per trace and write (`SpanBlocks`): `span_blocks`
///   is appended in arrival order and indexed by trace id (trace assembly) and by `(start, last)` (the
///   service view, retention); `span_keys` holds one row per correlation key and trace, which is what
///   joins spans to orders; `span_dict` codes attribute keys, span names and resources.
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
        // Alerting: the earliest time of every lifecycle stage as a column, so that an SLA rule's open
        // deadlines are one index range (`orders_open_<stage>`, created when a rule first needs it); the
        // alert records; and the durable outbox of notifications. Rows written before this migration get
        // their stage columns from their facts at open (`Schema.backfillStageColumns`).
        """
        ALTER TABLE orders ADD COLUMN validated_at INTEGER;
        ALTER TABLE orders ADD COLUMN picked_at INTEGER;
        ALTER TABLE orders ADD COLUMN packed_at INTEGER;
        ALTER TABLE orders ADD COLUMN delivered_at INTEGER;
        ALTER TABLE orders ADD COLUMN invoiced_at INTEGER;
        ALTER TABLE orders ADD COLUMN cancelled_at INTEGER;
        INSERT OR REPLACE INTO meta(key, value) VALUES('stage_columns_backfill', '0');
        CREATE TABLE alert_records(fingerprint TEXT PRIMARY KEY, record BLOB NOT NULL) WITHOUT ROWID;
        CREATE TABLE alert_outbox(id INTEGER PRIMARY KEY, hook TEXT NOT NULL, fingerprint TEXT NOT NULL, kind TEXT NOT NULL,
                                  body BLOB NOT NULL, created INTEGER NOT NULL, next_at INTEGER NOT NULL,
                                  attempts INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL DEFAULT 'pending',
                                  last_error TEXT, done_at INTEGER);
        CREATE INDEX alert_outbox_due ON alert_outbox(next_at) WHERE status = 'pending';
        """,
        // Compact spans (SpanBlockCodec.swift): blocks of spans of one trace, ids as bytes, keys, names and
        // resources in a dictionary, the correlation keys once per (key, trace). `spans` rows of version 5
        // are converted by `convertVersion5Spans` right after this step, which then drops `spans`.
        """
        CREATE TABLE span_dict(id INTEGER PRIMARY KEY, kind INTEGER NOT NULL, value BLOB NOT NULL);
        CREATE UNIQUE INDEX span_dict_value ON span_dict(kind, value);
        CREATE TABLE span_blocks(seq INTEGER PRIMARY KEY, trace BLOB NOT NULL, start INTEGER NOT NULL, last INTEGER NOT NULL,
                                 n INTEGER NOT NULL, body BLOB NOT NULL);
        CREATE INDEX span_blocks_trace ON span_blocks(trace);
        CREATE INDEX span_blocks_start ON span_blocks(start, last);
        CREATE TABLE span_keys(key TEXT NOT NULL, trace BLOB NOT NULL, last INTEGER NOT NULL, PRIMARY KEY(key, trace)) WITHOUT ROWID;
        """,
        // Checkpoints of the embedded services (`WorkflowStore`): one row per name, replaced in one
        // transaction. A rowid table, since a body is megabytes (overflow pages, not a wide B-tree key).
        """
        CREATE TABLE IF NOT EXISTS checkpoints(name TEXT PRIMARY KEY, saved_at INTEGER NOT NULL, body BLOB NOT NULL);
        """,
        // Access control (`AccessStore`): tokens as SHA-256 hashes, a name unique among active ones; the
        // audit log, append-only. `meta.access_version` changes with every token added or revoked.
        """
        CREATE TABLE access_tokens(id INTEGER PRIMARY KEY, name TEXT NOT NULL, scope TEXT NOT NULL, hash TEXT NOT NULL,
                                   created_at INTEGER NOT NULL, expires_at INTEGER, revoked_at INTEGER, last_used_at INTEGER);
        CREATE UNIQUE INDEX access_tokens_active ON access_tokens(name) WHERE revoked_at IS NULL;
        CREATE TABLE audit_log(id INTEGER PRIMARY KEY, at INTEGER NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL);
        INSERT OR REPLACE INTO meta(key, value) VALUES('access_version', '0');
        """,
        // Compact events (EventBlocks.swift): events in compressed blocks of up to 64 that arrived together
        // within one hour of event time, indexed by first time (time-range reads, retention; `n` makes the
        // event count a covering read; `skip` lists events of the body that are not stored, duplicates found
        // after the block was compressed); `event_keys` has a row per subject and block, for
        // traces; `event_dict` holds the preset dictionaries of their compression. `events` rows of
        // version 9 are converted by `convertVersion9Events` right after this step, which rebuilds `dedup`
        // to point at blocks and then drops `events`.
        """
        CREATE TABLE event_blocks(seq INTEGER PRIMARY KEY, tmin INTEGER NOT NULL, tmax INTEGER NOT NULL, n INTEGER NOT NULL,
                                  body BLOB NOT NULL, skip BLOB);
        CREATE INDEX event_blocks_time ON event_blocks(tmin, tmax, n);
        CREATE TABLE event_keys(subject TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(subject, seq)) WITHOUT ROWID;
        CREATE TABLE event_dict(id INTEGER PRIMARY KEY, body BLOB NOT NULL);
        """,
        // Idempotency hashes in partitions of 2^16 blocks (`g` = block seq >> 16, in `meta.dedup_partition_shift`):
        // a merge of the newest hashes writes into the newest partition only, so its cost does not grow
        // with the store; a probe seeks each partition.
        """
        CREATE TABLE dedup_parts(g INTEGER NOT NULL, h INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(g, h, seq)) WITHOUT ROWID;
        INSERT INTO dedup_parts(g, h, seq) SELECT seq >> 16, h, seq FROM dedup ORDER BY seq >> 16, h, seq;
        DROP TABLE dedup;
        INSERT OR REPLACE INTO meta(key, value) VALUES('dedup_partition_shift', '16');
        """,
        // KPI drill-down rows (DrillTable.swift): each order's own number behind a KPI (allocation delay, shipment
        // lag, units short, lateness) with its groups, clustered by family and time, so a drill-down reads one
        // range of small rows instead of the window's facts. Filled from the facts at open (`meta.kpi_drill_layout`).
        """
        CREATE TABLE kpi_drill(fam INTEGER NOT NULL, at INTEGER NOT NULL, order_id TEXT NOT NULL, value INTEGER NOT NULL,
                               g1 TEXT, g2 TEXT, g3 TEXT, PRIMARY KEY(fam, at, order_id)) WITHOUT ROWID;
        """,
        // Idempotency hashes cut to their upper 32 bits (`DedupIndex.short`): a hash is only a candidate that
        // the block confirms, and 32 bits keep strangers' matches rare while a row shrinks by a quarter.
        // (A store set back to an older version by hand, as tests of older conversions do, has `dedup_runs`
        // instead: the empty table made first lets this step and the next conversion pass over it.)
        """
        CREATE TABLE IF NOT EXISTS dedup_parts(g INTEGER NOT NULL, h INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(g, h, seq)) WITHOUT ROWID;
        CREATE TABLE dedup_parts_short(g INTEGER NOT NULL, h INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(g, h, seq)) WITHOUT ROWID;
        INSERT OR IGNORE INTO dedup_parts_short(g, h, seq) SELECT g, h >> 32, seq FROM dedup_parts ORDER BY g, h >> 32, seq;
        DROP TABLE dedup_parts;
        ALTER TABLE dedup_parts_short RENAME TO dedup_parts;
        """,
        // Which blocks hold a subject's events, as lists (`SubjectBlocks`): one row per subject (and per
        // ~40 blocks of it) instead of one per subject and block; `event_keys` is converted by
        // `SubjectBlocks.convertVersion13Keys` right after this step and dropped.
        SubjectBlocks.createSQL,
        // Idempotency hashes as packed runs per partition (`DedupRuns`: sorted hashes as varint deltas, block
        // seqs as offsets in the partition, about 4 to 5 bytes a pair against 14 for a row); `dedup_parts`
        // is converted by `DedupRuns.convertVersion14Parts` right after this step and dropped.
        DedupRuns.createSQL,
        // KPI rollup rows keyed by a coded dimension and group (`rollup_dims`) and cut into parts of at most
        // 1,900 bytes, so no row spills into a mostly empty overflow page (`RollupTable`); the text-keyed
        // rows are converted by `RollupTable.convertVersion15` right after this step.
        "SELECT 1",
        // Link groups as one row per group (`key_groups`: root and sorted members) and a `keys` row per other
        // member, without the `keys_root` index that stored every key twice (`KeyLinks`); converted by
        // `KeyLinks.convertVersion16` right after this step.
        KeyLinks.createSQL,
        // Order facts of format 4 (`FactsCodec.encodeRow`): a value leaves out what its row's columns hold
        // (times, event count, types, sources). Nothing to convert (older values stay readable and are rewritten when their order is next
        // written); the version only makes an older waybill refuse the store instead of skipping those facts.
        "SELECT 1",
        // KPI drill rows with their groups coded in `rollup_dims` (`DrillTable`): the table is made anew and
        // filled from the facts at open (its layout marker is dropped with it).
        "DROP TABLE IF EXISTS kpi_drill; DELETE FROM meta WHERE key = 'kpi_drill_layout';" + DrillTable.createSQL,
        // The journal of a server's rollup window (`RollupWindow`): each order's facts before the window's
        // first touch, folded into the rollups once a window and emptied.
        RollupWindow.createSQL,
    ]

    /// The stage-time column of each lifecycle stage.
    static func stageColumn(_ s: Stage) -> String { s.name + "_at" }

    /// Fills the stage columns of rows written before they existed, from each row's facts.
    static func backfillStageColumns(_ c: Connection) throws {
        let m = try c.prepare("SELECT value FROM meta WHERE key = 'stage_columns_backfill'")
        let pending = try m.step() && m.text(0) == "0"
        m.reset()
        guard pending else { return }
        try c.transaction {
            let sel = try c.prepare("SELECT rid, \(FactsCodec.rowColumns) FROM orders")
            let cols = Stage.allCases.map { stageColumn($0) + "=?" }.joined(separator: ", ")
            let upd = try c.prepare("UPDATE orders SET \(cols) WHERE rid=?")
            var rows: [(Int64, OrderFacts)] = []
            while try sel.step() {
                if let f = FactsCodec.decode(sel, at: 1) { rows.append((sel.int64(0), f)) }
            }
            sel.reset()
            for (rid, f) in rows {
                upd.reset()
                for (i, s) in Stage.allCases.enumerated() { upd.bind(Int32(i + 1), f.stageTimes[s]) }
                upd.bind(Int32(Stage.allCases.count + 1), rid)
                try upd.run()
            }
            try c.exec("UPDATE meta SET value = '1' WHERE key = 'stage_columns_backfill'")
        }
    }

    /// Steps in Swift that run right after the SQL migration of the same schema version, in its transaction.
    static let conversions: [Int: @Sendable (Connection) throws -> Void] = [
        7: { try convertVersion5Spans($0) },
        10: { try convertVersion9Events($0) },
        14: { try SubjectBlocks.convertVersion13Keys($0) },
        15: { try DedupRuns.convertVersion14Parts($0) },
        16: { try RollupTable.convertVersion15($0) },
        17: { try KeyLinks.convertVersion16($0) },
    ]

    /// Moves the `events` rows of version 9 into event blocks (in their arrival order, cut as a bulk
    /// ingest of every 20,000 of them would cut them), points `dedup` at the
    /// blocks, then drops `events` and its indexes. The raw bytes of every event are kept as they are.
    static func convertVersion9Events(_ c: Connection) throws {
        // The blocks list their subjects in the table of version 14 (made here already; its step leaves it).
        try c.exec(SubjectBlocks.createSQL)
        let table = try EventBlockTable(conn: c, dictionary: EventDictionary())
        try c.exec("DELETE FROM dedup")
        let ins = try c.prepare("INSERT OR IGNORE INTO dedup(h, seq) VALUES(?, ?)")
        let s = try c.prepare("SELECT id, source, type, time, subject, trace_id, raw FROM events ORDER BY seq")
        var batch: [CloudEvent] = []
        func flush() throws {
            try table.learnDictionaryIfNeeded(from: batch)
            // The dictionary becomes current when the migration commits; use it for the rest now.
            table.adoptPendingDictionary()
            var rows: [(Int64, Int64)] = []
            for ix in EventBlocks.group(batch) {
                let seq = try table.insert(ix.lazy.map { batch[$0] })
                for i in ix { rows.append((DedupIndex.hash(source: batch[i].source, id: batch[i].id), seq)) }
            }
            rows.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
            for (h, q) in rows {
                ins.reset()
                try ins.bind(1, h).bind(2, q).run()
            }
            batch.removeAll(keepingCapacity: true)
        }
        while try s.step() {
            batch.append(CloudEvent(id: s.text(0), source: s.text(1), type: s.text(2), time: s.int64(3), subject: s.text(4),
                                    traceID: s.optText(5), data: nil, raw: s.blob(6)))
            if batch.count >= 20_000 { try flush() }
        }
        s.reset()
        try flush()
        try c.exec("""
            INSERT OR REPLACE INTO meta(key, value) SELECT 'dedup_merged_seq', CAST(coalesce(max(seq), 0) AS TEXT) FROM event_blocks;
            DROP TABLE events;
            """)
    }

    /// Moves the JSON span rows of version 5 into span blocks, keeping the correlation key each row was
    /// stored with, then drops the old table and its indexes. Spans of one trace are converted together.
    static func convertVersion5Spans(_ c: Connection) throws {
        let writer = SpanBlockWriter(conn: c, rollups: false)
        let s = try c.prepare("SELECT order_key, body FROM spans ORDER BY trace_id, start")
        var batch: [(span: Span, key: String?)] = []
        while try s.step() {
            let body = s.blob(1)
            guard let span = (try? JSONParser.parse(body)).flatMap(Span.init(storageJSON:)) else {
                s.reset()
                throw StoreError.engine("migration 7: a stored span is not readable: \(String(decoding: body.prefix(120), as: UTF8.self))")
            }
            if batch.count >= 5_000, batch.last?.span.traceID != span.traceID {
                _ = try writer.write(batch)
                batch.removeAll(keepingCapacity: true)
            }
            batch.append((span, s.optText(0)))
        }
        s.reset()
        _ = try writer.write(batch)
        try c.exec("DROP TABLE spans")
    }

    static func groupKey(_ g: String?) -> String { g.map { "=" + $0 } ?? "" }
    static func group(fromKey k: String) -> String? { k.isEmpty ? nil : String(k.dropFirst()) }

    static func migrate(_ c: Connection) throws {
        try c.exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
        let s = try c.prepare("SELECT value FROM meta WHERE key = 'schema_version'")
        let current = try s.step() ? Int(s.text(0)) ?? 0 : 0
        s.reset()
        // A store written by a newer waybill may hold rows this one misreads (event blocks of a later
        // format, shorter idempotency hashes that a full-hash probe would miss): refuse it, do not guess.
        guard current <= migrations.count else {
            throw StoreError.engine("the store's schema version is \(current), newer than this waybill's \(migrations.count): "
                                    + "it was written by a newer waybill; open it with that version or later")
        }
        if current < migrations.count {
            try c.transaction {
                for v in current..<migrations.count {
                    try c.exec(migrations[v])
                    try conversions[v + 1]?(c)
                }
                try c.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', ?)").bind(1, String(migrations.count)).run()
            }
        }
        try backfillStageColumns(c)
        try SpanRollups.ensureTable(c)
    }
}
