import Foundation
import Testing
import WaybillModel
import WaybillStore
import WaybillStoreConformance
@testable import WaybillClickHouse

/// A ClickHouse to test against: `WAYBILL_TEST_CLICKHOUSE` (a store URL; its database is replaced by a
/// fresh one per storage), or nil after printing why the test is skipped.
enum TestClickHouse {
    static func url(test: String) -> ClickHouseURL? {
        guard let text = ProcessInfo.processInfo.environment["WAYBILL_TEST_CLICKHOUSE"] else {
            print("SKIPPED \(test): clickhouse-server not configured (set WAYBILL_TEST_CLICKHOUSE to a store URL)")
            return nil
        }
        return try? ClickHouseURL(parsing: text)
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
        guard let base = TestClickHouse.url(test: "ClickHouseConformanceTests/\(check.name)") else { return }
        try await check.run {
            let url = TestClickHouse.fresh(base)
            return StoreConformance.Storage(open: { rollup in try ClickHouseStore(url: url, rollup: rollup) },
                                            holdWrites: { store, held in (store as! ClickHouseStore).holdWrites(held) })
        }
    }
}
