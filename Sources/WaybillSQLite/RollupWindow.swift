import Synchronization
import WaybillModel
import WaybillStore

/// A server's KPI rollup rows, written once per *window* of commits instead of in every commit
/// (`SQLiteStore.Options.rollupWindowCommits`). Interleaved arrival touches each order again and again
/// within seconds (accepted, allocated, picked, shipped...), and each touch used to retract and re-add
/// the order in a dozen rollup and drill rows. In a window, the order rows are still written by every
/// commit; the rollups take one transition per order per window: from the order's facts before the
/// window's first touch to its facts after the last.
///
/// Exact and durable: the commit that first touches an order in a window also appends the order's old
/// facts to the journal `rollup_pending` (in the same transaction as its events and row), so the
/// committed state is always rows + rollups + journal, and rollups + (journal → rows) is what per-commit
/// writes would have left. The fold applies those transitions and empties the journal in one
/// transaction: when the window has `commits` commits or `orders` orders, before any read of rollup or
/// drill rows in this process (`SQLiteStore` asks the writer to fold first), before retention and other
/// writes, when the writer has been idle a moment, and at close. A store opened with a non-empty journal
/// (kill -9 mid-window) folds it at open (`recover`), as a rolled-back write does before the next one;
/// a process that opens the store while the server runs does not, since the server holds `LoadLock`.
final class RollupWindow {
    struct Bounds: Sendable {
        var commits: Int
        var orders: Int
    }

    let conn: Connection
    let rollups: RollupTable
    let bounds: Bounds
    /// Each order's facts before the window's first touch (nil inside: the order was new), and after its last.
    private var before: [String: OrderFacts?] = [:]
    private var after: [String: OrderFacts] = [:]
    private var commits = 0
    /// A rolled-back write lost the window's state: fold what the journal holds before the next write.
    private(set) var needsRecovery = false
    /// Whether rollup rows wait for a fold (set when a write adds to the window, cleared once a fold has
    /// committed): readers of rollup rows ask the writer to fold only then.
    let pending = Atomic<Bool>(false)
    private var foldedInTransaction = false

    static let createSQL = "CREATE TABLE IF NOT EXISTS rollup_pending(order_id TEXT NOT NULL, facts BLOB);"

    init(conn: Connection, rollups: RollupTable, bounds: Bounds) {
        self.conn = conn
        self.rollups = rollups
        self.bounds = bounds
        conn.onTransactionEnd { [weak self] committed in
            guard let self else { return }
            if committed {
                if self.foldedInTransaction && self.before.isEmpty { self.pending.store(false, ordering: .releasing) }
            } else {
                // The journal lost this transaction's rows with it; the committed ones are folded from the table.
                self.before.removeAll()
                self.after.removeAll()
                self.commits = 0
                self.needsRecovery = true
            }
            self.foldedInTransaction = false
        }
    }

    var isEmpty: Bool { before.isEmpty }

    /// In the commit's transaction: journals the old facts of the orders first touched in this window and
    /// keeps each order's latest facts; folds when the window is full.
    /// Call `recoverIfNeeded` first, in the same transaction, before the write merges its order rows.
    func add(_ transitions: [FactsTransition]) throws {
        guard !transitions.isEmpty else { return }
        let journal = try conn.prepare("INSERT INTO rollup_pending(order_id, facts) VALUES(?, ?)")
        for t in transitions {
            let id = t.new.orderID
            if before[id] == nil {
                journal.reset()
                journal.bind(1, id)
                if let old = t.old { journal.bindBlob(2, FactsCodec.encode(old)) } else { journal.bind(2, nil as Int64?) }
                try journal.run()
                before[id] = .some(t.old)
            }
            after[id] = t.new
        }
        pending.store(true, ordering: .releasing)
        commits += 1
        if commits >= bounds.commits || after.count >= bounds.orders { try fold() }
    }

    /// Applies the window's transitions to the rollups and empties the journal, in the open transaction.
    func fold() throws {
        try recoverIfNeeded()
        guard !before.isEmpty else { return }
        let transitions = after.keys.sorted().map { FactsTransition(old: before[$0]!, new: after[$0]!) }
        try rollups.apply(transitions)
        try conn.exec("DELETE FROM rollup_pending")
        before.removeAll(keepingCapacity: true)
        after.removeAll(keepingCapacity: true)
        commits = 0
        foldedInTransaction = true
    }

    /// After a rolled-back write, folds what the journal holds (in the open transaction): each journalled
    /// order's old facts to its row's facts now. A write calls it before it merges its rows.
    func recoverIfNeeded() throws {
        guard needsRecovery else { return }
        needsRecovery = false
        before.removeAll()
        after.removeAll()
        commits = 0
        try Self.recover(conn: conn, rollups: rollups)
        foldedInTransaction = true
    }

    /// Folds a journal left by a writer that stopped mid-window (kill -9), in the open transaction.
    /// Returns how many orders.
    @discardableResult
    static func recover(conn: Connection, rollups: RollupTable) throws -> Int {
        var old: [String: OrderFacts?] = [:]
        let q = try conn.prepare("SELECT order_id, facts FROM rollup_pending ORDER BY rowid")
        while try q.step() {
            let id = q.text(0)
            guard old[id] == nil else { continue }
            if q.isNull(1) {
                old[id] = .some(nil)
            } else {
                guard let f = FactsCodec.decode(q.blob(1), orderID: id) else {
                    q.reset()
                    throw StoreError.engine("rollup_pending: the facts of \(id) do not decode")
                }
                old[id] = .some(f)
            }
        }
        q.reset()
        guard !old.isEmpty else { return 0 }
        let load = try conn.prepare("SELECT \(FactsCodec.rowColumns) FROM orders WHERE order_id = ?")
        var transitions: [FactsTransition] = []
        for id in old.keys.sorted() {
            load.bind(1, id)
            let now = try load.step() ? FactsCodec.decode(load, at: 0) : nil
            load.reset()
            transitions.append(FactsTransition(old: old[id]!, new: now ?? OrderFacts(orderID: id)))
        }
        try rollups.apply(transitions)
        try conn.exec("DELETE FROM rollup_pending")
        return transitions.count
    }

    /// Empties the journal (the rollups are rebuilt from the rows, or forgotten).
    static func clear(_ conn: Connection) throws {
        try conn.exec("DELETE FROM rollup_pending")
    }
}
