import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillStore
import WaybillStoreConformance
@testable import WaybillSQLite
import WaybillTestSupport

/// The `rollups` layout of schema 16: rows keyed by a coded dimension and group (`rollup_dims`) and cut
/// into parts of at most `RollupTable.partBytes`, so none spills into an overflow page. A row reads back
/// as the bytes written, whatever its size; a store of the text-keyed layout is converted at open with
/// every row's bytes unchanged.
@Suite struct RollupLayoutTests {
    @Test func rowsOfAnySizeReadBackAsWrittenAndShrinkWithoutLeftovers() throws {
        let path = temporaryDatabase()
        let s = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        s.close()
        let c = try Connection(path: path)
        var rng = SplitMix64(seed: 3)
        let sizes = [0, 1, RollupTable.partBytes - 1, RollupTable.partBytes, RollupTable.partBytes + 1, 3 * RollupTable.partBytes + 7, 9_000]
        try c.transaction {
            for (i, n) in sizes.enumerated() {
                let bytes = (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
                try RollupTable.write(c, d: 7, bucket: Int64(i), bytes: bytes)
                #expect(try RollupTable.read(c, d: 7, bucket: Int64(i)) == bytes, "\(n) bytes")
                #expect(try c.scalarInt("SELECT count(*) FROM rollups WHERE d = 7 AND bucket = \(i)") == max(1, (n + RollupTable.partBytes - 1) / RollupTable.partBytes))
                #expect(try c.scalarInt("SELECT max(length(acc)) FROM rollups WHERE d = 7 AND bucket = \(i)") <= RollupTable.partBytes)
            }
            // A row that shrinks keeps no part of its larger past; one that goes leaves nothing.
            try RollupTable.write(c, d: 7, bucket: 6, bytes: [1, 2, 3])
            #expect(try RollupTable.read(c, d: 7, bucket: 6) == [1, 2, 3])
            #expect(try c.scalarInt("SELECT count(*) FROM rollups WHERE d = 7 AND bucket = 6") == 1)
            try RollupTable.write(c, d: 7, bucket: 5, bytes: nil)
            #expect(try RollupTable.read(c, d: 7, bucket: 5) == nil)
            #expect(try RollupTable.read(c, d: 7, bucket: 0) == [], "an empty row is a row, not none")
            #expect(try RollupTable.read(c, d: 8, bucket: 1) == nil, "another code's rows are apart")
            try c.exec("DELETE FROM rollups WHERE d = 7")
        }
    }

    /// Every dimension's rows through the store's reader, and the rows as stored.
    static func rows(_ path: String) throws -> [String] {
        let s = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        defer { s.close() }
        let dims = try s.readers.with { c in
            let q = try c.prepare("SELECT DISTINCT dim FROM rollup_dims ORDER BY dim")
            defer { q.reset() }
            var out: [String] = []
            while try q.step() { out.append(q.text(0)) }
            return out
        }
        var out: [String] = []
        for d in dims {
            let rows = try s.rollupRows(dimension: d, in: [Int64.min..<Int64.max]).sorted { $0.key < $1.key }
            out += rows.map { "\($0.key.dimension) \($0.key.group ?? "-") \($0.key.bucketStart) \($0.bytes.count) \($0.bytes.hashValue)" }
        }
        return out + (try DeferredFactsTests.snapshot(path))
    }

    @Test func aStoreOfTheTextKeyedLayoutIsConvertedAtOpenWithTheSameRows() async throws {
        let path = temporaryDatabase()
        try await DeferredFactsTests.write(DeferredFactsTests.appends(seed: 5), to: path, options: SQLiteStore.Options())
        let want = try Self.rows(path)
        #expect(want.count > 100)
        // Back to schema 15's table: one row per dimension, bucket and group, the bytes whole.
        let c = try Connection(path: path)
        try c.transaction {
            try c.exec("CREATE TABLE rollups_text(dim TEXT NOT NULL, bucket INTEGER NOT NULL, gk TEXT NOT NULL, acc BLOB NOT NULL, PRIMARY KEY(dim, bucket, gk)) WITHOUT ROWID")
            let keys = try c.prepare("SELECT DISTINCT dim, gk, d, bucket FROM rollups JOIN rollup_dims ON code = d")
            var all: [(String, String, Int64, Int64)] = []
            while try keys.step() { all.append((keys.text(0), keys.text(1), keys.int64(2), keys.int64(3))) }
            keys.reset()
            let ins = try c.prepare("INSERT INTO rollups_text(dim, bucket, gk, acc) VALUES(?, ?, ?, ?)")
            for (dim, gk, d, bucket) in all {
                ins.reset()
                try ins.bind(1, dim).bind(2, bucket).bind(3, gk).bindBlob(4, try #require(try RollupTable.read(c, d: d, bucket: bucket))).run()
            }
            try c.exec("""
                DROP TABLE rollups; DROP TABLE rollup_dims; ALTER TABLE rollups_text RENAME TO rollups;
                UPDATE meta SET value = '15' WHERE key = 'schema_version'
                """)
        }
        #expect(try c.scalarInt("SELECT count(*) FROM pragma_table_info('rollups') WHERE name = 'dim'") == 1)
        let got = try Self.rows(path)
        #expect(try c.scalarInt("SELECT value FROM meta WHERE key = 'schema_version'") == Schema.migrations.count)
        #expect(try c.scalarInt("SELECT count(*) FROM pragma_table_info('rollups') WHERE name = 'd'") == 1)
        #expect(try c.scalarInt("SELECT count(*) FROM sqlite_schema WHERE name = 'rollups_v15'") == 0)
        #expect(got == want, "\(zip(got, want).first { $0 != $1 }.map { "\n got \($0.0)\nwant \($0.1)" } ?? "counts \(got.count) \(want.count)")")
        // Opened again: nothing left to convert, the same rows.
        #expect(try Self.rows(path) == want)
    }

    /// Drill rows (schema 19) hold their groups as codes in `rollup_dims`, NULL for the null group, and read
    /// back as the projection's rows of the stored facts, selected by any group of any dimension.
    @Test func drillRowsHoldGroupCodesAndReadBackByGroup() async throws {
        let path = temporaryDatabase()
        try await DeferredFactsTests.write(DeferredFactsTests.appends(seed: 4), to: path, options: SQLiteStore.Options())
        let c = try Connection(path: path)
        #expect(try c.scalarInt("SELECT count(*) FROM kpi_drill") > 100)
        #expect(try c.scalarInt("SELECT count(*) FROM kpi_drill WHERE typeof(g1) = 'text' OR typeof(g2) = 'text' OR typeof(g3) = 'text'") == 0)
        #expect(try c.scalarInt("SELECT count(*) FROM kpi_drill WHERE g1 IS NOT NULL AND g2 IS NOT NULL AND g3 IS NOT NULL") > 0)
        let s = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        defer { s.close() }
        var want = Set<DrillRow>()
        for k in Set(StoreConformance.workload(orders: 150).map(\.subject)) {
            if let f = try s.facts(orderID: k) { want.formUnion(KPIFactsRollup().drillRows(f)) }
        }
        let all = Micros.min..<Micros.max
        var got = Set<DrillRow>()
        for fam in 1...4 { got.formUnion(try s.drillTop(DrillSelection(family: fam, range: all), atLeast: nil, limit: 100_000)) }
        #expect(got == want && !want.isEmpty)
        for d in 0..<3 {
            let groups: [String?] = Array(Set(want.map { $0.groups[d] })) + ["no such group"]
            for g in groups {
                for fam in 1...4 {
                    let sel = DrillSelection(family: fam, range: all, dimension: d, group: g)
                    let rows = want.filter { $0.family == fam && $0.groups[d] == g }
                    #expect(try s.drillCount(sel) == rows.count)
                    #expect(Set(try s.drillTop(sel, atLeast: nil, limit: 100_000)) == rows)
                }
            }
        }
    }
}

/// Link groups of schema 17 (`KeyLinks`): one `key_groups` row per group and a `keys` row per member that
/// is not the root, no index by root. A store of the earlier layout (every member in `keys`, indexed by
/// root) is converted at open with the same traces from every key.
@Suite struct KeyGroupsLayoutTests {
    /// Every key's trace (correlation id and members), and the stored count of linked keys.
    static func traces(_ path: String, keys: [String]) throws -> [String] {
        let s = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        defer { s.close() }
        var out = ["linked \(try s.stats().linkedKeys)"]
        for k in keys {
            out.append(try s.trace(key: k).map { "\(k): \($0.correlationID) \($0.keys) \($0.events.count)" } ?? "\(k): nil")
        }
        return out
    }

    @Test func aStoreOfKeysIndexedByRootIsConvertedAtOpenWithTheSameTraces() async throws {
        let path = temporaryDatabase()
        let appends = DeferredFactsTests.appends(seed: 9)
        try await DeferredFactsTests.write(appends, to: path, options: SQLiteStore.Options())
        let c = try Connection(path: path)
        // Every member and root, as the earlier layout held them.
        var groups: [(root: String, members: [String])] = []
        let g = try c.prepare("SELECT root, members FROM key_groups ORDER BY root")
        var listsWithoutRoot = 0
        while try g.step() {
            let root = g.text(0), members = try KeyLinks.decodeMembers(g.blob(1), root: root)
            groups.append((root, members))
            // The stored list leaves out the root (the row's key): every member but it, sorted.
            if g.blob(1) == KeyLinks.encodeMembers(members, root: root) && members.count > 1 { listsWithoutRoot += 1 }
        }
        g.reset()
        #expect(listsWithoutRoot == groups.count)
        #expect(groups.count > 20 && groups.contains { $0.members.count >= 3 }, "the workload links orders to shipments and invoices")
        #expect(groups.allSatisfy { $0.members.contains($0.root) && $0.members == $0.members.sorted() })
        #expect(try c.scalarInt("SELECT count(*) FROM keys WHERE key = root") == 0, "a root has no row of its own")
        let keys = groups.flatMap(\.members) + ["no-such-key"]
        let want = try Self.traces(path, keys: keys)
        #expect(want.contains { $0.hasPrefix("invoice:") || $0.hasPrefix("shipment:") })
        try c.transaction {
            try c.exec("DELETE FROM keys")
            let put = try c.prepare("INSERT INTO keys(key, root) VALUES(?, ?)")
            for (root, members) in groups {
                for m in members {
                    put.reset()
                    try put.bind(1, m).bind(2, root).run()
                }
            }
            try c.exec("DROP TABLE key_groups; CREATE INDEX keys_root ON keys(root); UPDATE meta SET value = '16' WHERE key = 'schema_version'")
        }
        #expect(try Self.traces(path, keys: keys) == want)
        #expect(try c.scalarInt("SELECT count(*) FROM sqlite_schema WHERE name = 'keys_root'") == 0)
        #expect(try c.scalarInt("SELECT count(*) FROM key_groups") == groups.count)
        // The converted lists hold their roots (the earlier form): read the same, as the traces above show.
        // Later links still join the converted groups: the same events appended again change nothing.
        try await DeferredFactsTests.write(appends, to: path, options: SQLiteStore.Options())
        #expect(try Self.traces(path, keys: keys) == want)
    }
}
