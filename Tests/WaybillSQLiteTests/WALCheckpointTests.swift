import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillStore
@testable import WaybillSQLite
import WaybillTestSupport

/// WAL checkpoints run on a thread of their own (`WALCheckpointer`), concurrently with the writer's
/// appends and the readers. With a tiny threshold they run after nearly every commit: the store must
/// end with exactly the facts, traces, search page and rollup bytes of a store whose checkpoints
/// hardly ran, and stay so once closed and reopened (the WAL folded into the database file).
@Suite struct WALCheckpointTests {
    @Test func backgroundCheckpointsChangeNoData() async throws {
        for seed: UInt64 in [11, 12] {
            let appends = DeferredFactsTests.appends(seed: seed)
            let plain = temporaryDatabase(), busy = temporaryDatabase()
            try await DeferredFactsTests.write(appends, to: plain, options: SQLiteStore.Options())
            var o = SQLiteStore.Options()
            o.walCheckpointPages = 4
            let s = try SQLiteStore(path: busy, options: o, rollup: KPIFactsRollup())
            // Readers between the appends: a PASSIVE checkpoint stops short of frames a reader may still need.
            for (i, a) in appends.enumerated() {
                _ = try await s.append(a)
                if i % 7 == 0, let k = a.first?.subject { _ = try s.trace(key: k) }
            }
            let checkpointer = try #require(s.checkpointer)
            checkpointer.waitIdle()
            #expect(checkpointer.background > 0, "seed \(seed): the thread ran checkpoints")
            let live = try DeferredFactsTests.snapshot(busy)
            s.close()
            let want = try DeferredFactsTests.snapshot(plain)
            let reopened = try DeferredFactsTests.snapshot(busy)
            #expect(live == want, "seed \(seed): \(zip(live, want).first { $0 != $1 }.map { "\n got \($0.0)\nwant \($0.1)" } ?? "")")
            #expect(reopened == want)
        }
    }
}
