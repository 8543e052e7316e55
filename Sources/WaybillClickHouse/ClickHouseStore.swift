// The ClickHouse engine (issue 12): the storage protocols of WaybillStore over ClickHouse's HTTP interface.
import Foundation
import WaybillKPI
import WaybillModel
import WaybillStore

/// The scale-out engine: Waybill's storage over a ClickHouse server or cluster (docs/clickhouse.md).
///
/// Exactness rests on read-time deduplication, not on what a writer knew: events are read once per
/// `(source, id)`; an order's facts are refolded from all its stored events after every write that
/// touches it and kept as versioned rows whose version is the number of distinct events folded, so the
/// newest row of an order is the one that saw every event (two writers that each saw a prefix of the
/// inserts leave the larger one on top); link groups are walked at read time from the stored edges; and
/// KPI rollup rows are computed at read time from the current facts of the orders indexed under the
/// bucket. Several Waybill servers may write one database at once; within one process writes are serialized.
public final class ClickHouseStore: WaybillStore, AlertStore, DeadlineReader, WorkflowStore, @unchecked Sendable {
    public struct Options: Sendable {
        /// Events waiting to be written beyond which `append` throws `StoreError.overloaded`.
        public var maxQueuedEvents = 50_000
        /// Span attributes whose value joins a span to an order (`SpanCorrelation`).
        public var correlationKeys = SpanCorrelation.defaultKeys
        /// While writes fail with a fault, a small write is tried this often.
        public var faultProbeSeconds = 2.0
        /// How long retention waits for ClickHouse to finish its deletes.
        public var mutationTimeoutSeconds = 300.0
        /// A cached KPI rollup bucket is read only when computed more than this after its last change
        /// (`rollupRows`): at least the clock difference between the Waybill servers writing the store.
        public var rollupCacheMargin: Micros = 2_000_000
        public init() {}
    }

    public let url: ClickHouseURL
    let options: Options
    let client: ClickHouseClient
    let schema: ClickHouseSchema
    let rollup: (any FactsRollup)?
    /// The rollup's bucket keys computed without the rollup (the KPI engine's rollup), else nil.
    let bucketKeys: KPIBucketKeys?
    let gate: WriteGate
    /// The second stage of appends (their facts), in the order of their first (`append`).
    let pipeline = TicketPipeline()
    let health = StorageHealthMonitor()
    let factsCache = FactsCache()
    /// Rollup buckets `rollupRows` answered from `rollup_cache` and computed from facts (tests, diagnostics).
    let rollupCacheCounts = RollupCacheCounts()
    /// Rows inserted by this process, per table (tests, diagnostics).
    let insertedRows = InsertedRows()
    /// Rollup buckets as this process last computed or read them from `rollup_cache`, with when they
    /// were computed: read under the same rule as `rollup_cache` (newer than the bucket's last change mark).
    let bucketCache = BucketCache()
    /// Index in `url.hosts` of each node of the cluster (each host once); without a cluster, one nil:
    /// whichever host answers (failover).
    let nodes: [Int?]
    /// Which node holds which keys (`ShardMap`); nil on one node, or when the layout is unknown (reads
    /// and writes then go through the Distributed tables).
    let shards: ShardMap?
    private let probeLock = NSLock()
    private var probing = false
    private var closed = false

    /// Connects, checks the server, and creates the database and tables on every node (idempotent).
    /// Blocks the calling thread; `open(url:environment:rollup:)` is the asynchronous entry point.
    public init(url: ClickHouseURL, rollup: (any FactsRollup)?, options: Options = Options()) throws {
        self.url = url
        self.options = options
        self.rollup = rollup
        bucketKeys = KPIBucketKeys.make(rollup)
        guard !url.hosts.isEmpty else { throw FieldError(field: "store.host", rule: "at least one HOST:PORT is needed") }
        client = ClickHouseClient(url: url)
        schema = ClickHouseSchema(database: url.database, cluster: url.cluster)
        gate = WriteGate(maxQueuedEvents: options.maxQueuedEvents)
        do {
            let found = try Self.discoverNodes(client, url)
            nodes = found.nodes
            shards = found.clusters.isEmpty ? nil : try ShardMap.hashesAgree(client) ? ShardMap.from(found.clusters) : nil
            var upgraded = false
            for node in nodes {
                // Only what is missing: an open of an existing store costs one query per node.
                let existing = Set(try ClickHouseClient.rows(client.sendBlocking(
                    "SELECT name FROM system.tables WHERE database = \(SQL.quote(url.database)) FORMAT JSONEachRow", database: false, only: node))
                    .compactMap { $0["name"]?.stringValue })
                for (name, statement) in schema.ddl() where name.map({ !existing.contains($0) }) ?? existing.isEmpty {
                    _ = try client.sendBlocking(statement, database: false, only: node)
                }
                let events = url.cluster == nil ? "events" : "events_local", days = url.cluster == nil ? "event_days" : "event_days_local"
                if existing.contains(events), !existing.contains(days) {
                    // A store written before `event_days`: the days of the events this node holds (a
                    // subject's rows are on the node of its events: both are sharded by the subject).
                    _ = try client.sendBlocking("INSERT INTO \(schema.local("event_days")) (subject, day) SELECT subject, "
                                                + "intDiv(time, \(ClickHouseSchema.day)) - if(time < 0 AND time % \(ClickHouseSchema.day) != 0, 1, 0) AS day "
                                                + "FROM \(schema.local("events")) GROUP BY subject, day", only: node)
                }
                if existing.contains("rollup_keys") || existing.contains("rollup_keys_local"),
                   !existing.contains("rollup_dirty") && !existing.contains("rollup_dirty_local") { upgraded = true }
            }
            if upgraded {
                // A store written before the KPI rollup cache: every bucket it holds counts as changed now.
                _ = try client.sendBlocking("INSERT INTO \(schema.table("rollup_dirty")) (dim, bucket, at) SELECT dim, bucket, toInt64(\(currentMicros())) "
                                            + "FROM \(schema.table("rollup_keys")) GROUP BY dim, bucket")
            }
            try prepareRollupIndex()
        } catch {
            client.shutdown()
            throw error
        }
    }

    deinit { close() }

    /// Opens (and creates, on every node of the cluster) the store at `url`; `environment` may hold the
    /// password (`WAYBILL_CLICKHOUSE_PASSWORD`). `rollup` keeps the KPI rollups (the KPI engine's by default).
    public static func open(url: String, environment: [String: String], rollup: (any FactsRollup)? = KPIFactsRollup(),
                            options: Options = Options()) async throws -> ClickHouseStore {
        let parsed = try ClickHouseURL(parsing: url, environment: environment)
        return try await withCheckedThrowingContinuation { c in
            Thread.detachNewThread {
                c.resume(with: Result { try ClickHouseStore(url: parsed, rollup: rollup, options: options) })
            }
        }
    }

    /// Checks the version and, with a cluster, which host of the URL is which node of it: every node of
    /// the cluster must be reachable through one host of the URL, since tables are created on each.
    static func discoverNodes(_ client: ClickHouseClient, _ url: ClickHouseURL) throws -> (nodes: [Int?], clusters: [(host: Int, rows: [JSONValue])]) {
        let versionRows = try ClickHouseClient.rows(client.sendBlocking("SELECT version() AS v FORMAT JSONEachRow", database: false))
        let version = versionRows.first?["v"]?.stringValue ?? ""
        let parts = version.split(separator: ".").compactMap { Int($0) }
        guard parts.count >= 2, (parts[0], parts[1]) >= (18, 16) else {
            throw ClickHouseError.unsupported("the server is \(version.isEmpty ? "of unknown version" : version); Waybill needs 18.16 or later")
        }
        guard let cluster = url.cluster else { return ([nil], []) }
        var covered: [String: Int] = [:]
        var nodes: [Int?] = []
        var problems: [String] = []
        var all: [JSONValue] = []
        var answers: [(host: Int, rows: [JSONValue])] = []
        for i in url.hosts.indices {
            let rows: [JSONValue]
            do {
                rows = try ClickHouseClient.rows(client.sendBlocking(
                    "SELECT shard_num, shard_weight, replica_num, host_name, port, is_local FROM system.clusters WHERE cluster = \(SQL.quote(cluster)) FORMAT JSONEachRow",
                    database: false, only: i))
            } catch let e as ClickHouseError {
                if case .unreachable = e { problems.append("\(url.hosts[i]) is unreachable"); continue }
                throw e
            }
            if rows.isEmpty { throw ClickHouseError.cluster("\(url.hosts[i]) has no cluster '\(cluster)' in its remote_servers configuration") }
            if all.isEmpty { all = rows }
            answers.append((i, rows))
            let local = rows.filter { $0["is_local"]?.int64 == 1 }
            guard let me = local.first else {
                throw ClickHouseError.cluster("\(url.hosts[i]) is not itself a node of cluster '\(cluster)' (no entry of system.clusters is local)")
            }
            let id = "\(me["shard_num"]?.int64 ?? 0)/\(me["replica_num"]?.int64 ?? 0)"
            if covered[id] == nil {
                covered[id] = i
                nodes.append(i)
            }
        }
        var missing: [String] = []
        for r in all {
            let id = "\(r["shard_num"]?.int64 ?? 0)/\(r["replica_num"]?.int64 ?? 0)"
            if covered[id] == nil {
                missing.append("shard \(r["shard_num"]?.int64 ?? 0) replica \(r["replica_num"]?.int64 ?? 0) (\(r["host_name"]?.stringValue ?? "?"), TCP port \(r["port"]?.int64 ?? 0))")
            }
        }
        if !missing.isEmpty {
            throw ClickHouseError.cluster("Waybill creates its tables on every node, but no host of the URL is "
                + missing.joined(separator: ", ") + (problems.isEmpty ? "" : "; " + problems.joined(separator: ", "))
                + ": add each node's HTTP address to the URL")
        }
        return (nodes, answers)
    }

    public func close() {
        let first: Bool = probeLock.withLock {
            defer { closed = true }
            return !closed
        }
        guard first else { return }
        gate.close()
        client.shutdown()
    }

    var t: ClickHouseSchema { schema }

    /// True once `close` was called.
    var isClosed: Bool { probeLock.withLock { closed } }

    // MARK: Running statements

    /// A read; ClickHouse's failures become `StoreError`.
    func query(_ sql: String) throws -> [JSONValue] {
        do {
            return try ClickHouseClient.rows(client.sendBlocking(sql + " FORMAT JSONEachRow"))
        } catch let e as ClickHouseError {
            throw e.storeError
        }
    }

    func queryAsync(_ sql: String) async throws -> [JSONValue] {
        do {
            return try ClickHouseClient.rows(await client.send(sql + " FORMAT JSONEachRow"))
        } catch let e as ClickHouseError {
            throw e.storeError
        }
    }

    /// Reads at once, answered in the order given.
    func queryAllAsync(_ statements: [String]) async throws -> [[JSONValue]] {
        if statements.count <= 1 {
            var out: [[JSONValue]] = []
            for sql in statements { out.append(try await queryAsync(sql)) }
            return out
        }
        return try await withThrowingTaskGroup(of: (Int, [JSONValue]).self) { group in
            for (i, sql) in statements.enumerated() { group.addTask { (i, try await self.queryAsync(sql)) } }
            var out = Array(repeating: [JSONValue](), count: statements.count)
            for try await (i, rows) in group { out[i] = rows }
            return out
        }
    }

    /// Inserts rows into a table (its Distributed table in a cluster).
    func insert(_ table: String, _ rows: RowWriter) async throws {
        guard !rows.isEmpty else { return }
        _ = try await client.send("INSERT INTO \(t.table(table)) \(rows.format)", rows: rows.bytes)
        insertedRows.add(table, rows.count)
    }

    /// A statement run on every node (DDL, mutations, partition drops).
    func onEveryNode(_ sql: String) async throws {
        for n in nodes { _ = try await client.send(sql, only: n) }
    }

    /// Runs a write: serialized in this process, its ClickHouse failures counted in `storageHealth`.
    func write<T>(events: Int = 0, _ body: () async throws -> T) async throws -> T {
        try await gate.run(events: events) { try await counted(body) }
    }

    /// Runs part of a write, its ClickHouse failures counted in `storageHealth` and thrown as `StoreError`.
    func counted<T>(_ body: () async throws -> T) async throws -> T {
        do {
            let r = try await body()
            health.writeSucceeded()
            return r
        } catch let e as ClickHouseError {
            if let f = e.fault {
                health.writeFailed(f, at: currentMicros())
                startProbe()
            }
            throw e.storeError
        }
    }

    /// While faulted, writes a `meta` row every few seconds until one succeeds.
    private func startProbe() {
        let start: Bool = probeLock.withLock {
            if probing || closed { return false }
            probing = true
            return true
        }
        guard start else { return }
        Task.detached { [weak self] in
            while true {
                guard let self, !self.probeLock.withLock({ self.closed }) else { return }
                if self.health.health.isHealthy { break }
                try? await Task.sleep(nanoseconds: UInt64(self.options.faultProbeSeconds * 1e9))
                var row = RowWriter()
                row.begin()
                row.str("key", "probe")
                row.str("value", String(currentMicros()))
                row.uint("ver", Versions.next())
                row.end()
                do {
                    try await self.insert("meta", row)
                    self.health.writeSucceeded()
                } catch let e as ClickHouseError {
                    if let f = e.fault { self.health.writeFailed(f, at: currentMicros(), counted: false) }
                } catch {}
            }
            self?.probeLock.withLock { self?.probing = false }
        }
    }

    public var storageHealth: StorageHealth { health.health }

    /// Holds (true) or releases this process's writes: they are accepted and wait (tests).
    public func holdWrites(_ held: Bool) { gate.setHeld(held) }

    public var queuedEvents: Int { gate.queuedEvents }

    // MARK: Stats

    public func stats() throws -> StoreStats {
        let e = try query("SELECT count() AS n FROM (SELECT source, id FROM \(t.table("events")) GROUP BY source, id)")
        let o = try query("SELECT uniqExact(order_id) AS n FROM \(t.table("orders"))")
        let k = try query("SELECT uniqExact(a) AS n FROM \(t.table("links"))")
        return StoreStats(events: Int(e.first?["n"]?.int64 ?? 0), orders: Int(o.first?["n"]?.int64 ?? 0),
                          linkedKeys: Int(k.first?["n"]?.int64 ?? 0), queuedEvents: gate.queuedEvents)
    }

    // MARK: Checkpoints

    public func saveCheckpoint(name: String, bytes: [UInt8]) async throws {
        try await write {
            var row = RowWriter()
            row.begin()
            row.str("name", name)
            row.int("saved_at", currentMicros())
            row.str("body", Hex.encode(bytes))
            row.uint("ver", Versions.next())
            row.end()
            try await insert("checkpoints", row)
        }
    }

    public func loadCheckpoint(name: String) throws -> StoredCheckpoint? {
        let rows = try query("SELECT body, saved_at FROM \(t.table("checkpoints")) WHERE name = \(SQL.quote(name)) ORDER BY ver DESC LIMIT 1")
        guard let r = rows.first, let hex = r["body"]?.stringValue, let bytes = Hex.decode(hex) else { return nil }
        return StoredCheckpoint(bytes: bytes, savedAt: r["saved_at"]?.int64 ?? 0)
    }

    // MARK: Meta

    func metaValue(_ key: String) throws -> String? {
        try query("SELECT value FROM \(t.table("meta")) WHERE key = \(SQL.quote(key)) ORDER BY ver DESC LIMIT 1").first?["value"]?.stringValue
    }

    func setMeta(_ key: String, _ value: String) async throws {
        var row = RowWriter()
        row.begin()
        row.str("key", key)
        row.str("value", value)
        row.uint("ver", Versions.next())
        row.end()
        try await insert("meta", row)
    }
}

/// Rows this process has inserted per table (tests, diagnostics).
final class InsertedRows: @unchecked Sendable {
    private let lock = NSLock()
    private var counts: [String: Int] = [:]
    func add(_ table: String, _ rows: Int) { lock.withLock { counts[table, default: 0] += rows } }
    subscript(table: String) -> Int { lock.withLock { counts[table] ?? 0 } }
}

/// How many rollup buckets were read from the cache and how many were computed.
final class RollupCacheCounts: @unchecked Sendable {
    private let lock = NSLock()
    private var counts = (hits: 0, computed: 0)
    func add(hits: Int, computed: Int) { lock.withLock { counts.hits += hits; counts.computed += computed } }
    var current: (hits: Int, computed: Int) { lock.withLock { counts } }
}

/// Rollup buckets kept in the process (`rollupRows`): per layout, dimension and bucket start, the rows
/// and when they were computed. Bounded: emptied when full.
final class BucketCache: @unchecked Sendable {
    struct Entry {
        let at: Micros
        let rows: [(key: RollupKey, bytes: [UInt8])]
    }

    private struct Key: Hashable {
        let layout: String, dimension: String, bucket: Micros
    }

    private let lock = NSLock()
    private var entries: [Key: Entry] = [:]
    private var dimensions = Set<[String]>()
    let limit: Int

    init(limit: Int = 50_000) { self.limit = limit }

    func holds(_ layout: String, _ dimension: String) -> Bool { lock.withLock { dimensions.contains([layout, dimension]) } }

    func get(_ layout: String, _ dimension: String, _ bucket: Micros) -> Entry? {
        lock.withLock { entries[Key(layout: layout, dimension: dimension, bucket: bucket)] }
    }

    func put(_ layout: String, _ dimension: String, _ bucket: Micros, at: Micros, rows: [(key: RollupKey, bytes: [UInt8])]) {
        lock.withLock {
            if entries.count >= limit {
                entries.removeAll(keepingCapacity: true)
                dimensions.removeAll()
            }
            let k = Key(layout: layout, dimension: dimension, bucket: bucket)
            // The newer of two computations of a bucket is kept.
            if let old = entries[k], old.at >= at { return }
            entries[k] = Entry(at: at, rows: rows)
            dimensions.insert([layout, dimension])
        }
    }
}
