import Foundation
import Testing
@testable import WaybillSQLite
import WaybillModel
import WaybillStore
import WaybillStoreConformance
import WaybillTestSupport

/// `dedup_runs` (schema version 15): the merged idempotency hashes as packed runs per partition.
@Suite struct DedupRunsTests {
    /// Every stored pair, by partition and hash.
    static func pairs(_ c: Connection, shift: Int64 = 16) throws -> [DedupRuns.Pair] {
        let runs = try c.prepare("SELECT g, h0, n, body FROM dedup_runs ORDER BY g, h0")
        defer { runs.reset() }
        var out: [DedupRuns.Pair] = []
        while try runs.step() {
            let run = try DedupRuns.decode(h0: runs.int64(1), body: runs.blob(3), g: runs.int64(0), shift: shift)
            #expect(run.count == runs.int(2))
            #expect(run.first?.h == runs.int64(1))
            out += run
        }
        return out
    }

    /// Pairs written as runs read back the same, and a probe finds exactly the seqs of a hash, for
    /// offsets of one, two and three bytes and for a hash with more pairs than a run holds.
    @Test(arguments: [Int64(1), 16, 20])
    func runsRoundTripAndAProbeFindsEveryPairOfAHash(shift: Int64) throws {
        let c = try Connection(path: temporaryDatabase())
        try c.exec(DedupRuns.createSQL)
        var rng = SystemRandomNumberGenerator()
        var byG: [Int64: [DedupRuns.Pair]] = [:]
        let span = Int64(1) << shift
        for g in Int64(0)..<3 {
            var ps: [DedupRuns.Pair] = (0..<700).map { _ in
                DedupRuns.Pair(h: Int64.random(in: -2_147_483_648...2_147_483_647, using: &rng),
                               seq: g * span + Int64.random(in: 0..<span, using: &rng))
            }
            // Extremes of the hash range and the partition, and one hash with 300 pairs (more than a run).
            ps += [DedupRuns.Pair(h: -2_147_483_648, seq: g * span), DedupRuns.Pair(h: 2_147_483_647, seq: g * span + span - 1)]
            ps += (0..<300).map { DedupRuns.Pair(h: 12345, seq: g * span + Int64($0) % span) }
            byG[g] = Array(Set(ps)).sorted()
        }
        try c.transaction { for (g, ps) in byG { try DedupRuns.write(ps, g: g, shift: shift, c) } }
        #expect(try Self.pairs(c, shift: shift) == byG.keys.sorted().flatMap { byG[$0]! })
        #expect(try c.scalarInt("SELECT max(n) FROM dedup_runs") >= Set(byG[0]!.filter { $0.h == 12345 }).count)
        let stmt = try c.prepare(DedupRuns.probeSQL)
        let all = byG.values.flatMap { $0 }
        var expected: [Int64: Set<Int64>] = [:]
        for p in all { expected[p.h, default: []].insert(p.seq) }
        for h in Array(expected.keys.prefix(400)) + [12345, -2_147_483_648, 2_147_483_647] {
            var found: [Int64] = []
            try DedupRuns.probe(h, through: 2, stmt, shift: shift, into: &found)
            #expect(Set(found) == expected[h], "hash \(h)")
            #expect(found.count == expected[h]?.count)
        }
        for h in (0..<200).map({ _ in Int64.random(in: -2_147_483_648...2_147_483_647, using: &rng) }) where expected[h] == nil {
            var found: [Int64] = []
            try DedupRuns.probe(h, through: 2, stmt, shift: shift, into: &found)
            #expect(found.isEmpty)
        }
        // A merge adds pairs once, keeps the old ones and leaves the other partitions as they were.
        let other = try c.prepare("SELECT h0, body FROM dedup_runs WHERE g = 0 ORDER BY h0")
        var before: [[UInt8]] = []
        while try other.step() { before.append(other.blob(1)) }
        other.reset()
        let more = (0..<500).map { _ in DedupRuns.Pair(h: Int64.random(in: -2_147_483_648...2_147_483_647, using: &rng),
                                                          seq: 2 * span + Int64.random(in: 0..<span, using: &rng)) }
        let new = Array(Set(more + byG[2]!.prefix(50))).sorted()
        try c.transaction { try DedupRuns.merge(new, g: 2, shift: shift, c) }
        #expect(try DedupRuns.read(g: 2, shift: shift, c) == Array(Set(byG[2]! + new)).sorted())
        var after: [[UInt8]] = []
        while try other.step() { after.append(other.blob(1)) }
        other.reset()
        #expect(after == before)
    }

    /// A damaged run is reported as an error, never read past its end.
    @Test func aDamagedRunThrows() throws {
        let ps = (0..<20).map { DedupRuns.Pair(h: Int64($0) * 1_000_003, seq: Int64($0)) }
        let body = DedupRuns.encode(ps[...], g: 0, shift: 16)
        #expect(try DedupRuns.decode(h0: 0, body: body, g: 0, shift: 16) == ps)
        for cut in [body.count - 1, body.count - 3, 2] {
            #expect(throws: StoreError.self) { try DedupRuns.decode(h0: 0, body: Array(body.prefix(cut)), g: 0, shift: 16) }
        }
        #expect(throws: StoreError.self) { try DedupRuns.decode(h0: 0, body: [9] + body.dropFirst(), g: 0, shift: 16) }
        #expect(throws: StoreError.self) { try DedupRuns.decode(h0: 0, body: [], g: 0, shift: 16) }
        #expect(throws: StoreError.self) { try DedupRuns.decode(h0: 0, body: [1] + [UInt8](repeating: 0xFF, count: 12), g: 0, shift: 16) }
    }

    /// A store of schema version 14 (`dedup_parts`, a row per pair) is converted to runs when it opens:
    /// the same pairs, every resend still refused, new events taken and merged.
    @Test func aVersion14StoreIsConvertedWhenOpened() async throws {
        let path = temporaryDatabase()
        var o = SQLiteStore.Options()
        o.recentDedupLimit = 11
        let events = StoreConformance.workload(orders: 30)
        do {
            let s = try SQLiteStore(path: path, options: o)
            for i in stride(from: 0, to: events.count, by: 7) { _ = try await s.append(Array(events[i..<min(i + 7, events.count)])) }
            s.close()
        }
        let c = try Connection(path: path)
        let stored = try Self.pairs(c)
        #expect(stored.count > events.count / 2)
        // Back to version 14: one row per pair.
        try c.exec("""
            DROP TABLE dedup_runs;
            CREATE TABLE dedup_parts(g INTEGER NOT NULL, h INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(g, h, seq)) WITHOUT ROWID;
            UPDATE meta SET value = '14' WHERE key = 'schema_version';
            """)
        let ins = try c.prepare("INSERT INTO dedup_parts(g, h, seq) VALUES(?, ?, ?)")
        for p in stored {
            ins.reset()
            try ins.bind(1, p.seq >> 16).bind(2, p.h).bind(3, p.seq).run()
        }
        let s = try SQLiteStore(path: path, options: o)
        defer { s.close() }
        #expect(try c.scalarInt("SELECT value FROM meta WHERE key = 'schema_version'") == Schema.migrations.count)
        #expect(try c.scalarInt("SELECT count(*) FROM sqlite_master WHERE name = 'dedup_parts'") == 0)
        #expect(try Self.pairs(c) == stored)
        #expect(try await s.append(events.shuffled()) == AppendResult(accepted: 0, duplicates: events.count))
        let more = (0..<40).map { EventBlockStorageTests.oddEvent($0, subject: "ORD-\(100 + $0 % 9)", minutes: $0) }
        #expect(try await s.append(more + more.prefix(10)) == AppendResult(accepted: 40, duplicates: 10))
        #expect(try await s.append(more) == AppendResult(accepted: 0, duplicates: 40))
        #expect(try s.stats().events == events.count + 40)
        #expect(try Self.pairs(c).count > stored.count)
    }

    /// Retention takes the hashes of the blocks it deletes out of the runs (after merges, so they are in
    /// runs and not only in memory): the deleted events are new again, the kept ones still duplicates,
    /// also after a restart.
    @Test func retentionTakesTheDeletedBlocksOutOfTheRuns() async throws {
        let path = temporaryDatabase()
        var o = SQLiteStore.Options()
        o.recentDedupLimit = 5
        // One subject per event, an hour apart: a block per event.
        let events = (0..<60).map { EventBlockStorageTests.oddEvent($0, subject: "ORD-\($0)", minutes: $0 * 60) }
        do {
            let s = try SQLiteStore(path: path, options: o)
            for e in events { _ = try await s.append([e]) }
            let c = try Connection(path: path)
            #expect(try Self.pairs(c).count >= 55)
            #expect(try await s.deleteEvents(before: events[30].time) == 30)
            let seqs = Set(try Self.pairs(c).map(\.seq))
            let live = try c.scalarInt("SELECT count(*) FROM event_blocks WHERE seq IN (\(seqs.map(String.init).joined(separator: ",")))")
            #expect(live == seqs.count, "every pair left points at a stored block")
            s.close()
        }
        let s = try SQLiteStore(path: path, options: o)
        defer { s.close() }
        #expect(try await s.append(events.reversed()) == AppendResult(accepted: 30, duplicates: 30))
        #expect(try s.stats().events == 60)
    }
}
