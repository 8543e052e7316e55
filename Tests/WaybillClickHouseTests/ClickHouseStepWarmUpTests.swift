import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillStore
import WaybillTestSupport
@testable import WaybillClickHouse

/// The step comparison's warm-up (`warmStepRollups`): a server that starts on a written store computes
/// the step rollup's buckets before any trace asks for them, so that the traces then compute none, and
/// the steps they show are those a server without the warm-up computes from the facts.
@Suite struct ClickHouseStepWarmUpTests {
    @Test func warmedBucketsAnswerEveryTraceWithTheSameSteps() async throws {
        try await TestThreads.run { try await run() }
    }

    func run() async throws {
        guard let base = await TestClickHouse.url(test: "ClickHouseStepWarmUpTests/warmedBucketsAnswerEveryTraceWithTheSameSteps") else { return }
        // The same events in two databases: one for the server without the warm-up, one for the server
        // with it (the buckets one computes go to its `rollup_cache`, where the other would find them).
        let coldURL = TestClickHouse.fresh(base, "wbw"), warmURL = TestClickHouse.fresh(base, "wbw")
        var options = ClickHouseStore.Options()
        options.rollupCacheMargin = 0
        let coldWriter = try ClickHouseStore(url: coldURL, rollup: KPIFactsRollup(), options: options)
        defer { coldWriter.close() }
        let warmWriter = try ClickHouseStore(url: warmURL, rollup: KPIFactsRollup(), options: options)
        defer { warmWriter.close() }
        // 140 orders: the first 120 now, the last 20 (later in time) after the warm-up. The history of 120
        // orders is the first part of that of 140 (each order's events come in turn from the same seed).
        let all = ClickHouseExactnessTests.history(orders: 140, seed: 23)
        let events = Array(all.prefix(ClickHouseExactnessTests.history(orders: 120, seed: 23).count))
        for writer in [coldWriter, warmWriter] { _ = try await ClickHouseExactnessTests.appendInChunks(writer, events, seed: 3) }
        let orders = Set(events.filter(\.isOrderEvent).map(\.subject)).sorted()

        // A server without the warm-up: every trace computes the buckets it lacks from the facts.
        let cold = try ClickHouseStore(url: coldURL, rollup: KPIFactsRollup(), options: options)
        defer { cold.close() }
        var coldSteps: [String: [StepDocument]] = [:]
        for o in orders {
            guard let f = try cold.facts(orderID: o) else { continue }
            coldSteps[o] = try StepComparison(reader: cold).steps(f)
        }
        #expect(cold.rollupCacheCounts.current.computed > 0, "the cold server computes buckets")
        #expect(coldSteps.values.contains { $0.contains { $0.samples > 0 } }, "the history has steps with samples")

        // Another server, with the warm-up (on its own thread, as `serve` starts it), before any trace.
        let warm = try ClickHouseStore(url: warmURL, rollup: KPIFactsRollup(), options: options)
        defer { warm.close() }
        let held: Int = try await withCheckedThrowingContinuation { c in
            warm.warmStepRollups { c.resume(with: $0) }
        }
        #expect(held > 0, "the warm-up holds the step buckets")
        let before = warm.rollupCacheCounts.current
        for o in orders {
            guard let f = try warm.facts(orderID: o) else { continue }
            #expect(try StepComparison(reader: warm).steps(f) == coldSteps[o], "order \(o)")
        }
        let after = warm.rollupCacheCounts.current
        #expect(after.computed == before.computed, "after the warm-up no trace computes a bucket")
        #expect(after.hits > before.hits)

        // A write after the warm-up changes buckets: they are computed again, and the steps follow it.
        for writer in [coldWriter, warmWriter] {
            _ = try await ClickHouseExactnessTests.appendInChunks(writer, Array(all.suffix(from: events.count)), seed: 4)
        }
        let fresh = try ClickHouseStore(url: coldURL, rollup: KPIFactsRollup(), options: options)
        defer { fresh.close() }
        for o in orders.suffix(40) {
            guard let f = try warm.facts(orderID: o) else { continue }
            #expect(try StepComparison(reader: warm).steps(f) == StepComparison(reader: fresh).steps(f), "order \(o) after a write")
        }
    }
}
