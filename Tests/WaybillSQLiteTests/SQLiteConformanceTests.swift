import Foundation
import Testing
import WaybillModel
import WaybillStore
import WaybillStoreConformance
@testable import WaybillSQLite
import WaybillTestSupport

/// Every check of the conformance suite against SQLite: each storage starts as a new database file,
/// reopened at that path.
@Suite struct SQLiteConformanceTests {
    @Test(arguments: StoreConformance.checks)
    func conformance(_ check: StoreConformance.Check) async throws {
        try await check.run {
            let path = temporaryDatabase()
            return StoreConformance.Storage(open: { rollup in try SQLiteStore(path: path, rollup: rollup) },
                                            holdWrites: { store, held in (store as! SQLiteStore).writer.setPaused(held) })
        }
    }
}

@Suite struct SQLiteEngineTests {
    @Test func dedupHashCollisionsAreResolvedByComparingTheStoredPair() throws {
        // Different pairs, same separator-joined text: the hash input keeps them apart.
        #expect(DedupIndex.hash(source: "ab", id: "c") != DedupIndex.hash(source: "a", id: "bc"))
    }

    @Test func fullQueueRefusesInsteadOfGrowing() async throws {
        var o = SQLiteStore.Options()
        o.maxQueuedEvents = 10
        let s = try SQLiteStore(path: temporaryDatabase(), options: o)
        defer { s.close() }
        let events = StoreConformance.workload(orders: 4)
        s.writer.setPaused(true)
        let first = Task { try await s.append(Array(events[0..<8])) }
        while s.queuedEvents < 8 { try await Task.sleep(nanoseconds: 1_000_000) }
        await #expect(throws: StoreError.self) { try await s.append(Array(events[8..<16])) }
        s.writer.setPaused(false)
        #expect(try await first.value.accepted == 8)
        #expect(try s.stats().events == 8)
        // Once drained, the same request goes through.
        #expect(try await s.append(Array(events[8..<16])).accepted == 8)
    }

    @Test func duplicatesAreFoundAcrossDedupMergesAndRestarts() async throws {
        var o = SQLiteStore.Options()
        o.recentDedupLimit = 7
        let path = temporaryDatabase()
        let events = StoreConformance.workload(orders: 10)
        do {
            let s = try SQLiteStore(path: path, options: o)
            for i in stride(from: 0, to: events.count, by: 5) {
                let chunk = Array(events[i..<min(i + 5, events.count)])
                #expect(try await s.append(chunk + [chunk[0]]) == AppendResult(accepted: chunk.count, duplicates: 1))
            }
            #expect(try await s.append(events) == AppendResult(accepted: 0, duplicates: events.count))
            s.close()
        }
        // Some hashes are merged into the index, the newest only in memory: after a restart both are found.
        let s = try SQLiteStore(path: path, options: o)
        defer { s.close() }
        #expect(try await s.append(events.reversed()) == AppendResult(accepted: 0, duplicates: events.count))
        #expect(try s.stats().events == events.count)
    }

    @Test func badCursorIsAQueryError() throws {
        let s = try SQLiteStore(path: temporaryDatabase())
        defer { s.close() }
        #expect(throws: QueryError.self) { try s.searchOrders(OrderQuery(now: 0, cursor: "%%%")) }
    }
}
