import Foundation
import Synchronization
import Testing
import WaybillKPI
import WaybillModel
import WaybillStore
@testable import WaybillSQLite
import WaybillTestSupport

/// With `synchronous=FULL` (the default) the writer commits without waiting for the disk and
/// `WALSyncer` syncs the WAL on a thread of its own before the commits are answered: acknowledged
/// still means on disk, and the data is exactly that of a store that synced nothing.
@Suite struct WALSyncTests {
    @Test func appendsAreAnsweredAfterASyncAndStoreTheSameData() async throws {
        let appends = DeferredFactsTests.appends(seed: 21)
        let plain = temporaryDatabase(), synced = temporaryDatabase()
        var normal = SQLiteStore.Options()
        normal.synchronous = "NORMAL"
        try await DeferredFactsTests.write(appends, to: plain, options: normal)
        let s = try SQLiteStore(path: synced, rollup: KPIFactsRollup())
        let syncer = try #require(s.writer.syncer, "FULL syncs on the syncer's thread")
        // The writer's own commits no longer sync (1 = NORMAL).
        let level = Mutex(-1)
        try await s.writer.transaction { c in level.withLock { $0 = (try? c.scalarInt("PRAGMA synchronous")) ?? -2 } }
        #expect(level.withLock { $0 } == 1)
        let before = syncer.covered
        for a in appends { _ = try await s.append(a) }
        // One append at a time: one commit each, every one covered by a sync before it was answered.
        #expect(syncer.covered - before == appends.count)
        #expect(syncer.syncs >= 1 && syncer.syncs <= syncer.covered)
        s.close()
        #expect(try DeferredFactsTests.snapshot(synced) == DeferredFactsTests.snapshot(plain))
    }

    @Test func concurrentAppendsShareSyncsAndAreAllAnswered() async throws {
        let appends = DeferredFactsTests.appends(seed: 22)
        let path = temporaryDatabase()
        let s = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        let syncer = try #require(s.writer.syncer)
        // Each append twice, from 16 tasks at once: the second of each pair is all duplicates.
        let results = try await withThrowingTaskGroup(of: AppendResult.self) { g in
            for k in 0..<16 {
                g.addTask {
                    var sum = AppendResult()
                    for (i, a) in appends.enumerated() where i % 8 == k % 8 {
                        let r = try await s.append(a)
                        sum.accepted += r.accepted
                        sum.duplicates += r.duplicates
                    }
                    return sum
                }
            }
            var total = AppendResult()
            for try await r in g {
                total.accepted += r.accepted
                total.duplicates += r.duplicates
            }
            return total
        }
        let distinct = Set(appends.joined().map { "\($0.source)\u{0}\($0.id)" }).count
        #expect(results.accepted == distinct)
        #expect(results.accepted + results.duplicates == 2 * appends.joined().count)
        #expect(syncer.syncs <= syncer.covered && syncer.covered <= 2 * appends.count)
        s.close()
    }

    @Test func nothingIsAnsweredBeforeItsSync() async throws {
        let s = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
        defer { s.close() }
        let syncer = try #require(s.writer.syncer)
        let batch = DeferredFactsTests.appends(seed: 23)[0]
        let key = try #require(batch.first?.subject)
        syncer.setPaused(true)
        let answered = Mutex(false)
        let task = Task {
            let r = try await s.append(batch)
            answered.withLock { $0 = true }
            return r
        }
        // Wait until the append is committed (readers see it), then check it is still unanswered.
        var visible = false
        for _ in 0..<2000 where !visible {
            visible = try s.trace(key: key) != nil
            if !visible { try await Task.sleep(for: .milliseconds(5)) }
        }
        #expect(visible, "the append committed")
        #expect(answered.withLock { $0 } == false, "answered before the WAL was synced")
        syncer.setPaused(false)
        let r = try await task.value
        #expect(r.accepted == batch.count)
        #expect(answered.withLock { $0 })
    }

    @Test func aSyncThatFailsAnswersTheFault() async throws {
        let health = StorageHealthMonitor()
        let dir = temporaryDatabase()  // a path nothing was created at: its WAL is missing
        let syncer = WALSyncer(databasePath: dir, health: health)
        defer { syncer.stop() }
        let outcome: Result<Void, any Error> = await withCheckedContinuation { c in
            syncer.submit(WALSyncer.Waiter(done: { c.resume(returning: .success(())) }, failed: { c.resume(returning: .failure($0)) }))
        }
        guard case .failure(StoreError.fault(let f)) = outcome else {
            Issue.record("expected a storage fault, got \(outcome)")
            return
        }
        #expect(f.kind == .ioError)
        #expect(f.message.hasPrefix("the write-ahead log is missing"))
        #expect(health.health.isHealthy == false)
        // Not finding the WAL lost nothing that was written: once it is there, syncs answer again.
        FileManager.default.createFile(atPath: dir + "-wal", contents: Data([1]))
        let again: Result<Void, any Error> = await withCheckedContinuation { c in
            syncer.submit(WALSyncer.Waiter(done: { c.resume(returning: .success(())) }, failed: { c.resume(returning: .failure($0)) }))
        }
        guard case .success = again else { Issue.record("a missing WAL stayed final: \(again)"); return }
    }

    /// After a failed sync nothing is answered as stored until the store is opened again, even once syncs
    /// would succeed: a resend of data the kernel dropped must not be answered as a duplicate.
    @Test func aFailedSyncIsFinalUntilTheStoreIsReopened() async throws {
        let health = StorageHealthMonitor()
        let path = temporaryDatabase()
        let syncer = WALSyncer(databasePath: path, health: health)
        defer { syncer.stop() }
        func submit() async -> Result<Void, any Error> {
            await withCheckedContinuation { c in
                syncer.submit(WALSyncer.Waiter(done: { c.resume(returning: .success(())) }, failed: { c.resume(returning: .failure($0)) }))
            }
        }
        // A WAL whose fdatasync fails (EINVAL: the path leads to /dev/null).
        try FileManager.default.createSymbolicLink(atPath: path + "-wal", withDestinationPath: "/dev/null")
        guard case .failure(StoreError.fault(let first)) = await submit() else { Issue.record("a failed fdatasync was answered as synced"); return }
        #expect(first.message.contains("could not be synced"), "\(first.message)")
        // A real WAL now: a sync would succeed, but the earlier failure stands.
        try FileManager.default.removeItem(atPath: path + "-wal")
        FileManager.default.createFile(atPath: path + "-wal", contents: Data([1, 2, 3]))
        health.writeSucceeded()  // a later commit of the writer
        guard case .failure(StoreError.fault(let f)) = await submit() else { Issue.record("answered after a failed sync"); return }
        #expect(f.message.contains("restart"), "\(f.message)")
        #expect(health.health.isHealthy == false, "a later commit does not end a lost sync")
        // A fresh syncer (the store opened again) syncs.
        let fresh = WALSyncer(databasePath: path, health: StorageHealthMonitor())
        defer { fresh.stop() }
        let ok: Result<Void, any Error> = await withCheckedContinuation { c in
            fresh.submit(WALSyncer.Waiter(done: { c.resume(returning: .success(())) }, failed: { c.resume(returning: .failure($0)) }))
        }
        guard case .success = ok else { Issue.record("a fresh syncer failed: \(ok)"); return }
    }

    @Test func normalHasNoSyncer() throws {
        var o = SQLiteStore.Options()
        o.synchronous = "NORMAL"
        let s = try SQLiteStore(path: temporaryDatabase(), options: o)
        defer { s.close() }
        #expect(s.writer.syncer == nil)
    }
}
