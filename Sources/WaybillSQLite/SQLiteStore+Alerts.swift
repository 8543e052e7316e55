import WaybillModel
import WaybillStore

extension SQLiteStore: DeadlineReader, AlertStore {
    static let openStateBound = Stage.invoiced.rawValue

    public func prepareDeadlines(after: Stage) async throws {
        let col = Schema.stageColumn(after)
        // Partial: only orders still open (below invoiced, not cancelled) that reached `after`, so the index
        // holds the open deadlines and nothing else. Covering: it also holds what an alert lists and groups
        // by, so an evaluation never reads the orders' rows.
        let sql = "CREATE INDEX IF NOT EXISTS orders_open_\(after.name) ON orders(state, \(col), order_id, alloc_wh, ship_wh, channel, region) "
            + "WHERE state < \(Self.openStateBound) AND \(col) IS NOT NULL"
        try await writer.transaction { c in try c.exec(sql) }
    }

    public func overdueOrders(after: Stage, expect: Stage, cutoff: Micros, asOf: Micros, replay: Bool,
                              groupBy: OverdueGrouping, limit: Int) throws -> [OverdueGroup] {
        guard after < expect, expect != .cancelled else { return [] }
        let col = Schema.stageColumn(after)
        // The group of an order. Its warehouse is the one known at `asOf` (the allocation's, else the
        // shipment's), so a later allocation cannot move an alert into another group; live evaluation
        // assumes nothing stored is later than `asOf`, where the two expressions agree.
        let group: String
        switch groupBy {
        case .none: group = "NULL"
        case .warehouse:
            group = replay ? "CASE WHEN allocated_at <= ?2 AND alloc_wh IS NOT NULL THEN alloc_wh WHEN shipped_at <= ?2 THEN ship_wh END"
                : "coalesce(alloc_wh, ship_wh)"
        case .channel: group = "channel"
        case .region: group = "region"
        }
        let rows: String
        if replay {
            // Stage times as of `asOf`: reached `after` by the cutoff, no stage from `expect` on by `asOf`.
            let later = Stage.allCases.filter { $0 >= expect && $0 != .cancelled }
                .map { "coalesce(\(Schema.stageColumn($0)), 9223372036854775807)" }
            let reached = later.count == 1 ? later[0] : "min(\(later.joined(separator: ", ")))"
            rows = """
                SELECT \(group) AS g, \(col) AS at, order_id AS id FROM orders WHERE first_time <= ?1 AND \(col) <= ?1
                AND (cancelled_at IS NULL OR cancelled_at > ?2) AND \(reached) > ?2
                """
        } else {
            // The open stages between `after` and `expect`: index ranges of the covering open-deadline index.
            let states = (after.rawValue..<min(expect.rawValue, Self.openStateBound)).map(String.init).joined(separator: ",")
            rows = """
                SELECT \(group) AS g, \(col) AS at, order_id AS id FROM orders INDEXED BY orders_open_\(after.name)
                WHERE state < \(Self.openStateBound) AND \(col) IS NOT NULL AND state IN (\(states)) AND \(col) <= ?1
                """
        }
        return try readers.with { c in
            // One pass over the index entries, in index order (no sort): each group's size and oldest
            // deadline, and its longest-overdue orders kept by a bounded selection. An order's id is read
            // only when it may still be among its group's `limit` longest overdue.
            struct Selection {
                var group: OverdueGroup
                var candidates: [(at: Micros, id: String)] = []
                /// Once `limit` candidates are known: the latest deadline among them; later ones cannot qualify.
                var bound = Micros.max
                mutating func settle(_ limit: Int) {
                    candidates.sort { $0.at != $1.at ? $0.at < $1.at : $0.id < $1.id }
                    if candidates.count > limit { candidates.removeLast(candidates.count - limit) }
                    if candidates.count == limit, let last = candidates.last { bound = last.at }
                }
            }
            var index: [String?: Int] = [:]
            var selections: [Selection] = []
            let scan = try c.prepare(rows)
            scan.bind(1, cutoff).bind(2, asOf)
            defer { scan.reset() }
            while try scan.step() {
                let g = scan.optText(0), at = scan.int64(1)
                let i: Int
                if let known = index[g] {
                    i = known
                } else {
                    i = selections.count
                    index[g] = i
                    selections.append(Selection(group: OverdueGroup(value: g, count: 0, oldest: at, orders: [])))
                }
                selections[i].group.count += 1
                if at < selections[i].group.oldest { selections[i].group.oldest = at }
                if limit > 0, at <= selections[i].bound {
                    selections[i].candidates.append((at, scan.text(2)))
                    if selections[i].candidates.count >= 2 * limit { selections[i].settle(limit) }
                }
            }
            return selections.map { sel -> OverdueGroup in
                var sel = sel
                sel.settle(limit)
                sel.group.orders = sel.candidates.map(\.id)
                return sel.group
            }.sorted { a, b in a.value == nil ? b.value != nil : (b.value != nil && a.value! < b.value!) }
        }
    }

    public func alertRecords() throws -> [(fingerprint: String, record: [UInt8])] {
        try readers.with { c in
            let s = try c.prepare("SELECT fingerprint, record FROM alert_records ORDER BY fingerprint")
            defer { s.reset() }
            var out: [(fingerprint: String, record: [UInt8])] = []
            while try s.step() { out.append((s.text(0), s.blob(1))) }
            return out
        }
    }

    public func commitAlerts(_ commit: AlertCommit) async throws {
        if commit.isEmpty && commit.pruneBefore == nil { return }
        try await writer.transaction { c in
            if let cutoff = commit.pruneBefore {
                try c.prepare("DELETE FROM alert_outbox WHERE status != 'pending' AND done_at < ?").bind(1, cutoff).run()
            }
            let up = try c.prepare("INSERT OR REPLACE INTO alert_records(fingerprint, record) VALUES(?, ?)")
            for u in commit.upserts {
                up.reset()
                up.bind(1, u.fingerprint).bindBlob(2, u.record)
                try up.run()
            }
            let del = try c.prepare("DELETE FROM alert_records WHERE fingerprint = ?")
            for d in commit.deletes {
                del.reset()
                del.bind(1, d)
                try del.run()
            }
            let ins = try c.prepare("""
                INSERT INTO alert_outbox(hook, fingerprint, kind, body, created, next_at, attempts, status) VALUES(?,?,?,?,?,?,0,'pending')
                """)
            for n in commit.notifications {
                ins.reset()
                ins.bind(1, n.hook).bind(2, n.fingerprint).bind(3, n.kind).bindBlob(4, n.body).bind(5, n.created).bind(6, n.nextAt)
                try ins.run()
            }
        }
    }

    private static let outboxFields = "id, hook, fingerprint, kind, body, created, next_at, attempts, status, last_error, done_at"

    private static func outboxItems(_ s: Statement) throws -> [OutboxItem] {
        var out: [OutboxItem] = []
        while try s.step() {
            out.append(OutboxItem(id: s.int64(0), hook: s.text(1), fingerprint: s.text(2), kind: s.text(3), body: s.blob(4),
                                  created: s.int64(5), nextAt: s.int64(6), attempts: s.int(7),
                                  status: OutboxItem.Status(rawValue: s.text(8)) ?? .pending, lastError: s.optText(9), doneAt: s.optInt64(10)))
        }
        s.reset()
        return out
    }

    public func dueNotifications(now: Micros, limit: Int) throws -> [OutboxItem] {
        try readers.with { c in
            let s = try c.prepare("SELECT \(Self.outboxFields) FROM alert_outbox WHERE status = 'pending' AND next_at <= ? ORDER BY next_at, id LIMIT ?")
            s.bind(1, now).bind(2, Int64(max(0, limit)))
            return try Self.outboxItems(s)
        }
    }

    public func recentNotifications(limit: Int) throws -> [OutboxItem] {
        try readers.with { c in
            let s = try c.prepare("SELECT \(Self.outboxFields) FROM alert_outbox ORDER BY id DESC LIMIT ?")
            s.bind(1, Int64(max(0, limit)))
            return try Self.outboxItems(s)
        }
    }

    public func recordDelivery(id: Int64, attempts: Int, outcome: DeliveryOutcome) async throws {
        try await writer.transaction { c in
            let s: Statement
            switch outcome {
            case .delivered(let at):
                s = try c.prepare("UPDATE alert_outbox SET status='delivered', attempts=?, done_at=?, last_error=NULL WHERE id=?")
                s.bind(1, Int64(attempts)).bind(2, at).bind(3, id)
            case .retry(let at, let error):
                s = try c.prepare("UPDATE alert_outbox SET attempts=?, next_at=?, last_error=? WHERE id=?")
                s.bind(1, Int64(attempts)).bind(2, at).bind(3, error).bind(4, id)
            case .failed(let at, let error):
                s = try c.prepare("UPDATE alert_outbox SET status='failed', attempts=?, done_at=?, last_error=? WHERE id=?")
                s.bind(1, Int64(attempts)).bind(2, at).bind(3, error).bind(4, id)
            }
            try s.run()
        }
    }
}
