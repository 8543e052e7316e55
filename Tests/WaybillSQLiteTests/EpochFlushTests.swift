import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillStore
import WaybillStoreConformance
@testable import WaybillSQLite
import WaybillTestSupport

/// An epoch's flush computes the orders' facts on a second thread, a chunk (`OrdersTable.flushChunk`)
/// ahead of the writer, which writes them in key order. Over several chunks the rows, their order, the
/// rollups and the drill rows must be what one thread wrote.
@Suite struct EpochFlushTests {
    /// 1,300 orders (three chunks and a part): their events shuffled, a seventh resent, in appends of 1 to 200.
    static let orders = 1_300
    static func appends() -> [[CloudEvent]] {
        var rng = SplitMix64(seed: 40)
        var stream = StoreConformance.workload(orders: orders)
        for i in stride(from: stream.count - 1, through: 1, by: -1) { stream.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
        for e in stream where rng.next() % 7 == 0 { stream.insert(e, at: Int(rng.next() % UInt64(stream.count + 1))) }
        var out: [[CloudEvent]] = []
        var i = 0
        while i < stream.count {
            let n = min(Int(rng.next() % 200) + 1, stream.count - i)
            out.append(Array(stream[i..<(i + n)]))
            i += n
        }
        return out
    }

    /// Every order's stored facts, the rollup rows and the drill rows, as stored.
    static func snapshot(_ path: String) throws -> [String] {
        let s = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        defer { s.close() }
        var out: [String] = []
        for k in Set(StoreConformance.workload(orders: orders).map(\.subject)).sorted() {
            out.append(try s.facts(orderID: k).map { $0.storageJSON.jsonString } ?? "nil")
        }
        try s.readers.with { c in
            for sql in ["SELECT dim || ' ' || bucket || ' ' || gk || ' ' || hex(acc) FROM rollups JOIN rollup_dims ON code = d ORDER BY dim, bucket, gk, part",
                        "SELECT fam || ' ' || at || ' ' || order_id || ' ' || value FROM kpi_drill ORDER BY fam, at, order_id"] {
                let q = try c.prepare(sql)
                while try q.step() { out.append(q.text(0)) }
                q.reset()
            }
        }
        return out
    }

    /// The order ids in the order their rows were inserted.
    static func insertionOrder(_ path: String) throws -> [String] {
        let s = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        defer { s.close() }
        return try s.readers.with { c in
            let q = try c.prepare("SELECT order_id FROM orders ORDER BY rid")
            defer { q.reset() }
            var out: [String] = []
            while try q.step() { out.append(q.text(0)) }
            return out
        }
    }

    @Test func aFlushOverSeveralChunksWritesWhatOneThreadWrites() async throws {
        #expect(Self.orders > 2 * OrdersTable.flushChunk)
        let appends = Self.appends()
        let direct = temporaryDatabase(), oneEpoch = temporaryDatabase(), epochs = temporaryDatabase()
        try await DeferredFactsTests.write(appends, to: direct, options: SQLiteStore.Options())
        // One epoch: every row is new and written at close. Epochs of 700 orders: the later ones update rows.
        try await DeferredFactsTests.write(appends, to: oneEpoch, options: DeferredFactsTests.deferred(events: 1_000_000, orders: 1_000_000))
        try await DeferredFactsTests.write(appends, to: epochs, options: DeferredFactsTests.deferred(events: 1_000_000, orders: 700))
        let want = try Self.snapshot(direct)
        for (name, path) in [("one epoch", oneEpoch), ("epochs of 700 orders", epochs)] {
            let got = try Self.snapshot(path)
            #expect(got.count == want.count)
            #expect(got == want, "\(name): \(zip(got, want).first { $0 != $1 }.map { "\n got \($0.0)\nwant \($0.1)" } ?? "")")
        }
        // One epoch's rows go in in key order, chunk after chunk.
        let order = try Self.insertionOrder(oneEpoch)
        #expect(order.count == Self.orders)
        #expect(order == order.sorted())
    }

    /// A store killed with the whole load in one epoch refolds it at open, through the same two threads.
    @Test func aRefoldOverSeveralChunksWritesWhatOneThreadWrites() async throws {
        let appends = Self.appends()
        let direct = temporaryDatabase(), live = temporaryDatabase(), copy = temporaryDatabase()
        try await DeferredFactsTests.write(appends, to: direct, options: SQLiteStore.Options())
        let s = try SQLiteStore(path: live, options: DeferredFactsTests.deferred(events: 1_000_000, orders: 1_000_000), rollup: KPIFactsRollup())
        for a in appends { _ = try await s.append(a) }
        // What a kill -9 leaves: the events committed, no rows.
        for suffix in ["", "-wal"] where FileManager.default.fileExists(atPath: live + suffix) {
            try FileManager.default.copyItem(atPath: live + suffix, toPath: copy + suffix)
        }
        s.close()
        let want = try Self.snapshot(direct)
        let got = try Self.snapshot(copy)
        #expect(got == want, "\(zip(got, want).first { $0 != $1 }.map { "\n got \($0.0)\nwant \($0.1)" } ?? "")")
    }
}
