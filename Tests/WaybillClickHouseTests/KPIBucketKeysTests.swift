import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillStore
import WaybillTestSupport
@testable import WaybillClickHouse

/// `KPIBucketKeys` (the rollup buckets an order's facts fall in, computed without building the rows) gives
/// exactly the keys `KPIFactsRollup.update` writes for the order as a new one: for the facts after every
/// event of many orders (cancelled, partly allocated, late re-allocations, steps out of order, no
/// warehouse), in arrival order and shuffled, under the store's bucket widths and under three tiers.
/// Another rollup, or another layout, gets no fast keys (the store then asks `update`).
@Suite struct KPIBucketKeysTests {
    @Test func fastKeysEqualTheRollupsKeys() throws {
        var rng = SplitMix64(seed: 3)
        let events = ClickHouseExactnessTests.history(orders: 300, seed: 7)
        var shuffled = events
        shuffled.shuffle(using: &rng)
        for rollup in [KPIFactsRollup(), KPIFactsRollup(bucketWidths: [86_400_000_000, 3_600_000_000, 60_000_000])] {
            let keys = try #require(KPIBucketKeys.make(rollup))
            var checked = 0, nonEmpty = 0
            for order in [events, shuffled] {
                var facts: [String: OrderFacts] = [:]
                for e in order where e.isOrderEvent {
                    facts[e.subject, default: OrderFacts(orderID: e.subject)].apply(e)
                    let f = facts[e.subject]!
                    let want = try ClickHouseStore.bucketsByUpdate(rollup, f)
                    #expect(keys.buckets(f) == want, "\(e.subject) after \(e.id)")
                    checked += 1
                    if !want.isEmpty { nonEmpty += 1 }
                }
            }
            #expect(checked > 1_000)
            #expect(nonEmpty > checked / 2)
        }
    }

    /// The index holds one key per slot, named so that a reader maps each bucket's dimension to it
    /// (`indexName`): the index keys of some facts are exactly their buckets with each dimension so
    /// named, and a tier's total and dimensions share one key.
    @Test func indexKeysAreTheBucketsUnderTheirIndexNames() throws {
        let events = ClickHouseExactnessTests.history(orders: 200, seed: 11)
        let keys = try #require(KPIBucketKeys.make(KPIFactsRollup()))
        var facts: [String: OrderFacts] = [:]
        var buckets = 0, indexed = 0
        for e in events where e.isOrderEvent {
            facts[e.subject, default: OrderFacts(orderID: e.subject)].apply(e)
            let f = facts[e.subject]!
            let all = keys.buckets(f)
            let index = Set(keys.indexKeys(keys.slots(f)))
            #expect(index == Set(all.map { RollupKey(dimension: keys.indexName($0.dimension), group: nil, bucketStart: $0.bucketStart) }),
                    "\(e.subject) after \(e.id)")
            buckets += all.filter { $0.dimension != StepRollup.dimension }.count
            indexed += index.filter { $0.dimension != StepRollup.dimension }.count
        }
        // A tier's slot is one key for the total and each dimension's bucket.
        #expect(indexed > 0 && buckets == indexed * (1 + KPIDimension.allCases.count))
        #expect(keys.indexName(StepRollup.dimension) == StepRollup.dimension)
        #expect(keys.indexName("warehouse@3600s") == "total@3600s" || !keys.widths.contains(3_600_000_000))
        #expect(keys.indexName("unknown") == "unknown")
    }

    struct OtherRollup: FactsRollup {
        var layout: String { "other" }
        func update(_ transitions: [FactsTransition], read: (RollupKey) throws -> [UInt8]?) throws -> [(RollupKey, [UInt8]?)] { [] }
    }

    @Test func onlyTheKPIRollupGetsFastKeys() {
        #expect(KPIBucketKeys.make(OtherRollup()) == nil)
        #expect(KPIBucketKeys.make(nil) == nil)
    }
}
