import CSQLite
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
        Column("facts", same: { _, _ in false }) { s, i, f in s.bindBlob(i, FactsCodec.encode(f)) },
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

    private let conn: Connection
    /// Facts of recently written orders (encoded), so the hot path does not re-read them.
    private var cache = FactsCache(limit: 24_000)

    /// How long an order's row may lag behind its facts (`SQLiteStore.Options.deferredFacts`); nil: every
    /// transaction writes the rows of the orders it touches.
    let deferral: Deferral?
    /// Deferred writes of order rows, for bulk loads that nobody reads while they run. An order's facts
    /// stay in memory (`pending`) across transactions and its row is written once the order has waited
    /// `maxEvents` events since it first changed, when more than `maxOrders` orders wait (the longest
    /// waiting first), or at the end of the load. The rollups are still updated in the transaction of
    /// the events. Crash safety: `meta.facts_pending_from` holds, in the transaction of the events, the
    /// first event block whose order facts may be missing from `orders`; a store opened with that row
    /// refolds, from the stored events, the facts of every order with an event in that block or later
    /// (`recoverPending`), so a committed event never loses its facts.
    struct Deferral: Sendable {
        var maxOrders: Int
        var maxEvents: Int
    }
    private struct Pending {
        var rid: Int64?
        /// The row's facts as stored (nil: no row yet), to write only the columns that change. Facts are
        /// kept encoded (`FactsCodec`): a few hundred bytes an order instead of a few KB of structures.
        var stored: [UInt8]?
        var facts: [UInt8]
        /// Events written before this order first waited (`written`), and the first block of that write.
        var since: Int64
        var fromSeq: Int64
    }
    private var pending: [String: Pending] = [:]
    /// Pending orders in the order they started waiting, with their `since` (stale entries are skipped).
    private var queue: [(order: String, since: Int64)] = []
    private var queueHead = 0
    /// Events written so far by this session.
    private var written: Int64 = 0
    /// A rolled-back write lost pending facts: recompute them from the stored events before the next write.
    private var mustRecover = false
    static let pendingKey = "facts_pending_from"

    init(conn: Connection, deferral: Deferral? = nil) {
        self.conn = conn
        self.deferral = deferral
        // Entries are encoded facts (~250 bytes): a bulk load keeps more of them.
        if deferral != nil { cache = FactsCache(limit: 60_000) }
        // A rolled-back write leaves the cache ahead of the table.
        conn.onTransactionEnd { [weak self] committed in
            guard let self, !committed else { return }
            self.cache.removeAll()
            if !self.pending.isEmpty {
                self.pending.removeAll()
                self.queue.removeAll()
                self.queueHead = 0
                self.mustRecover = true
            }
        }
    }

    /// Orders whose row is behind their facts.
    var pendingCount: Int { pending.count }

    /// Merges each delta into its order's facts, inserting the rows of new orders, and returns the
    /// transitions when `transitions` is true. Orders are taken in key order, so the transaction's writes
    /// do not depend on dictionary order; `created` runs right after an order is first seen. With a
    /// `deferral` the rows may be written later (see `Deferral`); `events` and `firstSeq` are the count
    /// of events and the first block of this write.
    func merge(_ deltas: [String: OrderFacts], transitions wanted: Bool, events: Int = 0, firstSeq: Int64? = nil,
               created: (String) throws -> Void) throws -> [FactsTransition] {
        written += Int64(events)
        var transitions: [FactsTransition] = []
        if !deltas.isEmpty {
            let load = try conn.prepare("SELECT rid, facts FROM orders WHERE order_id = ?")
            for orderID in deltas.keys.sorted() {
                var facts = OrderFacts(orderID: orderID)
                var rid: Int64?
                var old: OrderFacts?
                var stored: [UInt8]?
                var wait: Pending?
                if let p = pending[orderID] {
                    wait = p
                    rid = p.rid
                    stored = p.stored
                    facts = try Self.decodeKept(p.facts, orderID)
                    old = facts
                } else if let cached = cache.get(orderID) {
                    rid = cached.rid
                    facts = try Self.decodeKept(cached.bytes, orderID)
                    old = facts
                    stored = cached.bytes
                } else {
                    load.bind(1, orderID)
                    if try load.step() {
                        rid = load.int64(0)
                        let b = load.blob(1)
                        if let f = FactsCodec.decode(b) {
                            facts = f
                            stored = b
                        }
                        old = facts
                    }
                    load.reset()
                }
                facts.merge(deltas[orderID]!)
                if wanted { transitions.append(FactsTransition(old: old, new: facts)) }
                let encoded = FactsCodec.encode(facts)
                if deferral != nil, let firstSeq {
                    if wait == nil { queue.append((orderID, written)) }
                    pending[orderID] = Pending(rid: rid, stored: stored, facts: encoded, since: wait?.since ?? written,
                                               fromSeq: wait?.fromSeq ?? firstSeq)
                } else {
                    try writeRow(orderID, rid: rid, stored: stored == nil ? nil : old, facts: facts, encoded: encoded)
                }
                if old == nil { try created(orderID) }
            }
        }
        if let deferral { try flushDue(deferral) }
        return transitions
    }

    /// Facts this table encoded itself; failing to decode them is a bug, reported rather than trapped.
    private static func decodeKept(_ b: [UInt8], _ orderID: String) throws -> OrderFacts {
        guard let f = FactsCodec.decode(b) else { throw StoreError.engine("cached facts of \(orderID) do not decode") }
        return f
    }

    static let factsColumn = columns.firstIndex { $0.name == "facts" }!

    /// Writes an order's row: the columns of an existing row that differ from `stored` (all when nil),
    /// or a new row. `encoded` is `facts` encoded.
    private func writeRow(_ orderID: String, rid: Int64?, stored: OrderFacts?, facts: OrderFacts, encoded: [UInt8]) throws {
        let columns = Self.columns
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
            cache.put(orderID, (rid, encoded))
        } else {
            let insert = try insertStatement()
            for i in columns.indices { bind(insert, i, Int32(i + 1)) }
            insert.bind(Int32(columns.count + 1), orderID)
            try insert.run()
            cache.put(orderID, (sqlite3_last_insert_rowid(conn.db), encoded))
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

    private func flush(_ orderID: String) throws {
        guard let p = pending.removeValue(forKey: orderID) else { return }
        try writeRow(orderID, rid: p.rid, stored: p.stored.flatMap(FactsCodec.decode), facts: try Self.decodeKept(p.facts, orderID), encoded: p.facts)
    }

    /// Writes the rows that have waited long enough, or the longest waiting while too many wait, then
    /// records from which block facts may be missing.
    private func flushDue(_ d: Deferral) throws {
        while queueHead < queue.count {
            let (order, since) = queue[queueHead]
            guard let p = pending[order], p.since == since else { queueHead += 1; continue }
            guard pending.count > d.maxOrders || written - since >= Int64(d.maxEvents) else { break }
            try flush(order)
            queueHead += 1
        }
        if queueHead > 4096, queueHead * 2 > queue.count {
            queue.removeFirst(queueHead)
            queueHead = 0
        }
        try recordPendingFrom()
    }

    /// `meta.facts_pending_from`: the block of the longest-waiting order, or no row when none waits.
    private func recordPendingFrom() throws {
        var from: Int64?
        for (order, since) in queue[queueHead...] {
            if let p = pending[order], p.since == since { from = p.fromSeq; break }
        }
        if let from {
            try conn.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES('\(Self.pendingKey)', ?)").bind(1, String(from)).run()
        } else {
            try conn.prepare("DELETE FROM meta WHERE key = '\(Self.pendingKey)'").run()
        }
    }

    /// Writes every deferred row (in the open transaction): before other writes and reads of the
    /// writer, and when the store closes.
    func flushAll() throws {
        guard !pending.isEmpty else { return }
        for order in pending.keys.sorted() { try flush(order) }
        queue.removeAll()
        queueHead = 0
        try recordPendingFrom()
    }

    /// Recomputes from the stored events the facts of every order with an event in a block at or after
    /// `meta.facts_pending_from` (a deferred load that stopped without writing its rows, or a rolled-back
    /// write), in the open transaction; the rollups already hold those events. Returns how many orders.
    @discardableResult
    func recoverPending(dictionary: EventDictionary) throws -> Int {
        mustRecover = false
        let m = try conn.prepare("SELECT value FROM meta WHERE key = '\(Self.pendingKey)'")
        let from = try m.step() ? Int64(m.text(0)) : nil
        m.reset()
        guard let from else { return 0 }
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
                try writeRow(order, rid: rid, stored: nil, facts: facts, encoded: FactsCodec.encode(facts))
            }
        }
        try conn.prepare("DELETE FROM meta WHERE key = '\(Self.pendingKey)'").run()
        return sorted.count
    }

    /// Whether a rolled-back write left facts to recompute.
    var needsRecovery: Bool { mustRecover }

    /// Whether `key` is the id of an order.
    func contains(_ key: String) throws -> Bool {
        if pending[key] != nil { return true }
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
        let s = try conn.prepare("SELECT facts FROM orders WHERE last_time < ?")
        s.bind(1, cutoff)
        var gone: [FactsTransition] = []
        while try s.step() {
            if let f = FactsCodec.decode(s.blob(0)) {
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
