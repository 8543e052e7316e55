import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import WaybillModel
import WaybillStore

/// Makes the writer's commits durable on a thread of its own, so that the writer does not wait for the
/// disk between transactions (group commit with the sync taken out of the writer's path).
///
/// With `synchronous=FULL`, SQLite syncs the write-ahead log inside every COMMIT: the single writer
/// thread sat idle for the whole `fdatasync` (8-10 ms on the benchmark machine, about a third of its
/// time under HTTP ingest) while requests queued behind it. Instead, the writer's connection commits
/// with `synchronous=NORMAL` (the transaction is in the WAL, in the OS's cache: it survives a crash of
/// the process, not yet a power loss) and hands the commit's answers here. This thread syncs the WAL
/// file and only then answers them, so an acknowledged write is still one on disk. Meanwhile the writer
/// runs the next transaction; one sync covers every commit written before it began, so its cost is
/// shared by all the transactions committed during the previous one.
///
/// SQLite itself still syncs the WAL before each checkpoint, the database file after it, and the
/// WAL's header when it starts the WAL over. Until a commit is synced, readers may already see it;
/// its client has not been answered. Should `fdatasync` fail, the commits it covered may be lost from the
/// OS's cache although readers saw them (Linux marks pages it could not write clean), so a resend could
/// be answered as a duplicate of data that is not on disk. A failed sync is therefore final: it and every
/// later commit are answered with the fault (`503`), and `health` keeps reporting it, until the store is
/// opened again (a restart), when SQLite reads back only what the WAL holds on disk and resends are
/// stored again. PostgreSQL stops for the same reason.
final class WALSyncer: @unchecked Sendable {
    struct Waiter {
        let done: () -> Void
        let failed: (any Error) -> Void
    }

    let walPath: String
    private let health: StorageHealthMonitor?
    private let life = ThreadLifecycle()
    private var cond: NSCondition { life.cond }
    private var stopping: Bool { get { life.stopping } set { life.stopping = newValue } }
    private var stopped: Bool { get { life.stopped } set { life.stopped = newValue } }
    private var pending: [Waiter] = []
    /// Tests hold the syncer to see that nothing is answered before its sync.
    private var paused: Bool { life.paused }
    /// The WAL, opened on the first sync; reopened should the file be replaced.
    private var fd: Int32 = -1
    private var identity: (dev: UInt64, ino: UInt64) = (0, 0)
    /// The failed sync's fault, given to every commit after it (see above).
    private var lost: StorageFault?
    /// Whether the last `syncWAL` failed in `fdatasync` itself (rather than finding or opening the WAL).
    private var syncFailed = false
    /// Syncs run, and the commits they covered (tests).
    private var counts = (syncs: 0, covered: 0)
    var syncs: Int { cond.lock(); defer { cond.unlock() }; return counts.syncs }
    var covered: Int { cond.lock(); defer { cond.unlock() }; return counts.covered }

    /// - Parameter databasePath: the database file; its WAL is `<path>-wal`.
    init(databasePath: String, health: StorageHealthMonitor?) {
        walPath = databasePath + "-wal"
        self.health = health
        let t = Thread { [unowned self] in
            // Named from inside: on Linux, setting `name` before `start` renames the calling thread.
            Thread.current.name = "waybill-sync"
            self.run()
        }
        t.start()
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Runs `done` once everything committed so far is synced, or `failed` when the sync fails.
    func submit(_ w: Waiter) {
        cond.lock()
        if stopped {
            cond.unlock()
            // Only after `stop`: nothing syncs any more; sync here.
            if let f = lost ?? syncWAL() { w.failed(StoreError.fault(f)) } else { w.done() }
            return
        }
        pending.append(w)
        cond.signal()
        cond.unlock()
    }

    func setPaused(_ p: Bool) { life.setPaused(p) }

    /// Answers every submitted commit (after a last sync), then ends the thread.
    func stop() {
        guard life.stopAndWait() else { return }
    }

    private func run() {
        while true {
            cond.lock()
            while (pending.isEmpty || paused) && !stopping { cond.wait() }
            let take = pending
            pending = []
            if take.isEmpty {
                stopped = true
                cond.broadcast()
                cond.unlock()
                return
            }
            cond.unlock()
            var fault = lost
            if fault == nil, let f = syncWAL() {
                // Only a failed fdatasync may have lost written pages; a WAL that cannot be found or
                // opened fails these commits, and the next sync tries again.
                fault = syncFailed ? Self.final(f) : f
                if syncFailed { lost = fault }
            }
            cond.lock()
            counts.syncs += 1
            counts.covered += take.count
            cond.unlock()
            if let fault {
                if lost != nil { health?.durabilityLost(fault, at: currentMicros()) } else { health?.writeFailed(fault, at: currentMicros()) }
                for w in take { w.failed(StoreError.fault(fault)) }
            } else {
                for w in take { w.done() }
            }
        }
    }

    /// Syncs the WAL's data to disk; the fault when that fails.
    func syncWAL() -> StorageFault? {
        var st = stat()
        guard stat(walPath, &st) == 0 else { return fault("the write-ahead log is missing", errno) }
        if fd < 0 || identity.dev != UInt64(st.st_dev) || identity.ino != UInt64(st.st_ino) {
            if fd >= 0 { close(fd) }
            fd = open(walPath, O_RDONLY | O_CLOEXEC)
            guard fd >= 0 else { return fault("the write-ahead log could not be opened", errno) }
            var own = stat()
            guard fstat(fd, &own) == 0 else { return fault("the write-ahead log could not be read", errno) }
            identity = (UInt64(own.st_dev), UInt64(own.st_ino))
            // A WAL SQLite has just created: its name must be on disk too (SQLite's FULL mode syncs the
            // directory at the first sync of a new journal).
            let dir = (walPath as NSString).deletingLastPathComponent
            let dfd = open(dir.isEmpty ? "." : dir, O_RDONLY | O_CLOEXEC)
            if dfd >= 0 {
                _ = fsync(dfd)
                close(dfd)
            }
        }
        syncFailed = false
        while fdatasync(fd) != 0 {
            if errno == EINTR { continue }
            syncFailed = true
            return fault("the write-ahead log could not be synced", errno)
        }
        return nil
    }

    /// A sync's fault as answered from then on: it says what brings writes back.
    static func final(_ f: StorageFault) -> StorageFault {
        var f = f
        f.message += "; writes are refused until the store is opened again (restart the server)"
        return f
    }

    private func fault(_ what: String, _ code: Int32) -> StorageFault {
        let kind: StorageFault.Kind = code == ENOSPC || code == EDQUOT ? .diskFull : code == EROFS ? .readOnly : .ioError
        return StorageFault(kind: kind, message: "\(what): \(String(cString: strerror(code)))", context: walPath)
    }
}
