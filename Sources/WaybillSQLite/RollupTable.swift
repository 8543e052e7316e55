import WaybillModel
import WaybillStore

/// The `rollups` table: the rows a `FactsRollup` keeps beside the order facts, written in the same
/// transaction as the facts they summarise, so the two never disagree.
///
/// Layout (schema 16): a row's dimension and group are coded as a small integer (`rollup_dims`), and
/// its bytes are cut into parts of at most `partBytes` (`rollups(d, bucket, part, acc)`). A WITHOUT ROWID
/// row larger than about 2,000 bytes on an 8 KiB page spills into an overflow page of its own, mostly
/// empty: the hourly step-duration rows (2.5 KB on average) left 4 bytes per event unused that way.
struct RollupTable {
    let conn: Connection
    let rollup: any FactsRollup
    let codes: RollupDimCodes

    init(conn: Connection, rollup: any FactsRollup) {
        self.conn = conn
        self.rollup = rollup
        codes = RollupDimCodes(conn: conn)
    }

    /// The largest part of a row: the row with its key stays under SQLite's local payload limit of a
    /// WITHOUT ROWID table on 8 KiB pages (2,030 bytes), so no part needs an overflow page.
    static let partBytes = 1_900

    static let createSQL = """
        CREATE TABLE IF NOT EXISTS rollup_dims(code INTEGER PRIMARY KEY, dim TEXT NOT NULL, gk TEXT NOT NULL);
        CREATE UNIQUE INDEX IF NOT EXISTS rollup_dims_name ON rollup_dims(dim, gk);
        CREATE TABLE IF NOT EXISTS rollups(d INTEGER NOT NULL, bucket INTEGER NOT NULL, part INTEGER NOT NULL, acc BLOB NOT NULL,
                             PRIMARY KEY(d, bucket, part)) WITHOUT ROWID;
        """

    /// Applies facts transitions: reads the rows they touch, then writes or deletes what the rollup returns.
    func apply(_ transitions: [FactsTransition]) throws {
        guard !transitions.isEmpty else { return }
        let rows = try rollup.update(transitions) { key in
            guard let d = try codes.code(key.dimension, key.group, create: false) else { return nil }
            return try Self.read(conn, d: d, bucket: key.bucketStart)
        }
        for (key, bytes) in rows {
            if let bytes {
                try Self.write(conn, d: try codes.code(key.dimension, key.group, create: true)!, bucket: key.bucketStart, bytes: bytes)
            } else if let d = try codes.code(key.dimension, key.group, create: false) {
                try Self.write(conn, d: d, bucket: key.bucketStart, bytes: nil)
            }
        }
        try DrillTable(conn: conn, rollup: rollup, codes: codes)?.apply(transitions)  // drill-down rows: same transitions, same transaction
    }

    /// A row's bytes (its parts joined), nil when there is none.
    static func read(_ conn: Connection, d: Int64, bucket: Micros) throws -> [UInt8]? {
        let s = try conn.prepare("SELECT acc FROM rollups WHERE d = ? AND bucket = ? ORDER BY part")
        defer { s.reset() }
        s.bind(1, d).bind(2, bucket)
        var out: [UInt8]?
        while try s.step() { out = (out ?? []) + s.blob(0) }
        return out
    }

    /// Replaces a row's parts with `bytes` cut into parts (nil: deletes the row).
    static func write(_ conn: Connection, d: Int64, bucket: Micros, bytes: [UInt8]?) throws {
        var n = 0
        if let bytes {
            let put = try conn.prepare("INSERT OR REPLACE INTO rollups(d, bucket, part, acc) VALUES(?, ?, ?, ?)")
            var at = 0
            repeat {
                let end = min(bytes.count, at + partBytes)
                put.reset()
                put.bind(1, d).bind(2, bucket).bind(3, Int64(n)).bindBlob(4, Array(bytes[at..<end]))
                try put.run()
                n += 1
                at = end
            } while at < bytes.count
        }
        // Parts beyond the new row's last: only a row that shrank (or went) has any.
        let del = try conn.prepare("DELETE FROM rollups WHERE d = ? AND bucket = ? AND part >= ?")
        del.reset()
        try del.bind(1, d).bind(2, bucket).bind(3, Int64(n)).run()
    }

    static let layoutKey = "rollup_bucket"

    /// Forgets which layout the rows were kept for. A session that writes without a rollup (`waybill ingest
    /// --no-rollups`) calls this at open, so the next session with a rollup rebuilds every row rather than
    /// trusting rows that miss what was written in between.
    static func forgetLayout(_ conn: Connection) throws {
        try conn.prepare("DELETE FROM meta WHERE key = '\(layoutKey)'").run()
        try DrillTable.forgetLayout(conn)  // the drill-down rows miss the same writes
        try RollupWindow.clear(conn)  // a window's journal: the rebuild starts from the rows
    }

    /// Rebuilds every row from the stored facts when the database has none for this rollup's layout
    /// (a new rollup, changed bucket widths, or a database written without one).
    func rebuildIfStale() throws {
        let marker = rollup.layout
        let m = try conn.prepare("SELECT value FROM meta WHERE key = '\(Self.layoutKey)'")
        let current = try m.step() ? m.text(0) : nil
        m.reset()
        let drill = DrillTable(conn: conn, rollup: rollup, codes: codes)  // drill-down rows: rebuilt with the rollups, or alone when only they are stale
        if drill == nil { try DrillTable.forgetLayout(conn) }  // a rollup without them: the rows will miss this session's writes
        guard current != marker else {
            // A server stopped mid-window (`RollupWindow`): its journal takes the rollups to the rows.
            try conn.transaction { _ = try RollupWindow.recover(conn: conn, rollups: self) }
            try drill?.rebuildIfStale()
            return
        }
        try conn.transaction {
            try RollupWindow.clear(conn)
            try conn.exec("DELETE FROM rollups")
            try drill?.clear()
            try OrdersTable.replayFacts(conn) { try apply($0) }
            try conn.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES('\(Self.layoutKey)', ?)").bind(1, marker).run()
            try drill?.markCurrent()
        }
    }

    /// Schema 16: moves the rows of the text-keyed table (`dim`, `bucket`, `gk`, one row each) into coded
    /// rows cut into parts, then drops it. The bytes are unchanged. A store already in this layout (set back
    /// to an older version by hand, as tests of older conversions do) is left as it is.
    static func convertVersion15(_ c: Connection) throws {
        let cols = try c.prepare("SELECT count(*) FROM pragma_table_info('rollups') WHERE name = 'dim'")
        let textKeyed = try cols.step() && cols.int(0) > 0
        cols.reset()
        if textKeyed { try c.exec("ALTER TABLE rollups RENAME TO rollups_v15") }
        try c.exec(createSQL)
        guard textKeyed else { return }
        let codes = RollupDimCodes(conn: c)
        let sel = try c.prepare("SELECT dim, bucket, gk, acc FROM rollups_v15 ORDER BY dim, gk, bucket")
        while try sel.step() {
            let d = try codes.code(sel.text(0), Schema.group(fromKey: sel.text(2)), create: true)!
            try write(c, d: d, bucket: sel.int64(1), bytes: sel.blob(3))
        }
        sel.reset()
        try c.exec("DROP TABLE rollups_v15")
    }
}

/// The codes of rollup dimensions and groups (`rollup_dims`), cached for the writer. A code created in a
/// transaction that rolls back is forgotten with it (`Connection.onTransactionEnd`).
final class RollupDimCodes {
    struct Name: Hashable { let dim: String, group: String? }
    let conn: Connection
    private var committed: [Name: Int64] = [:]
    private var pending: [Name: Int64] = [:]

    init(conn: Connection) {
        self.conn = conn
        conn.onTransactionEnd { [weak self] ok in
            guard let self else { return }
            if ok { self.committed.merge(self.pending) { a, _ in a } }
            self.pending.removeAll()
        }
    }

    /// The code of a dimension and group; nil when it has none and `create` is false.
    func code(_ dim: String, _ group: String?, create: Bool) throws -> Int64? {
        let name = Name(dim: dim, group: group)
        if let c = committed[name] ?? pending[name] { return c }
        let s = try conn.prepare("SELECT code FROM rollup_dims WHERE dim = ? AND gk = ?")
        s.bind(1, dim).bind(2, Schema.groupKey(group))
        let found = try s.step() ? s.int64(0) : nil
        s.reset()
        if let found {
            pending[name] = found  // read inside the open transaction: kept only if it commits
            return found
        }
        guard create else { return nil }
        try conn.prepare("INSERT INTO rollup_dims(dim, gk) VALUES(?, ?)").bind(1, dim).bind(2, Schema.groupKey(group)).run()
        let c = Int64(try conn.scalarInt("SELECT last_insert_rowid()"))
        pending[name] = c
        return c
    }

    /// Every code of a dimension with its group (read side).
    static func codes(_ c: Connection, dim: String) throws -> [(code: Int64, group: String?)] {
        let s = try c.prepare("SELECT code, gk FROM rollup_dims WHERE dim = ?")
        defer { s.reset() }
        s.bind(1, dim)
        var out: [(code: Int64, group: String?)] = []
        while try s.step() { out.append((s.int64(0), Schema.group(fromKey: s.text(1)))) }
        return out
    }
}
