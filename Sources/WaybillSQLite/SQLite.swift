import CSQLite
import Foundation
import WaybillModel
import WaybillStore

let SQLITE_TRANSIENT = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// A thin owner of one SQLite connection. Not thread-safe: one user at a time (the writer thread, or a reader checked out of the pool).
final class Connection {
    let db: OpaquePointer
    private var cache: [String: Statement] = [:]
    /// Run after every transaction `transaction` ends; see `onTransactionEnd`.
    private var transactionEndHooks: [(_ committed: Bool) -> Void] = []
    /// Told how each transaction ended (the writer's connection): the store's `storageHealth`.
    var health: StorageHealthMonitor?

    init(path: String, readOnly: Bool = false, busyTimeoutMillis: Int32 = 10_000) throws {
        var handle: OpaquePointer?
        let flags = (readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let h = handle else {
            let msg = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "rc \(rc)"
            if let h = handle { sqlite3_close_v2(h) }
            throw sqliteError(rc, msg, context: "open \(path)", engineMessage: "cannot open \(path): \(msg)")
        }
        db = h
        sqlite3_busy_timeout(db, busyTimeoutMillis)
        sqlite3_extended_result_codes(db, 1)
    }

    deinit {
        cache.removeAll()
        sqlite3_close_v2(db)
    }

    func exec(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(db, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? "unknown"
            sqlite3_free(err)
            throw sqliteError(rc, msg, context: String(sql.prefix(120)), engineMessage: "\(msg) in: \(sql.prefix(120))")
        }
    }

    /// A cached prepared statement, reset and with bindings cleared.
    func prepare(_ sql: String) throws -> Statement {
        if let s = cache[sql] {
            s.reset()
            return s
        }
        let s = try Statement(conn: self, sql: sql)
        cache[sql] = s
        return s
    }

    /// Runs `body` in one `BEGIN IMMEDIATE` … `COMMIT`: every transaction of this target goes through here.
    /// IMMEDIATE takes the write lock up front, so a second writer waits at BEGIN instead of failing at
    /// its first write. When `body` or the commit throws, the transaction is rolled back and the error
    /// rethrown; either way the end hooks run first, so no in-memory cache outlives a rolled-back write.
    /// `health` learns the outcome: a commit ends a fault, a `StoreError.fault` starts or continues one
    /// (counted unless `countsFaults` is false, as for the writer's probe). With `reportsHealth` false it
    /// learns nothing: a write that only moves derived rows (a rollup window's fold) must neither end a
    /// fault that appends still meet nor start one.
    func transaction<T>(countsFaults: Bool = true, reportsHealth: Bool = true, _ body: () throws -> T) throws -> T {
        let result: T
        do {
            try exec("BEGIN IMMEDIATE")
            do {
                result = try body()
                try exec("COMMIT")
            } catch {
                // A fault (SQLITE_FULL, SQLITE_IOERR, …) may have rolled back already: then ROLLBACK fails, harmlessly.
                try? exec("ROLLBACK")
                for hook in transactionEndHooks { hook(false) }
                throw error
            }
        } catch StoreError.fault(let f) {
            if reportsHealth { health?.writeFailed(f, at: currentMicros(), counted: countsFaults) }
            throw StoreError.fault(f)
        }
        for hook in transactionEndHooks { hook(true) }
        if reportsHealth { health?.writeSucceeded() }
        return result
    }

    /// Registers `hook` to learn how each later transaction ended (`committed` false: rolled back). A cache
    /// of what the open transaction wrote registers one, to keep its entries on commit and drop them on
    /// rollback. Hooks live as long as the connection: capture their owner weakly.
    func onTransactionEnd(_ hook: @escaping (_ committed: Bool) -> Void) {
        transactionEndHooks.append(hook)
    }

    var changes: Int { Int(sqlite3_changes(db)) }
    var errorMessage: String { String(cString: sqlite3_errmsg(db)) }

    func scalarInt(_ sql: String) throws -> Int {
        let s = try prepare(sql)
        defer { s.reset() }
        return try s.step() ? s.int(0) : 0
    }
}

final class Statement {
    let stmt: OpaquePointer
    unowned let conn: Connection

    init(conn: Connection, sql: String) throws {
        var s: OpaquePointer?
        let rc = sqlite3_prepare_v3(conn.db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &s, nil)
        guard rc == SQLITE_OK, let st = s else {
            throw sqliteError(rc, conn.errorMessage, context: String(sql.prefix(160)),
                              engineMessage: "prepare failed: \(conn.errorMessage) in: \(sql.prefix(160))")
        }
        stmt = st
        self.conn = conn
    }

    deinit { sqlite3_finalize(stmt) }

    func reset() {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
    }

    @discardableResult
    func bind(_ i: Int32, _ v: String?) -> Statement {
        if let v { sqlite3_bind_text(stmt, i, v, -1, SQLITE_TRANSIENT) } else { sqlite3_bind_null(stmt, i) }
        return self
    }

    @discardableResult
    func bind(_ i: Int32, _ v: Int64?) -> Statement {
        if let v { sqlite3_bind_int64(stmt, i, v) } else { sqlite3_bind_null(stmt, i) }
        return self
    }

    @discardableResult
    func bind(_ i: Int32, _ v: Int?) -> Statement { bind(i, v.map(Int64.init)) }

    @discardableResult
    func bind(_ i: Int32, _ v: Double?) -> Statement {
        if let v { sqlite3_bind_double(stmt, i, v) } else { sqlite3_bind_null(stmt, i) }
        return self
    }

    @discardableResult
    func bindBlob(_ i: Int32, _ v: [UInt8]) -> Statement {
        v.withUnsafeBytes { p in
            _ = sqlite3_bind_blob(stmt, i, p.baseAddress, Int32(p.count), SQLITE_TRANSIENT)
        }
        return self
    }

    /// True when a row is available; false when done.
    func step() throws -> Bool {
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw sqliteError(rc, conn.errorMessage, context: sqlite3_sql(stmt).map { String(String(cString: $0).prefix(120)) } ?? "step",
                          engineMessage: "step failed (\(rc)): \(conn.errorMessage)")
    }

    func run() throws {
        defer { sqlite3_reset(stmt) }
        while try step() {}
    }

    func isNull(_ c: Int32) -> Bool { sqlite3_column_type(stmt, c) == SQLITE_NULL }
    func isBlob(_ c: Int32) -> Bool { sqlite3_column_type(stmt, c) == SQLITE_BLOB }
    func int(_ c: Int32) -> Int { Int(sqlite3_column_int64(stmt, c)) }
    func int64(_ c: Int32) -> Int64 { sqlite3_column_int64(stmt, c) }
    func optInt64(_ c: Int32) -> Int64? { isNull(c) ? nil : sqlite3_column_int64(stmt, c) }
    func double(_ c: Int32) -> Double { sqlite3_column_double(stmt, c) }
    func text(_ c: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, c) else { return "" }
        return String(cString: p)
    }
    func optText(_ c: Int32) -> String? { isNull(c) ? nil : text(c) }
    func blob(_ c: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(stmt, c))
        guard n > 0, let p = sqlite3_column_blob(stmt, c) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }
}
