import Foundation
import Testing
import WaybillModel
import WaybillStore
import WaybillTestSupport
@testable import WaybillClickHouse

/// Reads by key go to the one shard that holds the key (`ShardMap`, `CityHash`), and a trace reads an
/// order's events only in the days `event_days` lists. These checks hold that to what ClickHouse does:
/// the hash equals the server's `cityHash64`, every row (now written to the shards' own tables) sits on
/// the shard the map names and the Distributed table would choose, and a store
/// written before `event_days` existed is converted at open with its traces unchanged.
@Suite struct ClickHouseShardTests {
    @Test func cityHashEqualsTheServersOnKeysOfEveryLength() async throws {
        guard let cluster = await ClickHouseCluster.shared(test: "ClickHouseShardTests/cityHash") else { return }
        var rng = SplitMix64(seed: 12)
        var keys: [String] = ["", "SO-00000001", "shipment:1Z42", "ünïcødé-ключ-订单", "a'b\\c"]
        for n in 0...160 {
            keys.append(String((0..<n).map { _ in Character(UnicodeScalar(UInt8(32 + rng.next() % 95))) }))
        }
        let list = keys.map(SQL.quote).joined(separator: ",")
        let answer = try await cluster.query("SELECT arrayJoin(arrayMap(x -> toString(cityHash64(x)), [\(list)]))")
        let theirs = answer.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        #expect(theirs.count == keys.count)
        for (k, h) in zip(keys, theirs) {
            #expect(String(CityHash.hash64(k)) == h, "cityHash64 of \(k.debugDescription) (\(k.utf8.count) bytes)")
        }
    }

    @Test func everyRowIsOnTheShardTheMapNames() async throws {
        try await TestThreads.run {
            guard let base = await TestClickHouse.url(test: "ClickHouseShardTests/everyRowIsOnTheShardTheMapNames"),
                  let cluster = await ClickHouseCluster.shared(test: "ClickHouseShardTests/everyRowIsOnTheShardTheMapNames") else { return }
            let url = TestClickHouse.fresh(base, "wbs")
            let store = try ClickHouseStore(url: url, rollup: nil)
            defer { store.close() }
            let shards = try #require(store.shards, "a two-shard cluster whose hash agrees has a shard map")
            #expect(shards.count == 2)
            let events = ClickHouseExactnessTests.history(orders: 120, seed: 3)
            _ = try await ClickHouseExactnessTests.appendInChunks(store, events, seed: 4)
            var seen = 0
            for (node, host) in store.nodes.enumerated() {
                let shard = try #require(shards.hosts.firstIndex { $0.contains(host ?? -1) })
                for (table, column) in [("events", "subject"), ("event_days", "subject"), ("orders", "order_id"), ("links", "a")] {
                    let keys = try await cluster.query("SELECT DISTINCT \(column) FROM \(url.database).\(table)_local", node: node)
                        .split(separator: "\n").map(String.init)
                    seen += keys.count
                    for k in keys { #expect(shards.shard(of: k) == shard, "\(table) row of \(k) on node \(node)") }
                    // Where the Distributed table itself would put them (two shards of weight 1).
                    let misplaced = try await cluster.query("SELECT count() FROM \(url.database).\(table)_local WHERE cityHash64(\(column)) % 2 != \(shard)", node: node)
                    #expect(misplaced.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "\(table) on node \(node)")
                }
            }
            #expect(seen > 400)
            _ = try? await cluster.query("DROP DATABASE IF EXISTS \(url.database)", node: 0)
            _ = try? await cluster.query("DROP DATABASE IF EXISTS \(url.database)", node: 1)
        }
    }

    /// A store of before `event_days` (its tables dropped): the next open lists the days of the stored
    /// events, and every trace (orders and the linked shipment keys) is what it was.
    @Test func aStoreWithoutEventDaysIsConvertedAtOpen() async throws {
        try await TestThreads.run {
            for topology in ClickHouseTopology.allCases {
                guard let base = await TestClickHouse.url(test: "ClickHouseShardTests/aStoreWithoutEventDays", cluster: topology == .cluster),
                      let cluster = await ClickHouseCluster.shared(test: "ClickHouseShardTests/aStoreWithoutEventDays") else { return }
                let url = TestClickHouse.fresh(base, "wbd")
                let events = ClickHouseExactnessTests.history(orders: 60, seed: 8)
                let keys = Array(Set(events.map(\.subject))).sorted()
                var before: [String: Trace] = [:]
                do {
                    let store = try ClickHouseStore(url: url, rollup: nil)
                    defer { store.close() }
                    _ = try await ClickHouseExactnessTests.appendInChunks(store, events, seed: 9)
                    for k in keys { before[k] = try store.trace(key: k) }
                }
                #expect(before.values.reduce(0) { $0 + $1.events.count } >= events.count)
                let nodes = topology == .cluster ? [0, 1] : [0]
                for node in nodes {
                    _ = try await cluster.query("DROP TABLE IF EXISTS \(url.database).event_days", node: node)
                    _ = try await cluster.query("DROP TABLE IF EXISTS \(url.database).event_days_local", node: node)
                }
                let store = try ClickHouseStore(url: url, rollup: nil)
                defer { store.close() }
                for k in keys {
                    let t = try store.trace(key: k)
                    #expect(t == before[k], "trace of \(k) after the conversion (\(topology.rawValue))")
                }
                for node in nodes { _ = try? await cluster.query("DROP DATABASE IF EXISTS \(url.database)", node: node) }
            }
        }
    }
}
