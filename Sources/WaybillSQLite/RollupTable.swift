import WaybillModel
import WaybillStore

/// The `rollups` table: the rows a `FactsRollup` keeps beside the order facts, written in the same
/// transaction as the facts they summarise, so the two never disagree.
struct RollupTable {
    let conn: Connection
    let rollup: any FactsRollup

    /// Applies facts transitions: reads the rows they touch, then writes or deletes what the rollup returns.
    func apply(_ transitions: [FactsTransition]) throws {
        guard !transitions.isEmpty else { return }
        let read = try conn.prepare("SELECT acc FROM rollups WHERE dim = ? AND bucket = ? AND gk = ?")
        let put = try conn.prepare("INSERT OR REPLACE INTO rollups(dim, bucket, gk, acc) VALUES(?, ?, ?, ?)")
        let del = try conn.prepare("DELETE FROM rollups WHERE dim = ? AND bucket = ? AND gk = ?")
        let rows = try rollup.update(transitions) { key in
            read.reset()
            read.bind(1, key.dimension).bind(2, key.bucketStart).bind(3, Schema.groupKey(key.group))
            defer { read.reset() }
            return try read.step() ? read.blob(0) : nil
        }
        for (key, bytes) in rows {
            let s = bytes == nil ? del : put
            s.reset()
            s.bind(1, key.dimension).bind(2, key.bucketStart).bind(3, Schema.groupKey(key.group))
            if let bytes { s.bindBlob(4, bytes) }
            try s.run()
        }
        try DrillTable(conn: conn, rollup: rollup)?.apply(transitions)  // drill-down rows: same transitions, same transaction
    }

    static let layoutKey = "rollup_bucket"

    /// Forgets which layout the rows were kept for. A session that writes without a rollup (`waybill ingest
    /// --no-rollups`) calls this at open, so the next session with a rollup rebuilds every row rather than
    /// trusting rows that miss what was written in between.
    static func forgetLayout(_ conn: Connection) throws {
        try conn.prepare("DELETE FROM meta WHERE key = '\(layoutKey)'").run()
        try DrillTable.forgetLayout(conn)  // the drill-down rows miss the same writes
    }

    /// Rebuilds every row from the stored facts when the database has none for this rollup's layout
    /// (a new rollup, changed bucket widths, or a database written without one).
    func rebuildIfStale() throws {
        let marker = rollup.layout
        let m = try conn.prepare("SELECT value FROM meta WHERE key = '\(Self.layoutKey)'")
        let current = try m.step() ? m.text(0) : nil
        m.reset()
        let drill = DrillTable(conn: conn, rollup: rollup)  // drill-down rows: rebuilt with the rollups, or alone when only they are stale
        if drill == nil { try DrillTable.forgetLayout(conn) }  // a rollup without them: the rows will miss this session's writes
        guard current != marker else { try drill?.rebuildIfStale(); return }
        try conn.transaction {
            try conn.exec("DELETE FROM rollups")
            try drill?.clear()
            try OrdersTable.replayFacts(conn) { try apply($0) }
            try conn.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES('\(Self.layoutKey)', ?)").bind(1, marker).run()
            try drill?.markCurrent()
        }
    }
}
