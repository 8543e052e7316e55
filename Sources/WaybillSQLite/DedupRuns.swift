import WaybillStore

/// The merged idempotency hashes as packed runs (schema version 15): `dedup_runs` holds, per partition
/// `g` (block seq >> `shift`), the partition's `(short hash, block seq)` pairs sorted by hash and cut into
/// runs of about `entriesPerRun`, one row per run keyed by its first hash `h0`:
///
///     dedup_runs(g, h0, n, body)   n = pairs in the run
///     body = format(1) { hashDelta(varint, from the previous pair's hash; 0 for the first) offset(width bytes, LE) }*n
///
/// `offset` is the seq's place in its partition (seq - g << shift), `width` = ceil(shift / 8) bytes (2 for
/// the default 2^16 blocks per partition). Pairs of one hash are never split between runs, so a probe
/// reads the one run whose `h0` is the largest at or below the hash. A row of `dedup_parts` (one pair per
/// row) took about 14 bytes per event; a pair here takes about 4 to 5 (a hash delta of 2 or 3 bytes, a
/// 2-byte offset).
///
/// A merge rewrites the runs of the partitions it adds to (the newest one or two): its cost is bounded
/// by a partition's size, never by the store's.
enum DedupRuns {
    static let createSQL = """
        CREATE TABLE IF NOT EXISTS dedup_runs(g INTEGER NOT NULL, h0 INTEGER NOT NULL, n INTEGER NOT NULL, body BLOB NOT NULL,
                                PRIMARY KEY(g, h0)) WITHOUT ROWID;
        """
    static let format: UInt8 = 1
    /// Pairs per run (a run of equal hashes may exceed it): rows of about 600 bytes, a dozen to a page.
    static let entriesPerRun = 128

    /// One merged pair: the short hash (`DedupIndex.short`) and the seq of the block holding the event.
    struct Pair: Comparable, Hashable {
        var h: Int64
        var seq: Int64
        static func < (a: Pair, b: Pair) -> Bool { a.h != b.h ? a.h < b.h : a.seq < b.seq }
    }

    /// Bytes of a seq's offset within its partition.
    static func width(shift: Int64) -> Int { max(1, Int((shift + 7) / 8)) }

    /// The body of a run of `pairs` (sorted, all of partition `g`).
    static func encode(_ pairs: ArraySlice<Pair>, g: Int64, shift: Int64) -> [UInt8] {
        let w = width(shift: shift), base = g << shift
        var out: [UInt8] = [format]
        out.reserveCapacity(1 + pairs.count * (w + 3))
        var prev = pairs.first?.h ?? 0
        for p in pairs {
            var d = UInt64(bitPattern: p.h &- prev)
            while d >= 0x80 {
                out.append(UInt8(truncatingIfNeeded: d) | 0x80)
                d >>= 7
            }
            out.append(UInt8(d))
            let off = UInt64(bitPattern: p.seq &- base)
            for i in 0..<w { out.append(UInt8(truncatingIfNeeded: off >> (8 * UInt64(i)))) }
            prev = p.h
        }
        return out
    }

    /// Calls `visit` with each pair of a run, in order, until it returns false. Throws on a body that
    /// is not a run of this format (a damaged row is reported, never read past its end).
    static func forEach(h0: Int64, body: [UInt8], g: Int64, shift: Int64, _ visit: (Pair) -> Bool) throws {
        let w = width(shift: shift), base = g << shift
        guard body.first == format else { throw StoreError.engine("dedup_runs(\(g), \(h0)): unknown run format \(body.first.map(String.init) ?? "none")") }
        var i = 1, h = h0
        let end = body.count
        while i < end {
            var d: UInt64 = 0, s: UInt64 = 0
            while true {
                guard i < end, s < 64 else { throw StoreError.engine("dedup_runs(\(g), \(h0)): a run ends inside a hash delta") }
                let b = body[i]
                i += 1
                d |= UInt64(b & 0x7F) << s
                if b < 0x80 { break }
                s += 7
            }
            guard i + w <= end else { throw StoreError.engine("dedup_runs(\(g), \(h0)): a run ends inside a block offset") }
            var off: UInt64 = 0
            for k in 0..<w { off |= UInt64(body[i + k]) << (8 * UInt64(k)) }
            i += w
            h = h &+ Int64(bitPattern: d)
            if !visit(Pair(h: h, seq: base &+ Int64(bitPattern: off))) { return }
        }
    }

    static func decode(h0: Int64, body: [UInt8], g: Int64, shift: Int64) throws -> [Pair] {
        var out: [Pair] = []
        try forEach(h0: h0, body: body, g: g, shift: shift) { out.append($0); return true }
        return out
    }

    /// Writes the pairs of partition `g` as runs, given in order (no run of `g` stored).
    struct RunWriter {
        let g: Int64
        let shift: Int64
        let ins: Statement
        private var run: [Pair] = []

        init(g: Int64, shift: Int64, _ c: Connection) throws {
            self.g = g
            self.shift = shift
            ins = try c.prepare("INSERT INTO dedup_runs(g, h0, n, body) VALUES(?, ?, ?, ?)")
            run.reserveCapacity(entriesPerRun + 8)
        }

        mutating func add(_ p: Pair) throws {
            // Never split one hash's pairs: a probe reads a single run.
            if run.count >= entriesPerRun, run.last!.h != p.h { try flush() }
            run.append(p)
        }

        mutating func flush() throws {
            guard let first = run.first else { return }
            ins.reset()
            try ins.bind(1, g).bind(2, first.h).bind(3, run.count).bindBlob(4, encode(run[...], g: g, shift: shift)).run()
            run.removeAll(keepingCapacity: true)
        }
    }

    /// Writes `pairs` (sorted, all of partition `g`, no run of `g` stored) as runs.
    static func write(_ pairs: [Pair], g: Int64, shift: Int64, _ c: Connection) throws {
        var w = try RunWriter(g: g, shift: shift, c)
        for p in pairs { try w.add(p) }
        try w.flush()
    }

    /// Every pair of partition `g`, sorted.
    static func read(g: Int64, shift: Int64, _ c: Connection) throws -> [Pair] {
        try storedRuns(g: g, c).flatMap { try decode(h0: $0.h0, body: $0.body, g: g, shift: shift) }
    }

    /// Adds `new` (sorted, all of partition `g`) to the partition's runs: one sorted merge that writes
    /// the partition's runs again. Pairs already stored are kept once. The stored runs are held as they
    /// are (about 4.5 bytes a pair) and decoded one at a time, so a merge into a partition of 2 million
    /// pairs holds about 9 MB of them, not 32 MB of pairs.
    static func merge(_ new: [Pair], g: Int64, shift: Int64, _ c: Connection) throws {
        let old = try storedRuns(g: g, c)
        try c.prepare("DELETE FROM dedup_runs WHERE g = ?").bind(1, g).run()
        var w = try RunWriter(g: g, shift: shift, c)
        var last: Pair?
        func emit(_ p: Pair) throws {
            if p != last { try w.add(p) }
            last = p
        }
        var j = 0
        for run in old {
            for p in try decode(h0: run.h0, body: run.body, g: g, shift: shift) {
                while j < new.count, new[j] < p {
                    try emit(new[j])
                    j += 1
                }
                try emit(p)
            }
        }
        while j < new.count {
            try emit(new[j])
            j += 1
        }
        try w.flush()
    }

    /// The stored runs of partition `g` as they are, in order (about 4.5 bytes a pair, not decoded).
    private static func storedRuns(g: Int64, _ c: Connection) throws -> [(h0: Int64, body: [UInt8])] {
        let s = try c.prepare("SELECT h0, body FROM dedup_runs WHERE g = ? ORDER BY h0")
        s.bind(1, g)
        defer { s.reset() }
        var out: [(h0: Int64, body: [UInt8])] = []
        while try s.step() { out.append((s.int64(0), s.blob(1))) }
        return out
    }

    /// Takes the pairs pointing at `seqs` out of their partitions' runs (retention). Like `merge`, the
    /// stored runs are held as they are and decoded one at a time.
    static func remove(seqs: Set<Int64>, shift: Int64, _ c: Connection) throws {
        for g in Set(seqs.map { $0 >> shift }) {
            let old = try storedRuns(g: g, c)
            var hit = false
            for run in old where !hit {
                try forEach(h0: run.h0, body: run.body, g: g, shift: shift) { p in
                    hit = seqs.contains(p.seq)
                    return !hit
                }
            }
            guard hit else { continue }
            try c.prepare("DELETE FROM dedup_runs WHERE g = ?").bind(1, g).run()
            var w = try RunWriter(g: g, shift: shift, c)
            for run in old {
                for p in try decode(h0: run.h0, body: run.body, g: g, shift: shift) where !seqs.contains(p.seq) { try w.add(p) }
            }
            try w.flush()
        }
    }

    /// The seqs of the blocks whose events may have short hash `h`, in every partition up to `lastG`.
    static func probe(_ h: Int64, through lastG: Int64, _ stmt: Statement, shift: Int64, into out: inout [Int64]) throws {
        for g in 0...max(0, lastG) {
            stmt.reset()
            stmt.bind(1, g).bind(2, h)
            if try stmt.step() {
                try forEach(h0: stmt.int64(0), body: stmt.blob(1), g: g, shift: shift) { p in
                    if p.h == h { out.append(p.seq) }
                    return p.h <= h
                }
            }
        }
        stmt.reset()
    }

    /// The statement `probe` steps: the run of partition ?1 that holds hash ?2 if any run does.
    static let probeSQL = "SELECT h0, body FROM dedup_runs WHERE g = ?1 AND h0 <= ?2 ORDER BY h0 DESC LIMIT 1"

    static func shift(_ c: Connection) throws -> Int64 {
        let m = try c.prepare("SELECT value FROM meta WHERE key = 'dedup_partition_shift'")
        defer { m.reset() }
        return try m.step() ? Int64(m.text(0)) ?? 16 : 16
    }

    /// Schema 15: the rows of `dedup_parts` (one pair per row) become runs, partition by partition.
    static func convertVersion14Parts(_ c: Connection) throws {
        guard try c.scalarInt("SELECT count(*) FROM sqlite_master WHERE name = 'dedup_parts'") > 0 else { return }
        let shift = try shift(c)
        // The partition from the seq (a row's `g` is seq >> shift as written; this keeps offsets in range regardless).
        let s = try c.prepare("SELECT seq >> \(shift), h, seq FROM dedup_parts ORDER BY 1, 2, 3")
        var g: Int64?
        var pairs: [Pair] = []
        while try s.step() {
            let k = s.int64(0)
            if k != g, let g { try write(pairs, g: g, shift: shift, c); pairs.removeAll(keepingCapacity: true) }
            g = k
            pairs.append(Pair(h: s.int64(1), seq: s.int64(2)))
        }
        s.reset()
        if let g { try write(pairs, g: g, shift: shift, c) }
        try c.exec("DROP TABLE dedup_parts")
    }
}
