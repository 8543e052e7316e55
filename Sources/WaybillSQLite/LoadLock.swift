import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An advisory lock (`flock`) on `STORE-load.lock`, held by a process whose writes leave the store's
/// derived rows behind its events on purpose for a while: a bulk load whose order rows and rollups wait
/// for the end of an epoch (`OrdersTable.Deferral`; `waybill ingest --db`, with or without rollups).
///
/// Every open of a store repairs rows left behind (`OrdersTable.recoverPending`, `RollupTable.rebuildIfStale`),
/// because a process that stopped mid-epoch or without rollups left them so. A process that is still
/// running has not: another process that opened the store meanwhile (`waybill kpi --db` during
/// `waybill ingest --db`) refolded the epoch's orders from their events, and the load then merged the same
/// facts into those rows again (an interleaved load of 400,000 lines read so ended with 449,394 events
/// counted in its orders instead of 297,466). The lock tells the two apart: the kernel releases it when
/// its holder ends, crash included, so an opener that gets it repairs what a stopped load left, and one
/// that does not leaves the live load's rows to it.
final class LoadLock: @unchecked Sendable {
    private let fd: Int32

    /// Opens (creating) the lock file beside the store; nil when it cannot be opened (then nothing is
    /// locked, and an open repairs as it did before there was a lock).
    init?(storePath: String) {
        let fd = open(storePath + "-load.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return nil }
        self.fd = fd
    }

    /// Takes the lock unless another open file description (another process, or another store object on
    /// the same path) holds it. Holding it already, this returns true.
    func tryLock() -> Bool {
        flock(fd, LOCK_EX | LOCK_NB) == 0
    }

    func unlock() {
        _ = flock(fd, LOCK_UN)
    }

    deinit { close(fd) }
}
