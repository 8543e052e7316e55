import CSQLite
import WaybillStore

extension StorageFault.Kind {
    /// The kind of fault an SQLite result code (primary or extended) is, or nil when a retry will not cure it
    /// (corruption, a constraint, misuse).
    init?(sqliteCode rc: Int32) {
        if rc == SQLITE_IOERR | (12 << 8) { self = .outOfMemory; return }  // SQLITE_IOERR_NOMEM (a macro Swift does not import)
        switch rc & 0xFF {
        case SQLITE_FULL: self = .diskFull
        case SQLITE_IOERR: self = .ioError
        // BUSY past the busy timeout, LOCKED by another connection, PROTOCOL a lost race for a WAL lock.
        case SQLITE_BUSY, SQLITE_LOCKED, SQLITE_PROTOCOL: self = .busy
        case SQLITE_CANTOPEN: self = .cannotOpen
        case SQLITE_READONLY: self = .readOnly
        case SQLITE_NOMEM: self = .outOfMemory
        default: return nil
        }
    }
}

/// The error for a failed SQLite call: `StoreError.fault` when its result code `rc` may pass, else
/// `StoreError.engine(engineMessage)`.
func sqliteError(_ rc: Int32, _ message: String, context: String, engineMessage: @autoclosure () -> String) -> StoreError {
    guard let kind = StorageFault.Kind(sqliteCode: rc) else { return .engine(engineMessage()) }
    return .fault(StorageFault(kind: kind, message: message, context: context))
}
