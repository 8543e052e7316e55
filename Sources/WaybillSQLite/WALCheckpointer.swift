import CSQLite
import Foundation
import WaybillStore

/// Runs the WAL checkpoints of the writer's connection on a thread of its own, so the single writer
/// thread only appends to the WAL. SQLite's automatic checkpoint (`wal_autocheckpoint`) runs inside the
/// COMMIT that crosses the threshold: that commit (and every append queued behind it) waits while tens
/// of MB are copied into the database file and synced.
///
/// The writer's connection gets a WAL hook in place of the automatic one. After each commit it compares
/// the WAL's frames with `threshold`; beyond it, it wakes this thread, which runs a PASSIVE checkpoint
/// on its own connection (one that never waits for readers or the writer, so appends go on meanwhile).
/// The writer starts the WAL over at its next transaction once a checkpoint has copied every frame.
/// Should the checkpoints fall behind (frames beyond `inlineLimit`), the committing writer runs one
/// itself, as the automatic checkpoint did, so the WAL stays bounded whatever happens here.
/// Checkpoints change no data and no durability: committed transactions are already in the synced WAL.
final class WALCheckpointer: @unchecked Sendable {
    let threshold: Int32
    let inlineLimit: Int32
    private let conn: Connection
    private let life = ThreadLifecycle()
    private var cond: NSCondition { life.cond }
    private var stopping: Bool { get { life.stopping } set { life.stopping = newValue } }
    private var stopped: Bool { get { life.stopped } set { life.stopped = newValue } }
    private var due = false
    private var running = false
    /// Checkpoints run by this thread, and by the writer because they fell behind (tests, `/metrics`-free).
    private(set) var background = 0
    private(set) var inline = 0

    init(path: String, writer: Connection, synchronous: String, threshold: Int32 = 8000, inlineLimit: Int32? = nil,
         busyTimeoutMillis: Int32) throws {
        // WAYBILL_CHECKPOINT_PAGES sets another threshold, for A/B benchmarks.
        let threshold = ProcessInfo.processInfo.environment["WAYBILL_CHECKPOINT_PAGES"].flatMap(Int32.init).flatMap { $0 > 0 ? $0 : nil } ?? threshold
        self.threshold = threshold
        self.inlineLimit = inlineLimit ?? threshold * 8
        conn = try Connection(path: path, busyTimeoutMillis: busyTimeoutMillis)
        self.writer = writer
        try conn.exec("PRAGMA synchronous=\(synchronous == "NORMAL" ? "NORMAL" : "FULL")")
        let t = Thread { [unowned self] in
            // Named from inside: on Linux, setting `name` before `start` renames the calling thread.
            Thread.current.name = "waybill-checkpoint"
            self.run()
        }
        t.start()
        // Replaces the automatic checkpoint's hook on the writer's connection.
        sqlite3_wal_hook(writer.db, { ctx, db, name, frames in
            let me = Unmanaged<WALCheckpointer>.fromOpaque(ctx!).takeUnretainedValue()
            if frames >= me.inlineLimit {
                sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
                me.inline += 1
            } else if frames >= me.threshold {
                me.wake()
            }
            return SQLITE_OK
        }, Unmanaged.passUnretained(self).toOpaque())
    }

    private unowned(unsafe) let writer: Connection

    private func wake() {
        cond.lock()
        due = true
        cond.signal()
        cond.unlock()
    }

    /// Ends the thread (after a checkpoint in progress) and gives the writer's connection back its
    /// automatic checkpoint. Call before the writer's connection closes.
    func stop() {
        guard life.stopAndWait() else { return }
        sqlite3_wal_autocheckpoint(writer.db, threshold)
    }

    /// Waits until no checkpoint is due or running (tests).
    func waitIdle() {
        cond.lock()
        while (due || running) && !stopped { cond.wait() }
        cond.unlock()
    }

    private func run() {
        while true {
            cond.lock()
            while !due && !stopping { cond.wait() }
            if stopping {
                stopped = true
                cond.broadcast()
                cond.unlock()
                return
            }
            due = false  // a wake-up during the checkpoint asks for another
            running = true
            cond.unlock()
            // Failure (a busy lock, I/O) is left to the next wake-up, or to the writer past `inlineLimit`.
            sqlite3_wal_checkpoint_v2(conn.db, nil, SQLITE_CHECKPOINT_PASSIVE, nil, nil)
            cond.lock()
            background += 1
            running = false
            cond.broadcast()
            cond.unlock()
        }
    }
}
