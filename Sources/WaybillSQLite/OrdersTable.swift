import CSQLite
import WaybillModel
import WaybillStore

/// The `orders` table: one row per order, its facts as bytes (what readers decode) beside the columns
/// derived from them that search, KPI edges and alert deadlines filter on. Only the writer session
/// writes it, so the facts it caches are exact.
final class OrdersTable {
    /// A column derived from an order's facts: its name, and how its value is bound.
    struct Column: Sendable {
        let name: String
        let bind: @Sendable (Statement, Int32, OrderFacts) -> Void
        init(_ name: String, _ bind: @escaping @Sendable (Statement, Int32, OrderFacts) -> Void) {
            self.name = name
            self.bind = bind
        }
    }

    /// Every column written from the facts, in parameter order; both statements below are derived from
    /// this list. The row's key is the parameter after them: `order_id` on insert, `rid` on update.
    static let columns: [Column] = [
        Column("state") { s, i, f in s.bind(i, f.state.map { Int64($0.rawValue) }) },
        Column("state_since") { s, i, f in s.bind(i, f.stateSince) },
        Column("first_time") { s, i, f in s.bind(i, f.firstEventAt ?? 0) },
        Column("last_time") { s, i, f in s.bind(i, f.lastEventAt ?? 0) },
        Column("event_count") { s, i, f in s.bind(i, f.eventCount) },
        Column("accepted_at") { s, i, f in s.bind(i, f.acceptedAt) },
        Column("allocated_at") { s, i, f in s.bind(i, f.allocatedAt) },
        Column("released_at") { s, i, f in s.bind(i, f.releasedAt) },
        Column("shipped_at") { s, i, f in s.bind(i, f.shippedAt) },
        Column("channel") { s, i, f in s.bind(i, f.channel) },
        Column("region") { s, i, f in s.bind(i, f.region) },
        Column("alloc_wh") { s, i, f in s.bind(i, f.allocationWarehouse) },
        Column("ship_wh") { s, i, f in s.bind(i, f.shipmentWarehouse) },
        // `|a|b|`, so that search finds a value with `instr(types, '|a|')`.
        Column("types") { s, i, f in s.bind(i, "|" + f.types.sorted().joined(separator: "|") + "|") },
        Column("sources") { s, i, f in s.bind(i, "|" + f.sources.sorted().joined(separator: "|") + "|") },
        Column("facts") { s, i, f in s.bindBlob(i, FactsCodec.encode(f)) },
    ] + [Stage.validated, .picked, .packed, .delivered, .invoiced, .cancelled].map { stage in
        // The stage columns alert deadlines read (the other four stages have their own columns above).
        Column(Schema.stageColumn(stage)) { s, i, f in s.bind(i, f.stageTimes[stage]) }
    }

    static let insertSQL = "INSERT INTO orders(\(columns.map(\.name).joined(separator: ", ")), order_id) "
        + "VALUES(\(Array(repeating: "?", count: columns.count + 1).joined(separator: ",")))"
    static let updateSQL = "UPDATE orders SET \(columns.map { $0.name + "=?" }.joined(separator: ", ")) WHERE rid=?"

    private let conn: Connection
    /// Facts of recently updated orders, so the hot path does not re-read and re-parse them.
    private var cache = FactsCache(limit: 24_000)

    init(conn: Connection) {
        self.conn = conn
        // A rolled-back write leaves the cache ahead of the table.
        conn.onTransactionEnd { [weak self] committed in if !committed { self?.cache.removeAll() } }
    }

    /// Merges each delta into its order's stored facts, inserting the rows of new orders, and returns
    /// the transitions when `transitions` is true. Orders are taken in key order, so the transaction's
    /// writes do not depend on dictionary order; `created` runs right after a new order's row is inserted.
    func merge(_ deltas: [String: OrderFacts], transitions wanted: Bool, created: (String) throws -> Void) throws -> [FactsTransition] {
        guard !deltas.isEmpty else { return [] }
        var transitions: [FactsTransition] = []
        let load = try conn.prepare("SELECT rid, facts FROM orders WHERE order_id = ?")
        let update = try conn.prepare(Self.updateSQL)
        let insert = try conn.prepare(Self.insertSQL)
        let columns = Self.columns
        let key = Int32(columns.count + 1)
        for orderID in deltas.keys.sorted() {
            var facts = OrderFacts(orderID: orderID)
            var rid: Int64?
            if let cached = cache.get(orderID) {
                rid = cached.rid
                facts = cached.facts
            } else {
                load.bind(1, orderID)
                if try load.step() {
                    rid = load.int64(0)
                    if let f = FactsCodec.decode(load.blob(1)) { facts = f }
                }
                load.reset()
            }
            let old = rid == nil ? nil : facts
            facts.merge(deltas[orderID]!)
            if wanted { transitions.append(FactsTransition(old: old, new: facts)) }
            let s = rid == nil ? insert : update
            for i in columns.indices { columns[i].bind(s, Int32(i + 1), facts) }
            if let rid { s.bind(key, rid) } else { s.bind(key, orderID) }
            try s.run()
            cache.put(orderID, (rid ?? sqlite3_last_insert_rowid(conn.db), facts))
            if rid == nil { try created(orderID) }
        }
        return transitions
    }

    /// Whether `key` is the id of an order.
    func contains(_ key: String) throws -> Bool {
        let s = try conn.prepare("SELECT 1 FROM orders WHERE order_id = ?")
        s.bind(1, key)
        defer { s.reset() }
        return try s.step()
    }

    // MARK: Retention

    /// Transitions that take the orders last active before `cutoff` out of the rollups; read them
    /// before `deleteBefore` deletes the orders.
    func retractions(before cutoff: Micros) throws -> [FactsTransition] {
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
        try conn.prepare("DELETE FROM orders WHERE last_time < ?").bind(1, cutoff).run()
        cache.removeAll()
    }
}
