import WaybillModel
import WaybillStore

/// The `kpi_drill` table: the drill rows (`DrillRow`) a `DrillProjection` derives from each order's facts,
/// one per (family, time, order), clustered by family and time so that a drill-down over a window is one
/// range of small rows (no facts decoded). Written beside the rollups: `RollupTable.apply` hands it the same
/// transitions in the same transaction, so rows, rollups and facts never disagree. Rows are replaced only
/// when an order's rows change (most events do not move them).
/// A row's groups are codes (`g1`..`g3`, NULL for the null group) in `rollup_dims` under the dimensions
/// `kpi_drill.g1`..`kpi_drill.g3` (schema 19; the group names took about 2.6 bytes an event as text).
struct DrillTable {
    let conn: Connection
    let projection: any DrillProjection
    let codes: RollupDimCodes

    /// A drill table for a rollup that also projects drill rows (the KPI engine's does), else nil.
    init?(conn: Connection, rollup: any FactsRollup, codes: RollupDimCodes) {
        guard let p = rollup as? any DrillProjection else { return nil }
        self.conn = conn
        projection = p
        self.codes = codes
    }

    /// The `rollup_dims` dimension of the codes of groups in column `g<i + 1>`.
    static func groupDimension(_ i: Int) -> String { "kpi_drill.g\(i + 1)" }

    static let createSQL = """
        CREATE TABLE kpi_drill(fam INTEGER NOT NULL, at INTEGER NOT NULL, order_id TEXT NOT NULL, value INTEGER NOT NULL,
                               g1 INTEGER, g2 INTEGER, g3 INTEGER, PRIMARY KEY(fam, at, order_id)) WITHOUT ROWID;
        """

    static let layoutKey = "kpi_drill_layout"

    func apply(_ transitions: [FactsTransition]) throws {
        guard !transitions.isEmpty else { return }
        let put = try conn.prepare("INSERT OR REPLACE INTO kpi_drill(fam, at, order_id, value, g1, g2, g3) VALUES(?, ?, ?, ?, ?, ?, ?)")
        let del = try conn.prepare("DELETE FROM kpi_drill WHERE fam = ? AND at = ? AND order_id = ?")
        for t in transitions {
            let old = t.old.map(projection.drillRows) ?? [], new = projection.drillRows(t.new)
            if old == new { continue }
            for r in old where !new.contains(where: { $0.family == r.family && $0.at == r.at && $0.orderID == r.orderID }) {
                del.reset()
                try del.bind(1, Int64(r.family)).bind(2, r.at).bind(3, r.orderID).run()
            }
            for r in new where !old.contains(r) {
                put.reset()
                put.bind(1, Int64(r.family)).bind(2, r.at).bind(3, r.orderID).bind(4, r.value)
                for i in 0..<3 {
                    let group = i < r.groups.count ? r.groups[i] : nil
                    put.bind(Int32(5 + i), try group.flatMap { try codes.code(Self.groupDimension(i), $0, create: true) })
                }
                try put.run()
            }
        }
    }

    /// Empties the table and forgets its layout (inside the caller's transaction).
    static func forgetLayout(_ conn: Connection) throws {
        try conn.prepare("DELETE FROM meta WHERE key = '\(layoutKey)'").run()
    }

    func clear() throws {
        try conn.exec("DELETE FROM kpi_drill")
        try Self.forgetLayout(conn)
    }

    func markCurrent() throws {
        try conn.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES('\(Self.layoutKey)', ?)").bind(1, projection.drillLayout).run()
    }

    /// Rebuilds every row from the stored facts when the rows are not of this projection's layout (a store
    /// from before the table, or written by a session without a projection).
    func rebuildIfStale() throws {
        let m = try conn.prepare("SELECT value FROM meta WHERE key = '\(Self.layoutKey)'")
        let current = try m.step() ? m.text(0) : nil
        m.reset()
        guard current != projection.drillLayout else { return }
        try conn.transaction {
            try clear()
            try OrdersTable.replayFacts(conn) { try apply($0) }
            try markCurrent()
        }
    }

    /// Whether the rows are current for `layout` (read side).
    static func available(_ c: Connection, layout: String) throws -> Bool {
        let m = try c.prepare("SELECT value FROM meta WHERE key = '\(layoutKey)'")
        defer { m.reset() }
        return try m.step() && m.text(0) == layout
    }
}

extension SQLiteStore: DrillReader {
    public func drillRowsAvailable(layout: String) throws -> Bool {
        rollupsCurrent()
        return try readers.with { c in try DrillTable.available(c, layout: layout) }
    }

    /// `WHERE` of a selection and its binder (parameters from 1).
    private static func clause(_ s: DrillSelection) -> (sql: String, bind: (Statement) -> Int32) {
        var sql = "fam = ? AND at >= ? AND at < ?"
        /// Binds the family and the range (parameters 1 to 3).
        func range(_ st: Statement) { st.bind(1, Int64(s.family)).bind(2, s.range.lowerBound).bind(3, s.range.upperBound) }
        guard let d = s.dimension, (0..<3).contains(d) else { return (sql, { range($0); return 4 }) }
        // The null group is NULL; another group is its code (none: a group never stored, no row matches).
        guard let group = s.group else { return (sql + " AND g\(d + 1) IS NULL", { range($0); return 4 }) }
        sql += " AND g\(d + 1) = (SELECT code FROM rollup_dims WHERE dim = '\(DrillTable.groupDimension(d))' AND gk = ?)"
        return (sql, { st in
            range(st)
            st.bind(4, Schema.groupKey(group))
            return 5
        })
    }

    /// A row's columns with its groups' keys (`Schema.groupKey`) in place of their codes.
    private static let drillColumns = "at, order_id, value, "
        + (1...3).map { "(SELECT gk FROM rollup_dims WHERE code = g\($0))" }.joined(separator: ", ")

    public func drillCount(_ s: DrillSelection) throws -> Int {
        guard !s.range.isEmpty else { return 0 }
        let (w, bind) = Self.clause(s)
        rollupsCurrent()
        return try readers.with { c in
            let st = try c.prepare("SELECT count(*) FROM kpi_drill WHERE \(w)")
            defer { st.reset() }
            _ = bind(st)
            return try st.step() ? st.int(0) : 0
        }
    }

    public func drillValue(_ s: DrillSelection, descendingRank rank: Int) throws -> Int64? {
        guard !s.range.isEmpty, rank >= 0 else { return nil }
        let (w, bind) = Self.clause(s)
        rollupsCurrent()
        return try readers.with { c in
            let st = try c.prepare("SELECT value FROM kpi_drill WHERE \(w) ORDER BY value DESC LIMIT 1 OFFSET ?")
            defer { st.reset() }
            st.bind(bind(st), Int64(rank))
            return try st.step() ? st.int64(0) : nil
        }
    }

    public func drillTop(_ s: DrillSelection, atLeast: Int64?, limit: Int) throws -> [DrillRow] {
        guard !s.range.isEmpty, limit > 0 else { return [] }
        let (w, bind) = Self.clause(s)
        rollupsCurrent()
        return try readers.with { c in
            func rows(_ st: Statement) throws -> [DrillRow] {
                var out: [DrillRow] = []
                while try st.step() {
                    out.append(DrillRow(family: s.family, at: st.int64(0), orderID: st.text(1), value: st.int64(2),
                                        groups: [st.optText(3), st.optText(4), st.optText(5)].map { $0.flatMap(Schema.group(fromKey:)) }))
                }
                st.reset()
                return out
            }
            let top = try c.prepare("SELECT \(Self.drillColumns) FROM kpi_drill WHERE \(w) AND value >= ? ORDER BY value DESC LIMIT ?")
            let n = bind(top)
            top.bind(n, atLeast ?? Int64.min).bind(n + 1, Int64(limit))
            var out = try rows(top)
            guard out.count == limit, let last = out.last?.value else { return out }
            // Every row tied with the smallest value taken: the caller orders ties by order id.
            let ties = try c.prepare("SELECT \(Self.drillColumns) FROM kpi_drill WHERE \(w) AND value = ?")
            ties.bind(bind(ties), last)
            out.removeAll { $0.value == last }
            out += try rows(ties)
            return out
        }
    }
}
