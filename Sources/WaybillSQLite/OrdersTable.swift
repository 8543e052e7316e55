import CSQLite
import Foundation
import WaybillModel
import WaybillStore

/// The `orders` table: one row per order, its facts as bytes (what readers decode) beside the columns
/// derived from them that search, KPI edges and alert deadlines filter on. Only the writer session
/// writes it, so the facts it caches are exact. An update sets only the columns whose value changed.
final class OrdersTable {
    /// A column derived from an order's facts: its name, and how its value is bound.
    struct Column: Sendable {
        let name: String
        let bind: @Sendable (Statement, Int32, OrderFacts) -> Void
        /// Whether the column's value is the same for two facts of one order (an update leaves it out).
        let same: @Sendable (OrderFacts, OrderFacts) -> Bool
        init<V: Equatable>(_ name: String, _ value: @escaping @Sendable (OrderFacts) -> V,
                           _ bind: @escaping @Sendable (Statement, Int32, OrderFacts) -> Void) {
            self.name = name
            self.bind = bind
            same = { value($0) == value($1) }
        }
        init(_ name: String, same: @escaping @Sendable (OrderFacts, OrderFacts) -> Bool,
             _ bind: @escaping @Sendable (Statement, Int32, OrderFacts) -> Void) {
            self.name = name
            self.bind = bind
            self.same = same
        }
    }

    /// Every column written from the facts, in parameter order; both statements below are derived from
    /// this list. The row's key is the parameter after them: `order_id` on insert, `rid` on update.
    static let columns: [Column] = [
        Column("state", { $0.state }) { s, i, f in s.bind(i, f.state.map { Int64($0.rawValue) }) },
        Column("state_since", { $0.stateSince }) { s, i, f in s.bind(i, f.stateSince) },
        Column("first_time", { $0.firstEventAt }) { s, i, f in s.bind(i, f.firstEventAt ?? 0) },
        Column("last_time", { $0.lastEventAt }) { s, i, f in s.bind(i, f.lastEventAt ?? 0) },
        Column("event_count", { $0.eventCount }) { s, i, f in s.bind(i, f.eventCount) },
        Column("accepted_at", { $0.acceptedAt }) { s, i, f in s.bind(i, f.acceptedAt) },
        Column("allocated_at", { $0.allocatedAt }) { s, i, f in s.bind(i, f.allocatedAt) },
        Column("released_at", { $0.releasedAt }) { s, i, f in s.bind(i, f.releasedAt) },
        Column("shipped_at", { $0.shippedAt }) { s, i, f in s.bind(i, f.shippedAt) },
        Column("channel", { $0.channel }) { s, i, f in s.bind(i, f.channel) },
        Column("region", { $0.region }) { s, i, f in s.bind(i, f.region) },
        Column("alloc_wh", { $0.allocationWarehouse }) { s, i, f in s.bind(i, f.allocationWarehouse) },
        Column("ship_wh", { $0.shipmentWarehouse }) { s, i, f in s.bind(i, f.shipmentWarehouse) },
        // `|a|b|` with known words coded (`WordSetColumn`), so that search finds a value with one `instr`.
        Column("types", { $0.types }) { s, i, f in s.bindBlob(i, WordSetColumn.encode(f.types)) },
        Column("sources", { $0.sources }) { s, i, f in s.bindBlob(i, WordSetColumn.encode(f.sources)) },
        // Every merge adds events, so the facts always change.
        // Leaves out the times the columns above and below hold (`FactsCodec.encodeRow`).
        Column("facts", same: { _, _ in false }) { s, i, f in s.bindBlob(i, FactsCodec.encodeRow(f)) },
    ] + [Stage.validated, .picked, .packed, .delivered, .invoiced, .cancelled].map { stage in
        // The stage columns alert deadlines read (the other four stages have their own columns above).
        Column(Schema.stageColumn(stage), { $0.stageTimes[stage] }) { s, i, f in s.bind(i, f.stageTimes[stage]) }
    }

    static let insertSQL = "INSERT INTO orders(\(columns.map(\.name).joined(separator: ", ")), order_id) "
        + "VALUES(\(Array(repeating: "?", count: columns.count + 1).joined(separator: ",")))"
    /// The update of the columns in `changed` (bit i: `columns[i]`), the row's `rid` last. SQLite rewrites
    /// an index entry only when the update sets one of the index's columns, so leaving out the columns
    /// that did not change spares the `orders` indexes most of their writes.
    static func updateSQL(changed: UInt64) -> String {
        let set = columns.indices.filter { changed & (1 << UInt64($0)) != 0 }.map { columns[$0].name + "=?" }
        return "UPDATE orders SET \(set.joined(separator: ", ")) WHERE rid=?"
    }

    let conn: Connection
    /// Facts of recently written orders (decoded), so the hot path neither re-reads nor decodes them.
    private var cache = FactsCache(limit: 24_000)

    /// How long order rows and rollups may lag behind the events (`SQLiteStore.Options.deferredFactsEvents`);
    /// nil: every transaction writes the rows of the orders it touches and their rollup rows.
    let deferral: Deferral?
    /// Deferred facts, for bulk loads that nobody reads while they run (`waybill ingest`). The writes of
    /// an *epoch* store their events (and links), and merge their facts into the epoch's facts per order,
    /// kept in memory encoded (`FactsCodec`, a few hundred bytes an order); the epoch ends when it has
    /// touched `maxOrders` distinct orders or stored `maxEvents` events, before any other write, and at
    /// close. Then each order's row is read, merged with the epoch's facts and written once, and the
    /// rollups take one transition per order (the row's old facts to the new ones). So an order costs one
    /// row write and one rollup transition per epoch, however its events arrive (a random-order file
    /// touches a different order with nearly every event).
    /// Crash safety: `meta.facts_rollups_pending_from` holds, committed with the epoch's first events, the
    /// epoch's first event block; rows and rollups always agree with each other (both lack the whole
    /// epoch), and a store opened with that row reads the epoch's blocks once, folds them per order and
    /// merges them the same way (`recoverPending`), so a committed event never loses its facts. Stores
    /// left by earlier versions with `meta.facts_pending_from` (rows behind, rollups not) have their rows
    /// refolded without the rollups.
    struct Deferral: Sendable {
        var maxOrders: Int
        var maxEvents: Int
    }
    /// The open epoch's facts per order (encoded), its events so far, and its first block (nil: none open).
    private var epochFacts: [String: [UInt8]] = [:]
    private var epochEvents = 0
    private var epochFrom: Int64?
    /// A rolled-back write lost the epoch's state: refold what is committed before the next write.
    private var mustRecover = false
    /// Rows behind, rollups up to date (stores written before the epochs; see `Deferral`).
    static let pendingKey = "facts_pending_from"
    /// Rows and rollups both behind, from this block on (an open epoch).
    static let epochKey = "facts_rollups_pending_from"

    /// What an epoch's refold needs besides the table: the rollups to apply its transitions to (nil: the
    /// session keeps none), and the dictionary its event blocks are decoded with. Set by the session.
    var rollups: RollupTable?
    var dictionary: EventDictionary?
    /// Seconds of the refolds' steps when `WAYBILL_WRITER_PROFILE` is set (the session reports them).
    var refoldSeconds: [String: Double] = [:]
    let profiling = ProcessInfo.processInfo.environment["WAYBILL_WRITER_PROFILE"] != nil

    init(conn: Connection, deferral: Deferral? = nil) {
        self.conn = conn
        self.deferral = deferral
        // A rolled-back write leaves the cache ahead of the table.
        conn.onTransactionEnd { [weak self] committed in
            guard let self, !committed else { return }
            self.cache.removeAll()
            // The epoch's facts in memory may hold what was rolled back, and a refold rolled back leaves
            // its marker: refold what is committed from the marker before the next write.
            if self.deferral != nil {
                self.epochFacts.removeAll()
                self.epochEvents = 0
                self.epochFrom = nil
                self.mustRecover = true
            }
        }
    }

    /// Whether an epoch holds facts not yet in the rows.
    var pendingCount: Int { epochFrom == nil ? 0 : max(1, epochFacts.count) }

    /// A deferred write (see `Deferral`): merges the facts its fresh order events add into the epoch's;
    /// `events` fresh events were stored from block `firstSeq` on. Ends the epoch when it is full.
    func deferFacts(_ deltas: [String: OrderFacts], events: Int, firstSeq: Int64?) throws {
        guard let deferral, let firstSeq, events > 0 else { return }
        if !deltas.isEmpty, epochFrom == nil {
            epochFrom = firstSeq
            try conn.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES('\(Self.epochKey)', ?)").bind(1, String(firstSeq)).run()
        }
        guard epochFrom != nil else { return }
        for (order, delta) in deltas {
            if let bytes = epochFacts[order] {
                var f = try Self.decodeKept(bytes, order)
                f.merge(delta)
                epochFacts[order] = FactsCodec.encode(f)
            } else {
                epochFacts[order] = FactsCodec.encode(delta)
            }
        }
        epochEvents += events
        if epochFacts.count >= deferral.maxOrders || epochEvents >= deferral.maxEvents { try flushAll() }
    }

    /// Merges each delta into its order's facts, inserting the rows of new orders, and returns the
    /// transitions when `transitions` is true. Orders are taken in key order, so the transaction's writes
    /// do not depend on dictionary order; `created` runs right after an order is first seen.
    func merge(_ deltas: [String: OrderFacts], transitions wanted: Bool, created: (String) throws -> Void) throws -> [FactsTransition] {
        var transitions: [FactsTransition] = []
        if !deltas.isEmpty {
            let load = try conn.prepare("SELECT rid, \(FactsCodec.rowColumns) FROM orders WHERE order_id = ?")
            for orderID in deltas.keys.sorted() {
                var facts = OrderFacts(orderID: orderID)
                var rid: Int64?
                var old: OrderFacts?
                var stored = false
                if let cached = cache.take(orderID) {
                    rid = cached.rid
                    facts = cached.facts
                    old = facts
                    stored = true
                } else {
                    load.bind(1, orderID)
                    if try load.step() {
                        rid = load.int64(0)
                        if let (f, columnsHold) = FactsCodec.decodeStored(load, at: 1) {
                            facts = f
                            stored = columnsHold  // else every column is rewritten (see decodeStored)
                        }
                        old = facts
                    }
                    load.reset()
                }
                facts.merge(deltas[orderID]!)
                if wanted { transitions.append(FactsTransition(old: old, new: facts)) }
                try writeRow(orderID, rid: rid, stored: stored ? old : nil, facts: facts)
                if old == nil { try created(orderID) }
            }
        }
        return transitions
    }

    /// Facts kept encoded in memory (an epoch's), decoded.
    private static func decodeKept(_ b: [UInt8], _ orderID: String) throws -> OrderFacts {
        guard let f = FactsCodec.decode(b, orderID: orderID) else { throw StoreError.engine("kept facts of \(orderID) do not decode") }
        return f
    }

    static let factsColumn = columns.firstIndex { $0.name == "facts" }!

    /// Writes an order's row: the columns of an existing row that differ from `stored` (all when nil),
    /// or a new row. The facts column takes the stored form (`FactsCodec.encodeRow`, or `encoded` when
    /// the caller has it), the writer's cache (kept without deferral) the in-memory one.
    func writeRow(_ orderID: String, rid: Int64?, stored: OrderFacts?, facts: OrderFacts, encoded: [UInt8]? = nil) throws {
        let columns = Self.columns
        let encoded = encoded ?? FactsCodec.encodeRow(facts)
        func bind(_ s: Statement, _ i: Int, _ p: Int32) {
            if i == Self.factsColumn { s.bindBlob(p, encoded) } else { columns[i].bind(s, p, facts) }
        }
        if let rid {
            var changed: UInt64 = 0
            for i in columns.indices where stored.map({ !columns[i].same($0, facts) }) ?? true { changed |= 1 << UInt64(i) }
            let update = try updateStatement(changed)
            var p: Int32 = 1
            for i in columns.indices where changed & (1 << UInt64(i)) != 0 {
                bind(update, i, p)
                p += 1
            }
            update.bind(p, rid)
            try update.run()
            if deferral == nil { cache.put(orderID, (rid, facts)) }
        } else {
            let insert = try insertStatement()
            for i in columns.indices { bind(insert, i, Int32(i + 1)) }
            insert.bind(Int32(columns.count + 1), orderID)
            try insert.run()
            if deferral == nil { cache.put(orderID, (sqlite3_last_insert_rowid(conn.db), facts)) }
        }
    }

    /// The update statement of each set of changed columns, and the insert, kept here: building the SQL
    /// text and looking it up in the connection's cache for every row took about 2% of the writer.
    private var updates: [UInt64: Statement] = [:]
    private var insert: Statement?

    private func updateStatement(_ changed: UInt64) throws -> Statement {
        if let s = updates[changed] {
            s.reset()
            return s
        }
        let s = try Statement(conn: conn, sql: Self.updateSQL(changed: changed))
        updates[changed] = s
        return s
    }

    private func insertStatement() throws -> Statement {
        if let s = insert {
            s.reset()
            return s
        }
        let s = try Statement(conn: conn, sql: Self.insertSQL)
        insert = s
        return s
    }

    /// Ends the open epoch (in the open transaction): refolds its blocks into the rows and the rollups.
    /// Before other writes and reads of the writer, and when the store closes.
    func flushAll() throws {
        guard epochFrom != nil else { return }
        // The epoch's orders count as orders (`contains`) until their rows are all written.
        let facts = epochFacts
        try mergeRows({ try Self.decodeKept(facts[$0]!, $0) }, orders: facts.keys.sorted())
        epochFacts = [:]
        try conn.prepare("DELETE FROM meta WHERE key = '\(Self.epochKey)'").run()
        epochEvents = 0
        epochFrom = nil
    }

    /// Adds the time since `clock` to `refoldSeconds[name]` and restarts `clock` (when profiling).
    func lap(_ name: String, _ clock: inout Micros) {
        guard profiling else { return }
        let now = currentMicros()
        refoldSeconds[name, default: 0] += Double(now - clock) / 1e6
        clock = now
    }

    /// Folds the order events of the blocks from `from` on (one read of each, in stored order) and merges
    /// each order's fold into its row, applying the transitions to the rollups when `rollups` is set.
    /// Returns how many orders. Memory: the fold of the orders with events in those blocks.
    @discardableResult
    private func refold(from: Int64) throws -> Int {
        guard let dictionary else { throw StoreError.engine("orders: an epoch refold without the event dictionary") }
        var clock = profiling ? currentMicros() : 0
        var folded: [String: OrderFacts] = [:]
        let q = try conn.prepare("SELECT seq, body, skip FROM event_blocks WHERE seq >= ? ORDER BY seq")
        q.bind(1, from)
        while try q.step() {
            for (_, e) in try EventBlockTable.decode(q.blob(1), skip: q.isNull(2) ? nil : q.blob(2), seq: q.int64(0),
                                                      dictionary: dictionary, conn) where e.isOrderEvent {
                folded[e.subject, default: OrderFacts(orderID: e.subject)].apply(e)
            }
        }
        q.reset()
        lap("refold-scan", &clock)
        try mergeRows({ [folded] in folded[$0]! }, orders: folded.keys.sorted())
        return folded.count
    }

    /// Recomputes, in the open transaction, what a write stopped before writing (a killed load, or a
    /// rolled-back write): an epoch's rows and rollups (`meta.facts_rollups_pending_from`), or the rows
    /// an earlier version deferred with the rollups already written (`meta.facts_pending_from`).
    /// Returns how many orders.
    @discardableResult
    func recoverPending(dictionary: EventDictionary) throws -> Int {
        mustRecover = false
        if self.dictionary == nil { self.dictionary = dictionary }
        var n = 0
        for (key, withRollups) in [(Self.pendingKey, false), (Self.epochKey, true)] {
            let m = try conn.prepare("SELECT value FROM meta WHERE key = '\(key)'")
            let from = try m.step() ? Int64(m.text(0)) : nil
            m.reset()
            guard let from else { continue }
            if withRollups {
                n += try refold(from: from)
            } else {
                n += try refoldRowsOnly(from: from, dictionary: dictionary)
            }
            try conn.prepare("DELETE FROM meta WHERE key = '\(key)'").run()
        }
        return n
    }

    /// The recovery of `meta.facts_pending_from` (stores left by earlier versions): the rows of every
    /// order with an event in a block at or after `from` are recomputed from all their events.
    private func refoldRowsOnly(from: Int64, dictionary: EventDictionary) throws -> Int {
        var orders = Set<String>()
        let q = try conn.prepare("SELECT seq, body, skip FROM event_blocks WHERE seq >= ?")
        q.bind(1, from)
        while try q.step() {
            for (_, e) in try EventBlockTable.decode(q.blob(1), skip: q.isNull(2) ? nil : q.blob(2), seq: q.int64(0),
                                                      dictionary: dictionary, conn) where e.isOrderEvent {
                orders.insert(e.subject)
            }
        }
        q.reset()
        let sorted = orders.sorted()
        let load = try conn.prepare("SELECT rid, facts FROM orders WHERE order_id = ?")
        var start = 0
        while start < sorted.count {
            let part = Array(sorted[start..<min(start + 512, sorted.count)])
            start += part.count
            let folded = OrderFacts.fold(try EventBlockTable.events(ofSubjects: part, dictionary: dictionary, conn))
            for order in part {
                guard let facts = folded[order] else { continue }
                load.bind(1, order)
                var rid: Int64?
                if try load.step() { rid = load.int64(0) }
                load.reset()
                try writeRow(order, rid: rid, stored: nil, facts: facts)
            }
        }
        return sorted.count
    }

    /// Whether a rolled-back write left facts to recompute.
    var needsRecovery: Bool { mustRecover }

    /// Whether `key` is the id of an order (an order of the open epoch counts, row or not).
    func contains(_ key: String) throws -> Bool {
        if epochFacts[key] != nil { return true }
        let s = try conn.prepare("SELECT 1 FROM orders WHERE order_id = ?")
        s.bind(1, key)
        defer { s.reset() }
        return try s.step()
    }

    // MARK: Retention

    /// Transitions that take the orders last active before `cutoff` out of the rollups; read them
    /// before `deleteBefore` deletes the orders.
    func retractions(before cutoff: Micros) throws -> [FactsTransition] {
        try flushAll()
        let s = try conn.prepare("SELECT \(FactsCodec.rowColumns) FROM orders WHERE last_time < ?")
        s.bind(1, cutoff)
        var gone: [FactsTransition] = []
        while try s.step() {
            if let f = FactsCodec.decode(s, at: 0) {
                gone.append(FactsTransition(old: f, new: OrderFacts(orderID: f.orderID)))
            }
        }
        s.reset()
        return gone
    }

    /// Deletes the orders last active before `cutoff`.
    func deleteBefore(_ cutoff: Micros) throws {
        try flushAll()
        try conn.prepare("DELETE FROM orders WHERE last_time < ?").bind(1, cutoff).run()
        cache.removeAll()
    }
}
