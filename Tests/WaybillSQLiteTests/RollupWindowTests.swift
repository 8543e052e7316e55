import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillStore
import WaybillStoreConformance
@testable import WaybillSQLite
import WaybillTestSupport

/// A server's rollup window (`RollupWindow`, `SQLiteStore.Options.rollupWindowCommits`): rollup and drill
/// rows written once per window of commits must read, at any moment, as the per-commit writes leave them;
/// a store left mid-window (kill -9) must fold its journal when opened; a process that opens the store
/// while the server runs must leave the journal to it.
@Suite struct RollupWindowTests {
    /// A window of `commits` commits or `orders` orders; `idle`: seconds without writes before the writer folds.
    static func windowed(commits: Int = 6, orders: Int = 40, idle: Double = 3600) -> SQLiteStore.Options {
        var o = SQLiteStore.Options()
        o.rollupWindowCommits = commits
        o.rollupWindowOrders = orders
        o.rollupIdleFoldSeconds = idle
        return o
    }

    /// KPI reports (total, by warehouse and channel, hourly series) and the drill-down behind them, read
    /// through the store as the server reads them.
    static func reports(_ s: SQLiteStore) throws -> [KPIDocument] {
        let from = RFC3339.parse("2026-11-19T00:00:00Z")!, to = RFC3339.parse("2026-11-30T00:00:00Z")!
        let kpis = KPIService(reader: s)
        return try [
            kpis.document(KPIQuery(from: from, to: to)),
            kpis.document(KPIQuery(from: from, to: to, by: .warehouse)),
            kpis.document(KPIQuery(from: from, to: to, by: .channel, step: 3_600_000_000)),
        ]
    }

    static func pendingJournal(_ path: String) throws -> Int {
        let c = try Connection(path: path)
        return try c.scalarInt("SELECT count(*) FROM rollup_pending")
    }

    /// Interleaved arrival with resends, cut into appends: after every few appends the windowed store's
    /// reports equal those of a store that writes its rollups in every commit, and at the end the rollup
    /// rows are the same bytes.
    @Test func readsSeeEveryCommittedEventAndTheRowsEndTheSame() async throws {
        for seed: UInt64 in [21, 22] {
            let appends = DeferredFactsTests.appends(seed: seed)
            let directPath = temporaryDatabase(), windowedPath = temporaryDatabase()
            let direct = try SQLiteStore(path: directPath, rollup: KPIFactsRollup())
            let windowed = try SQLiteStore(path: windowedPath, options: Self.windowed(), rollup: KPIFactsRollup())
            var rng = SplitMix64(seed: seed)
            var compared = 0, pendingAtRead = 0
            for a in appends {
                _ = try await direct.append(a)
                _ = try await windowed.append(a)
                guard rng.next() % 2 == 0 else { continue }
                if windowed.writeSession.rollupsPending { pendingAtRead += 1 }
                let want = try Self.reports(direct), got = try Self.reports(windowed)
                #expect(got == want, "seed \(seed), after \(compared) reads")
                compared += 1
            }
            direct.close()
            windowed.close()
            #expect(compared >= 3)
            #expect(pendingAtRead > 0, "no read found the window open: the fold before a read was not exercised")
            #expect(try Self.pendingJournal(windowedPath) == 0, "the close folds the window")
            #expect(try DeferredFactsTests.snapshot(windowedPath) == DeferredFactsTests.snapshot(directPath), "seed \(seed)")
        }
    }

    /// A copy of the database files taken mid-window (what kill -9 leaves): the journal holds the window's
    /// orders; opened again, the store folds it and ends as the per-commit store does.
    @Test func aStoreLeftMidWindowFoldsItsJournalWhenOpened() async throws {
        let appends = DeferredFactsTests.appends(seed: 23)
        let direct = temporaryDatabase()
        try await DeferredFactsTests.write(appends, to: direct, options: SQLiteStore.Options())
        let want = try DeferredFactsTests.snapshot(direct)

        let live = temporaryDatabase(), crashed = temporaryDatabase()
        // Large bounds and no idle fold: nothing folds before the copy.
        let s = try SQLiteStore(path: live, options: Self.windowed(commits: 1_000_000, orders: 1_000_000), rollup: KPIFactsRollup())
        let cut = appends.count * 2 / 3
        for a in appends[..<cut] { _ = try await s.append(a) }
        let fm = FileManager.default
        for suffix in ["", "-wal"] where fm.fileExists(atPath: live + suffix) { try fm.copyItem(atPath: live + suffix, toPath: crashed + suffix) }
        s.close()
        #expect(try Self.pendingJournal(crashed) > 0, "the copy holds no journal: the window folded before it")
        // Opened as a server opens it (with a window), then the rest appended.
        try await DeferredFactsTests.write(Array(appends[cut...]), to: crashed, options: Self.windowed())
        #expect(try DeferredFactsTests.snapshot(crashed) == want)
    }

    /// A store opened by another process while a server keeps a window open (`waybill kpi --db` beside
    /// `waybill serve`) must not fold the server's journal: the server folds the same orders later.
    @Test func anotherOpenerLeavesTheServersJournalToIt() async throws {
        let appends = DeferredFactsTests.appends(seed: 24)
        let direct = temporaryDatabase()
        try await DeferredFactsTests.write(appends, to: direct, options: SQLiteStore.Options())
        let want = try DeferredFactsTests.snapshot(direct)

        let path = temporaryDatabase()
        let server = try SQLiteStore(path: path, options: Self.windowed(commits: 1_000_000, orders: 1_000_000), rollup: KPIFactsRollup())
        let cut = appends.count / 2
        for a in appends[..<cut] { _ = try await server.append(a) }
        #expect(try Self.pendingJournal(path) > 0)
        // Another process's reader, and a second server: neither keeps a window nor folds this one.
        let reader = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        #expect(reader.writeSession.window == nil)
        reader.close()
        let second = try SQLiteStore(path: path, options: Self.windowed(), rollup: KPIFactsRollup())
        #expect(second.writeSession.window == nil)
        second.close()
        #expect(try Self.pendingJournal(path) > 0, "another opener folded the server's journal")
        // A bulk load is refused while the server runs.
        #expect(throws: StoreError.self) { _ = try SQLiteStore(path: path, options: DeferredFactsTests.deferred(), rollup: KPIFactsRollup()) }
        for a in appends[cut...] { _ = try await server.append(a) }
        server.close()
        #expect(try DeferredFactsTests.snapshot(path) == want)
    }

    /// Retention with a window open takes out the rollups of every committed order, as per-commit writes do.
    @Test func retentionFoldsTheWindowFirst() async throws {
        let appends = DeferredFactsTests.appends(seed: 25)
        let cutoff = RFC3339.parse("2026-11-20T12:00:00Z")!
        var snapshots: [[String]] = []
        for options in [SQLiteStore.Options(), Self.windowed(commits: 1_000_000, orders: 1_000_000)] {
            let path = temporaryDatabase()
            let s = try SQLiteStore(path: path, options: options, rollup: KPIFactsRollup())
            for a in appends { _ = try await s.append(a) }
            _ = try await s.deleteEvents(before: cutoff)
            let reports = try Self.reports(s)
            s.close()
            snapshots.append(try DeferredFactsTests.snapshot(path) + reports.map { "\($0)" })
        }
        #expect(snapshots[0] == snapshots[1])
    }
}
