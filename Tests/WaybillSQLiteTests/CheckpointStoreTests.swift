import Foundation
import Testing
import WaybillModel
import WaybillStore
import WaybillStoreConformance
@testable import WaybillSQLite

/// `WorkflowStore` on SQLite: the checkpoints the demo resumes from.
@Suite struct CheckpointStoreTests {
    @Test func checkpointsRoundTripReplaceAndSurviveReopening() async throws {
        let path = temporaryDatabase()
        let big = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        let before = currentMicros()
        do {
            let s = try SQLiteStore(path: path)
            #expect(try s.loadCheckpoint(name: "demo") == nil)
            try await s.saveCheckpoint(name: "demo", bytes: Array("first".utf8))
            #expect(try s.loadCheckpoint(name: "demo")?.bytes == Array("first".utf8))
            try await s.saveCheckpoint(name: "demo", bytes: big)
            try await s.saveCheckpoint(name: "other", bytes: [])
            s.close()
        }
        let after = currentMicros()
        let s = try SQLiteStore(path: path)
        defer { s.close() }
        let demo = try #require(try s.loadCheckpoint(name: "demo"))
        #expect(demo.bytes == big, "the newest checkpoint replaced the first one, all 3 MB of it")
        #expect(demo.savedAt >= before && demo.savedAt <= after)
        #expect(try s.loadCheckpoint(name: "other")?.bytes == [], "an empty checkpoint is stored, not mistaken for none")
        #expect(try s.loadCheckpoint(name: "nothing") == nil)
    }

    @Test func aCheckpointCommitsAfterTheWritesAcceptedBeforeIt() async throws {
        let s = try SQLiteStore(path: temporaryDatabase())
        defer { s.close() }
        let events = StoreConformance.workload(orders: 4)
        s.writer.setPaused(true)
        let append = Task { try await s.append(events) }
        while s.queuedEvents < events.count { try await Task.sleep(nanoseconds: 1_000_000) }
        let save = Task { () async throws -> Int in
            try await s.saveCheckpoint(name: "demo", bytes: [1, 2, 3])
            // When the checkpoint is committed, so are the events queued before it.
            return try s.stats().events
        }
        try await Task.sleep(nanoseconds: 20_000_000)
        #expect(try s.loadCheckpoint(name: "demo") == nil, "nothing is written while the writer is held")
        s.writer.setPaused(false)
        #expect(try await save.value == events.count)
        #expect(try await append.value.accepted == events.count)
        #expect(try s.loadCheckpoint(name: "demo")?.bytes == [1, 2, 3])
    }
}
