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
}
