import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillStore
import WaybillTestSupport
@testable import WaybillClickHouse

/// The KPI rollup cache (`rollup_cache`, `rollup_dirty`): with the clock margin at zero a bucket is read
/// from the cache as soon as no write changed it since it was computed, so these reads do hit it. After
/// every round of writes (new orders, late re-allocations that move an order to another bucket,
/// cancellations, resends, a second writer) the KPI documents still equal the documents computed from
/// the orders' facts, and a second read with no write between is answered from the cache alone.
@Suite struct ClickHouseRollupCacheTests {
    @Test func cachedBucketsFollowEveryWrite() async throws {
        try await TestThreads.run { try await run() }
    }

    func run() async throws {
        guard let base = await TestClickHouse.url(test: "ClickHouseRollupCacheTests/cachedBucketsFollowEveryWrite") else { return }
        let url = TestClickHouse.fresh(base, "wbc")
        var options = ClickHouseStore.Options()
        options.rollupCacheMargin = 0
        let a = try ClickHouseStore(url: url, rollup: KPIFactsRollup(), options: options)
        defer { a.close() }
        let b = try ClickHouseStore(url: url, rollup: KPIFactsRollup(), options: options)
        defer { b.close() }

        var rng = SplitMix64(seed: 5)
        let events = ClickHouseExactnessTests.history(orders: 160, seed: 11)
        // Late re-allocations ("-al0": an earlier allocation that arrives last) move orders between
        // buckets; they come in the last rounds.
        let late = events.filter { $0.id.hasSuffix("-al0") }
        var early = events.filter { !$0.id.hasSuffix("-al0") }
        early.shuffle(using: &rng)
        let third = early.count / 3
        let rounds: [(ClickHouseStore, [CloudEvent])] = [
            (a, Array(early[..<third])),
            (b, Array(early[third..<(2 * third)]) + Array(early[..<20])),   // the other writer, with resends
            (a, Array(early[(2 * third)...]) + Array(late.prefix(late.count / 2))),
            (b, Array(late.suffix(from: late.count / 2))),
        ]
        let t0 = ClickHouseExactnessTests.t0
        let hour: Micros = 3_600_000_000
        let queries = try [
            KPIQuery(from: t0 - hour, to: t0 + 4 * 24 * hour, by: .warehouse, step: hour),
            KPIQuery(from: t0 - hour, to: t0 + 4 * 24 * hour, step: 24 * hour),
            KPIQuery(from: t0 + 5 * hour, to: t0 + 7 * hour, by: .channel, step: 60_000_000),
        ]
        var written: [CloudEvent] = []
        for (round, (writer, batch)) in rounds.enumerated() {
            _ = try await ClickHouseExactnessTests.appendInChunks(writer, batch, seed: UInt64(round))
            written += batch
            var facts: [String: OrderFacts] = [:]
            var seen = Set<String>()
            for e in written where e.isOrderEvent && seen.insert(e.source + "\u{0}" + e.id).inserted {
                facts[e.subject, default: OrderFacts(orderID: e.subject)].apply(e)
            }
            for reader in [a, b] {
                for pass in 0..<2 {
                    let before = reader.rollupCacheCounts.current
                    for q in queries {
                        let got = try KPIService(reader: reader).document(q)
                        let want = KPIReport.compute(facts: Array(facts.values), query: q, quantiles: .sketched)
                        #expect(got.json == want.json, "round \(round), pass \(pass): \(q)")
                    }
                    let after = reader.rollupCacheCounts.current
                    if pass == 0 && reader === a {
                        #expect(after.computed > before.computed, "round \(round): the written buckets are recomputed")
                    } else {
                        // Nothing was written since the first pass computed (or cached) every bucket.
                        #expect(after.computed == before.computed, "round \(round): a read with no write between is answered from the cache")
                        #expect(after.hits > before.hits)
                    }
                }
            }
        }
    }
}
