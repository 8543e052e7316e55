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

/// Every check of the conformance suite against ClickHouse (through the Distributed tables when the URL
/// names a cluster): each storage is a new database, reopened by name.
@Suite struct ClickHouseConformanceTests {
    @Test(arguments: StoreConformance.checks)
    func conformance(_ check: StoreConformance.Check) async throws {
        guard let base = await TestClickHouse.url(test: "ClickHouseConformanceTests/\(check.name)") else { return }
        // The checks call the synchronous readers from async code: on test threads, not the cooperative pool.
        try await TestThreads.run {
            try await check.run {
                let url = TestClickHouse.fresh(base)
                return StoreConformance.Storage(open: { rollup in try ClickHouseStore(url: url, rollup: rollup) },
                                                holdWrites: { store, held in (store as! ClickHouseStore).holdWrites(held) })
            }
        }
    }
}
