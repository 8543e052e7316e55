import WaybillModel

/// Which `(source, id)` pairs are stored: the idempotency check of `EventWriter`, written by the writer
/// session only.
///
/// Hashes of the events after `mergedSeq` are kept in memory instead of in a B-tree: a hash index is
/// written at random places, and each dirty page costs WAL and checkpoint syscalls. They are persisted
/// by the events themselves (reloaded from `events` at the first write) and merged into the `dedup`
/// table in one sorted pass every `recentLimit` events. A `DedupFilter` in front answers "new" for
/// nearly every event without a probe. A hash is only a candidate: a match is confirmed by comparing
/// the stored pair.
final class DedupIndex {
    private let conn: Connection
    let recentLimit: Int
    /// Hash → seq of the events stored after `mergedSeq`.
    private var recent: [Int64: Int64] = [:]
    /// The rare second event whose hash is already in `recent`.
    private var recentCollisions: [Int64: [Int64]] = [:]
    /// Entries added by the open transaction, taken out again if it rolls back.
    private var uncommittedRecent: [Int64] = []
    /// Every event with `seq <= mergedSeq` has its hash in `dedup`.
    private var mergedSeq: Int64 = 0

    private var filter = DedupFilter(capacity: 0)
    /// Built on the first write, so opening a store only to read (the CLI) does not scan every hash.
    private var filterReady = false

    private let eventKey: Statement
    private let probeMerged: Statement

    init(conn: Connection, recentLimit: Int) throws {
        self.conn = conn
        self.recentLimit = recentLimit
        eventKey = try Statement(conn: conn, sql: "SELECT source, id FROM events WHERE seq = ?")
        probeMerged = try Statement(conn: conn, sql: "SELECT e.source, e.id FROM dedup d JOIN events e ON e.seq = d.seq WHERE d.h = ?")
        conn.onTransactionEnd { [weak self] committed in self?.transactionEnded(committed: committed) }
    }

    /// 64-bit FNV-1a of `source`, a separator and `id`: the narrow key of the index.
    static func hash(source: String, id: String) -> Int64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in source.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        h = (h ^ 0xFF) &* 0x100_0000_01b3
        for b in id.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        return Int64(bitPattern: h)
    }

    /// Whether an event `(source, id)` whose hash is `h` is stored, including earlier in the open transaction.
    func contains(source: String, id: String, hash h: Int64) throws -> Bool {
        if !filterReady {
            try loadRecent()
            try rebuildFilter(minimumCapacity: 1 << 20)
            filterReady = true
        }
        guard filter.mayContain(h) else { return false }
        if let first = recent[h] {
            for seq in [first] + (recentCollisions[h] ?? []) {
                eventKey.reset()
                eventKey.bind(1, seq)
                if try eventKey.step(), eventKey.text(0) == source, eventKey.text(1) == id {
                    eventKey.reset()
                    return true
                }
            }
            eventKey.reset()
        }
        probeMerged.reset()
        probeMerged.bind(1, h)
        while try probeMerged.step() {
            if probeMerged.text(0) == source && probeMerged.text(1) == id {
                probeMerged.reset()
                return true
            }
        }
        probeMerged.reset()
        return false
    }

    /// Records the event just inserted as `seq`.
    func inserted(hash h: Int64, seq: Int64) {
        addRecent(h, seq)
        uncommittedRecent.append(h)
        // Into the filter at once, so a repeat later in the same transaction is probed. After a rollback
        // the filter may hold hashes that were never stored: that only costs an exact probe.
        filter.insert(h)
    }

    private func transactionEnded(committed: Bool) {
        if committed {
            uncommittedRecent.removeAll(keepingCapacity: true)
        } else if !uncommittedRecent.isEmpty {
            // The rolled-back events are not stored: forget their hashes (reloading is exact).
            uncommittedRecent.removeAll()
            try? loadRecent()
        }
    }

    /// Reloads the recent hashes: the events stored after the last merge.
    private func loadRecent() throws {
        recent.removeAll()
        recentCollisions.removeAll()
        let m = try conn.prepare("SELECT value FROM meta WHERE key = 'dedup_merged_seq'")
        mergedSeq = try m.step() ? Int64(m.text(0)) ?? 0 : 0
        m.reset()
        let s = try conn.prepare("SELECT seq, source, id FROM events WHERE seq > ?")
        s.bind(1, mergedSeq)
        while try s.step() { addRecent(Self.hash(source: s.text(1), id: s.text(2)), s.int64(0)) }
        s.reset()
    }

    private func addRecent(_ h: Int64, _ seq: Int64) {
        if recent[h] == nil { recent[h] = seq } else { recentCollisions[h, default: []].append(seq) }
    }

    /// Fills the filter from every stored hash (at first write, and when it has grown full).
    private func rebuildFilter(minimumCapacity: Int) throws {
        let stored = try conn.scalarInt("SELECT count(*) FROM dedup") + recent.count
        var f = DedupFilter(capacity: max(minimumCapacity, stored * 2))
        let s = try conn.prepare("SELECT h FROM dedup")
        while try s.step() { f.insert(s.int64(0)) }
        s.reset()
        for h in recent.keys { f.insert(h) }
        filter = f
    }

    // MARK: After a commit

    /// Rebuilds the filter twice as large once it holds more hashes than its capacity, so its
    /// false-positive rate stays bounded.
    func growFilterIfFull() throws {
        if filter.count > filter.capacity { try rebuildFilter(minimumCapacity: filter.capacity * 2) }
    }

    var mergeDue: Bool { recent.count >= recentLimit }

    /// Writes the recent hashes into `dedup` in one sorted pass, so each leaf page of that index is
    /// written once per merge rather than once per transaction.
    func mergeRecent() throws {
        guard !recent.isEmpty else { return }
        var rows: [(Int64, Int64)] = recent.map { ($0.key, $0.value) }
        for (h, seqs) in recentCollisions { for q in seqs { rows.append((h, q)) } }
        rows.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
        let top = rows.map(\.1).max() ?? mergedSeq
        let newMerged = try conn.transaction {
            let ins = try conn.prepare("INSERT OR IGNORE INTO dedup(h, seq) VALUES(?, ?)")
            for (h, q) in rows {
                ins.reset()
                try ins.bind(1, h).bind(2, q).run()
            }
            let newMerged = max(mergedSeq, top, Int64(try conn.scalarInt("SELECT coalesce(max(seq), 0) FROM events")))
            try conn.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES('dedup_merged_seq', ?)").bind(1, String(newMerged)).run()
            return newMerged
        }
        mergedSeq = newMerged
        recent.removeAll(keepingCapacity: true)
        recentCollisions.removeAll()
    }

    // MARK: Retention

    /// Deletes the merged hashes of the events before `cutoff`; call before deleting the events.
    func deleteHashes(ofEventsBefore cutoff: Micros) throws {
        try conn.prepare("DELETE FROM dedup WHERE seq IN (SELECT seq FROM events WHERE time < ?)").bind(1, cutoff).run()
    }

    /// After retention committed: deleted events leave the recent hashes too. The filter may keep
    /// their bits (false positives only).
    func reloadAfterRetention() throws {
        if filterReady { try loadRecent() }
    }
}
