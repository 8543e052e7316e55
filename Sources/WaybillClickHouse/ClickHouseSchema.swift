import WaybillModel

/// Waybill's tables in ClickHouse, written for ClickHouse 18.16 (Debian's) and current releases alike:
/// no JSON functions, times as Int64 microseconds, no TTL, no `ON CLUSTER`.
///
/// Every table is a MergeTree on each node (`<name>_local` in a cluster, `<name>` on one node) and, in
/// a cluster, a Distributed table `<name>` over them. Rows are never updated in place: a change is a
/// new row, and readers take the newest (`ver`) per key, or deduplicate by the natural key
/// (ReplacingMergeTree collapses the copies in the background; readers never rely on that having happened).
///
/// - `events`: one row per event as received (`raw`), partitioned by day of `time` (retention drops
///   partitions), ordered by `(subject, time, source, id)`: an order's events are one range, and a resent
///   event is a copy of the same sorting key, so the background merges drop it. Sharded by the subject.
/// - `event_days`: the days (`intDiv(time, 86400000000)`, the partitions of `events`) that hold events
///   of a subject, written beside the events. A trace reads an order's events only in its days' time
///   range: a point read of `events` otherwise opens every day's parts (a month is 30 partitions).
/// - `orders`: the per-order facts, one row per version (`ver` = the number of distinct events folded),
///   with the columns search, KPI edges and deadlines filter on. Sharded by the order id, so an order's
///   facts row is on the shard of its events.
/// - `facts_base`: for orders that outlived a retention cut, the facts of their deleted events.
/// - `links`: the link edges of events.md section 3, both directions; groups are found at read time.
/// - `spans` (sharded by trace id) and `span_keys` (the correlation key of a span, by key).
/// - `rollup_keys`: which orders' facts ever fell into which rollup bucket (an index for `rollupRows`).
/// - `rollup_cache`: a rollup bucket's rows as `rollupRows` last computed them, with when (`at`);
///   `rollup_dirty`: when a write last changed the facts of an order in a bucket (`*`: every bucket).
///   A cached bucket is read only while it is newer than its last change (`rollupRows`). Under the KPI
///   engine's rollup, `rollup_keys` and `rollup_dirty` name a tier's buckets by its total's name (one
///   row for the total and its dimensions, which hold the same orders: `KPIBucketKeys.indexKey`).
/// - Small tables of one writer at a time (`meta`, checkpoints, alerting, access control) are sharded
///   to the first shard (sharding key 0).
struct ClickHouseSchema {
    struct Table {
        let name: String
        let columns: String
        let engine: String
        /// The Distributed table's sharding key.
        let shardKey: String
    }

    static let day: Micros = 86_400_000_000

    /// Tables read by key one trace at a time keep smaller granules than ClickHouse's 8,192 rows: a point
    /// read decompresses one granule of every column it reads (8,192 facts rows are megabytes).
    static func pointReads(_ rows: Int) -> String { " SETTINGS index_granularity = \(rows)" }
    static let dayPartition = "intDiv(%@, 86400000000)"

    static func stageColumn(_ s: Stage) -> String { s.name + "_at" }

    static let tables: [Table] = [
        Table(name: "events",
              columns: "time Int64, subject String, source String, id String, type String, trace_id String, raw String",
              engine: "ReplacingMergeTree() PARTITION BY intDiv(time, 86400000000) ORDER BY (subject, time, source, id)" + Self.pointReads(1024),
              shardKey: "cityHash64(subject)"),
        Table(name: "event_days", columns: "subject String, day Int64",
              engine: "ReplacingMergeTree() ORDER BY (subject, day)" + Self.pointReads(1024), shardKey: "cityHash64(subject)"),
        Table(name: "orders",
              columns: "order_id String, ver UInt64, state Nullable(Int8), state_since Nullable(Int64), first_time Int64, last_time Int64, "
                  + "event_count UInt32, channel Nullable(String), region Nullable(String), alloc_wh Nullable(String), ship_wh Nullable(String), "
                  + Stage.allCases.map { stageColumn($0) + " Nullable(Int64)" }.joined(separator: ", ")
                  + ", types Array(String), sources Array(String), facts String",
              engine: "ReplacingMergeTree(ver) ORDER BY order_id" + Self.pointReads(256),
              shardKey: "cityHash64(order_id)"),
        Table(name: "facts_base", columns: "order_id String, ver UInt64, facts String",
              engine: "ReplacingMergeTree(ver) ORDER BY order_id", shardKey: "cityHash64(order_id)"),
        Table(name: "links", columns: "a String, b String", engine: "ReplacingMergeTree() ORDER BY (a, b)" + Self.pointReads(1024), shardKey: "cityHash64(a)"),
        Table(name: "spans", columns: "trace_id String, span_id String, start Int64, body String",
              engine: "ReplacingMergeTree() PARTITION BY intDiv(start, 86400000000) ORDER BY (trace_id, span_id)" + Self.pointReads(1024),
              shardKey: "cityHash64(trace_id)"),
        Table(name: "span_keys", columns: "key String, trace_id String, start Int64",
              engine: "ReplacingMergeTree() PARTITION BY intDiv(start, 86400000000) ORDER BY (key, trace_id, start)" + Self.pointReads(1024),
              shardKey: "cityHash64(key)"),
        Table(name: "rollup_keys", columns: "dim String, bucket Int64, order_id String",
              engine: "ReplacingMergeTree() ORDER BY (dim, bucket, order_id)", shardKey: "cityHash64(order_id)"),
        Table(name: "rollup_dirty", columns: "dim String, bucket Int64, at Int64",
              engine: "ReplacingMergeTree(at) ORDER BY (dim, bucket)", shardKey: "0"),
        Table(name: "rollup_cache", columns: "layout String, dim String, bucket Int64, at Int64, rows String",
              engine: "ReplacingMergeTree(at) ORDER BY (layout, dim, bucket)", shardKey: "0"),
        Table(name: "meta", columns: "key String, value String, ver UInt64", engine: "ReplacingMergeTree(ver) ORDER BY key", shardKey: "0"),
        Table(name: "checkpoints", columns: "name String, saved_at Int64, body String, ver UInt64",
              engine: "ReplacingMergeTree(ver) ORDER BY name", shardKey: "0"),
        Table(name: "alert_records", columns: "fingerprint String, record String, deleted UInt8, ver UInt64",
              engine: "ReplacingMergeTree(ver) ORDER BY fingerprint", shardKey: "0"),
        Table(name: "alert_outbox",
              columns: "id Int64, hook String, fingerprint String, kind String, body String, created Int64, next_at Int64, attempts Int32, "
                  + "status String, last_error Nullable(String), done_at Nullable(Int64), gone UInt8, ver UInt64",
              engine: "ReplacingMergeTree(ver) ORDER BY id", shardKey: "0"),
        Table(name: "access_tokens",
              columns: "id Int64, name String, scope String, hash String, created_at Int64, expires_at Nullable(Int64), revoked_at Nullable(Int64), ver UInt64",
              engine: "ReplacingMergeTree(ver) ORDER BY id", shardKey: "0"),
        Table(name: "token_use", columns: "token_id Int64, at Int64", engine: "ReplacingMergeTree() ORDER BY (token_id, at)", shardKey: "0"),
        Table(name: "access_changes", columns: "seq UInt64, at Int64", engine: "MergeTree() ORDER BY seq", shardKey: "0"),
        Table(name: "audit_log", columns: "seq UInt64, at Int64, actor String, action String, detail String",
              engine: "MergeTree() ORDER BY seq", shardKey: "0"),
    ]

    let database: String
    let cluster: String?

    /// The table a node stores rows in.
    func local(_ name: String) -> String { "\(database).\(name)" + (cluster == nil ? "" : "_local") }
    /// The table Waybill reads and writes through: the Distributed one in a cluster.
    func table(_ name: String) -> String { "\(database).\(name)" }

    /// The statements that create everything on one node, idempotently, each with the table it creates
    /// (nil for the database).
    func ddl() -> [(table: String?, sql: String)] {
        var out: [(String?, String)] = [(nil, "CREATE DATABASE IF NOT EXISTS \(database)")]
        for t in Self.tables {
            out.append((cluster == nil ? t.name : t.name + "_local", "CREATE TABLE IF NOT EXISTS \(local(t.name)) (\(t.columns)) ENGINE = \(t.engine)"))
            if let cluster {
                out.append((t.name, "CREATE TABLE IF NOT EXISTS \(table(t.name)) AS \(local(t.name)) "
                            + "ENGINE = Distributed(\(cluster), \(database), \(t.name)_local, \(t.shardKey))"))
            }
        }
        return out
    }
}
