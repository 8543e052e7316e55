import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillStore
import WaybillTestSupport
@testable import WaybillClickHouse

/// A store written before the KPI rollup cache (it has `rollup_keys` but no `rollup_dirty` and no
/// `rollup_cache`) is converted at open: every bucket `rollup_keys` lists gets a change mark, so no
/// bucket is read from a cache it never had, and the KPI documents are those of before the conversion.
@Suite struct ClickHouseRollupDirtyConversionTests {
    @Test func aStoreWithoutRollupMarksGetsAMarkForEveryBucket() async throws {
        try await TestThreads.run {
            for topology in ClickHouseTopology.allCases {
                let name = "ClickHouseRollupDirtyConversionTests/aStoreWithoutRollupMarks"
                guard let base = await TestClickHouse.url(test: name, cluster: topology == .cluster),
                      let cluster = await ClickHouseCluster.shared(test: name) else { return }
                let url = TestClickHouse.fresh(base, "wbm")
                let events = ClickHouseExactnessTests.history(orders: 80, seed: 21)
                let queries = try ClickHouseExactnessTests.kpiQueries()
                var before: [JSONValue] = []
                do {
                    let store = try ClickHouseStore(url: url, rollup: KPIFactsRollup())
                    defer { store.close() }
                    _ = try await ClickHouseExactnessTests.appendInChunks(store, events, seed: 22)
                    for q in queries { before.append(try KPIService(reader: store).document(q).json) }
                }
                let nodes = topology == .cluster ? [0, 1] : [0]
                for node in nodes {
                    for table in ["rollup_dirty", "rollup_dirty_local", "rollup_cache", "rollup_cache_local"] {
                        _ = try await cluster.query("DROP TABLE IF EXISTS \(url.database).\(table)", node: node)
                    }
                }
                let store = try ClickHouseStore(url: url, rollup: KPIFactsRollup())
                defer { store.close() }
                let db = url.database
                let buckets = try await cluster.query("SELECT count() FROM (SELECT DISTINCT dim, bucket FROM \(db).rollup_keys)")
                let unmarked = try await cluster.query("SELECT count() FROM (SELECT DISTINCT dim, bucket FROM \(db).rollup_keys) "
                                                       + "WHERE (dim, bucket) NOT IN (SELECT dim, bucket FROM \(db).rollup_dirty)")
                #expect((Int(buckets.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > 50, "buckets: \(buckets) (\(topology.rawValue))")
                #expect(unmarked.trimmingCharacters(in: .whitespacesAndNewlines) == "0", "buckets without a mark: \(unmarked) (\(topology.rawValue))")
                for (i, q) in queries.enumerated() {
                    #expect(try KPIService(reader: store).document(q).json == before[i], "\(q) after the conversion (\(topology.rawValue))")
                }
                for node in nodes { _ = try? await cluster.query("DROP DATABASE IF EXISTS \(db)", node: node) }
            }
        }
    }

    /// A store indexed one `rollup_keys` row per bucket (each of a tier's dimensions apart, as before the
    /// index kept one row per slot) is indexed again at open: the index holds slot rows only, and the
    /// KPI documents are those of before.
    @Test func aStoreIndexedPerBucketIsIndexedAgainPerSlot() async throws {
        try await TestThreads.run {
            for topology in ClickHouseTopology.allCases {
                let name = "ClickHouseRollupDirtyConversionTests/aStoreIndexedPerBucket"
                guard let base = await TestClickHouse.url(test: name, cluster: topology == .cluster),
                      let cluster = await ClickHouseCluster.shared(test: name) else { return }
                let url = TestClickHouse.fresh(base, "wbs")
                let db = url.database
                let events = ClickHouseExactnessTests.history(orders: 80, seed: 23)
                let queries = try ClickHouseExactnessTests.kpiQueries()
                let rollup = KPIFactsRollup()
                var before: [JSONValue] = []
                do {
                    let store = try ClickHouseStore(url: url, rollup: rollup)
                    defer { store.close() }
                    _ = try await ClickHouseExactnessTests.appendInChunks(store, events, seed: 24)
                    for q in queries { before.append(try KPIService(reader: store).document(q).json) }
                }
                let index = "SELECT dim, bucket, order_id FROM \(db).rollup_keys ORDER BY dim, bucket, order_id FORMAT TSV"
                let slotRows = try await cluster.query(index)
                #expect(!slotRows.contains("warehouse@"), "(\(topology.rawValue))")
                // The older index: every tier's slot row also under each dimension's name, and the layout
                // it was written for.
                let nodes = topology == .cluster ? [0, 1] : [0]
                let local = topology == .cluster ? "_local" : ""
                for node in nodes {
                    _ = try await cluster.query("INSERT INTO \(db).rollup_keys\(local) (dim, bucket, order_id) "
                                                + "SELECT concat(arrayJoin(['warehouse', 'channel', 'region']), substring(dim, 6)) AS d, bucket, order_id "
                                                + "FROM \(db).rollup_keys\(local) WHERE startsWith(dim, 'total@')", node: node)
                }
                _ = try await cluster.query("INSERT INTO \(db).meta\(local) (key, value, ver) VALUES ('rollup_layout', '\(rollup.layout)', 18000000000000000000)", node: 0)
                let perBucket = try await cluster.query("SELECT count() FROM \(db).rollup_keys WHERE startsWith(dim, 'warehouse@')")
                #expect((Int(perBucket.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) > 50, "(\(topology.rawValue))")
                let store = try ClickHouseStore(url: url, rollup: rollup)
                defer { store.close() }
                // Rebuilt from the current facts: the slots they fall in (the writes had also indexed
                // slots that earlier versions of the facts fell in), none under a dimension's own name.
                let after = try await cluster.query(index).split(separator: "\n")
                #expect(after.count > 50 && Set(after).isSubset(of: Set(slotRows.split(separator: "\n"))), "(\(topology.rawValue))")
                #expect(!after.contains { $0.hasPrefix("warehouse@") || $0.hasPrefix("channel@") || $0.hasPrefix("region@") })
                for (i, q) in queries.enumerated() {
                    #expect(try KPIService(reader: store).document(q).json == before[i], "\(q) after indexing again (\(topology.rawValue))")
                }
                for node in nodes { _ = try? await cluster.query("DROP DATABASE IF EXISTS \(db)", node: node) }
            }
        }
    }
}
