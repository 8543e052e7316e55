import Foundation
import WaybillModel
import WaybillStore

/// `WorkflowStore`: the checkpoints the demo's services resume from.
extension StoreConformance {
    static let checkpointChecks: [Check] = [
        Check(name: "checkpoints: none until saved, then the last bytes saved under the name, also after reopening", body: checkpointsRoundTrip),
        Check(name: "a checkpoint commits after every write accepted before it", body: checkpointAfterAcceptedWrites),
    ]

    static func checkpointsRoundTrip(_ make: Factory) async throws {
        let storage = try make()
        let big = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 9) }
        let before = currentMicros()
        do {
            let store = try storage.open()
            defer { store.close() }
            try expect(try store.loadCheckpoint(name: "demo") == nil, "a name never saved has no checkpoint")
            try await store.saveCheckpoint(name: "demo", bytes: Array("first".utf8))
            try expect(try store.loadCheckpoint(name: "demo")?.bytes == Array("first".utf8), "the saved bytes")
            try await store.saveCheckpoint(name: "demo", bytes: big)
            try await store.saveCheckpoint(name: "other", bytes: [])
        }
        let after = currentMicros()
        let store = try storage.open()
        defer { store.close() }
        let demo = try store.loadCheckpoint(name: "demo")
        try expect(demo?.bytes == big, "after reopening: the newest checkpoint replaced the first, all 3 MB of it")
        try expect(demo.map { $0.savedAt >= before && $0.savedAt <= after } == true, "savedAt is the wall-clock time of the commit")
        try expect(try store.loadCheckpoint(name: "other")?.bytes == [], "an empty checkpoint is stored, not mistaken for none")
        try expect(try store.loadCheckpoint(name: "nothing") == nil, "a name never saved has no checkpoint after reopening")
    }

    static func checkpointAfterAcceptedWrites(_ make: Factory) async throws {
        let storage = try make()
        let store = try storage.open()
        defer { store.close() }
        let events = workload(orders: 4)
        storage.hold(store, true)
        defer { storage.hold(store, false) }
        let append = Task { try await store.append(events) }
        try await waitFor("the append to be accepted") { try store.stats().queuedEvents == events.count }
        let save = Task { () async throws -> Int in
            try await store.saveCheckpoint(name: "demo", bytes: [1, 2, 3])
            return try store.stats().events
        }
        try await Task.sleep(nanoseconds: 20_000_000)
        storage.hold(store, false)
        try expect(try await save.value == events.count, "when the checkpoint is committed, so are the events accepted before it")
        try expect(try await append.value.accepted == events.count, "the held append")
        try expect(try store.loadCheckpoint(name: "demo")?.bytes == [1, 2, 3], "the checkpoint")
    }

    /// Polls `condition` every millisecond for up to ten seconds.
    static func waitFor(_ what: String, _ condition: () throws -> Bool) async throws {
        for _ in 0..<10_000 {
            if try condition() { return }
            try await Task.sleep(nanoseconds: 1_000_000)
        }
        throw Failure(description: "gave up waiting for \(what)")
    }
}
