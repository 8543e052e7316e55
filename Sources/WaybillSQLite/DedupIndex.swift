import WaybillModel

/// Which `(source, id)` pairs are stored: the idempotency check of `EventWriter`, written by the writer
/// session only.
///
/// A hash points at the event block (`event_blocks.seq`) that holds the event. Hashes of the blocks
/// after `mergedSeq` are kept in memory instead of in a B-tree: a hash index is written at random
/// places, and each dirty page costs WAL and checkpoint syscalls. They are persisted by the blocks
/// themselves (reloaded from `event_blocks` at the first write) and merged into the `dedup_runs` table in
/// one sorted pass every `recentLimit` events. `dedup_runs` is partitioned by block (`g` = seq >> `shift`)
/// and holds each partition's pairs as packed runs (`DedupRuns`, schema version 15: about 4 to 5 bytes a
/// pair, where a row per pair took 14), so a merge rewrites the newest partition or two and never the
/// whole store's index; a probe (only for the few events the filter cannot rule out) reads one run per
/// partition. A `DedupFilter` in front answers "new" for nearly every event without a probe. A hash is
/// only a candidate: a match is confirmed by comparing the stored pair. So the runs and the filter keep
/// only the hash's upper 32 bits (`short`, schema version 13): at 30 million events a probe finds a
/// stranger's hash beside the event's own about once in 140 probes, which costs a read of that block.
final class DedupIndex {
    private let conn: Connection
    private let blocks: EventBlockTable
    let recentLimit: Int
    /// Hash → the event stored after `mergedSeq`: its block's seq and a second hash of its `(source, id)`
    /// (`check`), so that a resend of a recent event (most resends come seconds to minutes late) is
    /// confirmed without reading and inflating the block that holds it (7% of the writer's time over
    /// HTTP). Only events whose two independent 64-bit hashes both match are taken as the same; the
    /// second is SipHash with this process's random key, so no producer can aim at a collision, and
    /// it is kept in memory only (recomputed when the recent hashes are reloaded).
    private var recent: [Int64: Recent] = [:]
    struct Recent {
        let seq: Int64
        let check: Int
    }

    static func check(source: String, id: String) -> Int {
        var h = Hasher()
        h.combine(source)
        h.combine(id)
        return h.finalize()
    }
    /// The rare second event whose hash is already in `recent`.
    private var recentCollisions: [Int64: [Int64]] = [:]
    /// Entries added by the open transaction, taken out again if it rolls back.
    private var uncommittedRecent: [Int64] = []
    /// Every event of a block with `seq <= mergedSeq` has its hash in `dedup`.
    private var mergedSeq: Int64 = 0

    private var filter = DedupFilter(capacity: 0)
    /// Built on the first write, so opening a store only to read (the CLI) does not scan every hash.
    private var filterReady = false

    private let probeMerged: Statement
    /// Blocks per partition of `dedup_runs`: 2^shift.
    private let shift: Int64

    init(conn: Connection, recentLimit: Int, blocks: EventBlockTable) throws {
        self.conn = conn
        self.blocks = blocks
        self.recentLimit = recentLimit
        probeMerged = try Statement(conn: conn, sql: DedupRuns.probeSQL)
        shift = try DedupRuns.shift(conn)
        conn.onTransactionEnd { [weak self] committed in self?.transactionEnded(committed: committed) }
    }

    /// The upper 32 bits of a hash: the key of `dedup_runs` and of the filter.
    @inline(__always) static func short(_ h: Int64) -> Int64 { h >> 32 }

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
        let sh = Self.short(h)
        guard filter.mayContain(sh) else { return false }
        var candidates: [Int64] = []
        if let first = recent[h] {
            if first.check == Self.check(source: source, id: id) { return true }
            candidates = recentCollisions[h] ?? []
        }
        try DedupRuns.probe(sh, through: mergedSeq >> shift, probeMerged, shift: shift, into: &candidates)
        var checked = Set<Int64>()
        for seq in candidates where checked.insert(seq).inserted {
            if try blocks.keys(ofBlock: seq).contains(where: { $0.source == source && $0.id == id }) { return true }
        }
        return false
    }

    /// Records the event `(source, id)` just inserted as `seq`.
    func inserted(hash h: Int64, seq: Int64, source: String, id: String) {
        addRecent(h, Recent(seq: seq, check: Self.check(source: source, id: id)))
        uncommittedRecent.append(h)
        // Into the filter at once, so a repeat later in the same transaction is probed. After a rollback
        // the filter may hold hashes that were never stored: that only costs an exact probe.
        filter.insert(Self.short(h))
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

    /// Reloads the recent hashes: the events of the blocks stored after the last merge.
    private func loadRecent() throws {
        recent.removeAll()
        recentCollisions.removeAll()
        let m = try conn.prepare("SELECT value FROM meta WHERE key = 'dedup_merged_seq'")
        mergedSeq = try m.step() ? Int64(m.text(0)) ?? 0 : 0
        m.reset()
        let s = try conn.prepare("SELECT seq, body, skip FROM event_blocks WHERE seq > ?")
        s.bind(1, mergedSeq)
        defer { s.reset() }
        while try s.step() {
            let seq = s.int64(0)
            let hidden = s.isNull(2) ? [] : try EventBlocks.hidden(s.blob(2))
            for k in try EventBlocks.keys(s.blob(1), hidden: hidden, dictionary: { try blocks.dictionary.bytes($0, conn) }) {
                addRecent(Self.hash(source: k.source, id: k.id), Recent(seq: seq, check: Self.check(source: k.source, id: k.id)))
            }
        }
    }

    private func addRecent(_ h: Int64, _ r: Recent) {
        if recent[h] == nil { recent[h] = r } else { recentCollisions[h, default: []].append(r.seq) }
    }

    /// Fills the filter from every stored hash (at first write, and when it has grown full).
    private func rebuildFilter(minimumCapacity: Int) throws {
        let stored = try conn.scalarInt("SELECT coalesce(sum(n), 0) FROM dedup_runs") + recent.count
        var f = DedupFilter(capacity: max(minimumCapacity, stored * 2))
        let s = try conn.prepare("SELECT g, h0, body FROM dedup_runs")
        defer { s.reset() }
        while try s.step() {
            try DedupRuns.forEach(h0: s.int64(1), body: s.blob(2), g: s.int64(0), shift: shift) { f.insert($0.h); return true }
        }
        for h in recent.keys { f.insert(Self.short(h)) }
        filter = f
    }

    // MARK: After a commit

    /// Rebuilds the filter twice as large once it holds more hashes than its capacity, so its
    /// false-positive rate stays bounded.
    func growFilterIfFull() throws {
        if filter.count > filter.capacity { try rebuildFilter(minimumCapacity: filter.capacity * 2) }
    }

    var mergeDue: Bool { recent.count >= recentLimit }

    /// Writes the recent hashes into `dedup_runs` in one sorted pass per partition they fall in (the
    /// newest one or two), so its runs are rewritten once per merge rather than once per transaction.
    func mergeRecent() throws {
        guard !recent.isEmpty else { return }
        var rows: [DedupRuns.Pair] = recent.map { DedupRuns.Pair(h: Self.short($0.key), seq: $0.value.seq) }
        for (h, seqs) in recentCollisions { for q in seqs { rows.append(DedupRuns.Pair(h: Self.short(h), seq: q)) } }
        // In the index's order: partition, hash, seq.
        let shift = self.shift
        rows.sort { ($0.seq >> shift, $0.h, $0.seq) < ($1.seq >> shift, $1.h, $1.seq) }
        let top = rows.map(\.seq).max() ?? mergedSeq
        let newMerged = try conn.transaction {
            var start = 0
            while start < rows.count {
                let g = rows[start].seq >> shift
                var end = start
                while end < rows.count, rows[end].seq >> shift == g { end += 1 }
                try DedupRuns.merge(Array(rows[start..<end]), g: g, shift: shift, conn)
                start = end
            }
            let newMerged = max(mergedSeq, top, Int64(try conn.scalarInt("SELECT coalesce(max(seq), 0) FROM event_blocks")))
            try conn.prepare("INSERT OR REPLACE INTO meta(key, value) VALUES('dedup_merged_seq', ?)").bind(1, String(newMerged)).run()
            return newMerged
        }
        mergedSeq = newMerged
        recent.removeAll(keepingCapacity: true)
        recentCollisions.removeAll()
    }

    // MARK: Retention

    /// Deletes the merged hashes of the blocks whose every event is before `cutoff`; call before
    /// deleting the blocks. A block that also holds later events keeps its seq and its hashes (a hash
    /// whose event is gone only costs a probe).
    func deleteHashes(ofBlocksBefore cutoff: Micros) throws {
        let s = try conn.prepare("SELECT seq FROM event_blocks WHERE tmin < ? AND tmax < ?")
        s.bind(1, cutoff).bind(2, cutoff)
        var seqs = Set<Int64>()
        while try s.step() { seqs.insert(s.int64(0)) }
        s.reset()
        try DedupRuns.remove(seqs: seqs, shift: shift, conn)
    }

    /// After retention committed: deleted events leave the recent hashes too. The filter may keep
    /// their bits (false positives only).
    func reloadAfterRetention() throws {
        if filterReady { try loadRecent() }
    }
}
