import Foundation
import Testing
import WaybillModel
import WaybillStore
import WaybillStoreConformance
@testable import WaybillClickHouse

/// A ClickHouse to test against: `WAYBILL_TEST_CLICKHOUSE` (a store URL) when set, else the test
/// harness's two-shard cluster (`ClickHouseCluster`; one node of it when `cluster` is false). Nil after
/// printing `SKIPPED <test>: <reason>` when clickhouse-server is not installed. Each storage gets a
/// fresh database (`fresh`).
enum TestClickHouse {
    static func url(test: String, cluster: Bool = true) async -> ClickHouseURL? {
        if let text = ProcessInfo.processInfo.environment["WAYBILL_TEST_CLICKHOUSE"] { return try? ClickHouseURL(parsing: text) }
        guard let c = await ClickHouseCluster.shared(test: test) else { return nil }
        return try? ClickHouseURL(parsing: c.url(database: "waybill", cluster: cluster))
    }

    static func fresh(_ base: ClickHouseURL, _ prefix: String = "wbt") -> ClickHouseURL {
        var u = base
        u.database = "\(prefix)_\(getpid())_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
        return u
    }
}

/// Where the conformance suite runs: the two-shard cluster through the Distributed tables, and one node
/// without a `cluster` (the set-up of a single ClickHouse).
enum ClickHouseTopology: String, CaseIterable, Sendable {
    case cluster = "two-shard cluster"
    case oneNode = "one node"
}

/// Every check of the conformance suite against ClickHouse, on the two-shard cluster and on one node:
/// each storage is a new database, reopened by name. While the suite runs, every statement the engine
/// sends is recorded, and at its end each distinct statement shape is run on a current ClickHouse
/// (chDB) as well (`ChDBStatementCheck`).
@Suite(ChDBStatementCheck(databasePrefix: "conf")) struct ClickHouseConformanceTests {
    @Test(arguments: StoreConformance.checks, ClickHouseTopology.allCases)
    func conformance(_ check: StoreConformance.Check, _ topology: ClickHouseTopology) async throws {
        guard let base = await TestClickHouse.url(test: "ClickHouseConformanceTests/\(check.name)", cluster: topology == .cluster) else { return }
        // The checks call the synchronous readers from async code: on test threads, not the cooperative pool.
        try await TestThreads.run {
            try await check.run {
                let url = TestClickHouse.fresh(base, topology == .cluster ? "conf2" : "conf1")
                return StoreConformance.Storage(open: { rollup in try ClickHouseStore(url: url, rollup: rollup) },
                                                holdWrites: { store, held in (store as! ClickHouseStore).holdWrites(held) })
            }
        }
    }
}
