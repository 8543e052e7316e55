import Testing
import WaybillModel
import WaybillStore
@testable import WaybillKPI
import WaybillTestSupport

/// The lifecycle step rows (`StepRollup`) and the verdict rule of the trace document's `steps`.
struct StepRollupTests {
    @Test func stepsFollowTheStagesReachedInLifecycleOrder() {
        let f = facts("SO-1") { s in
            s.accepted(t("2026-11-20T10:00:00Z"))
            s.allocated(t("2026-11-20T10:05:00Z"))
            // The WMS clock is behind: released before allocated. The step's gap is 0, not negative.
            s.released(t("2026-11-20T10:04:00Z"))
            s.shipped(t("2026-11-20T13:04:00Z"))
        }
        #expect(f.lifecycleSteps.map { "\($0.from.name)>\($0.to.name)" } == ["accepted>allocated", "allocated>released", "released>shipped"])
        #expect(f.lifecycleSteps.map(\.gap) == [5 * minute, 0, 3 * hour])
        #expect(f.stepWarehouse == "DC-EAST")
    }

    @Test func rowsRoundTripAndHostileBytesAreRefused() throws {
        var a = QuantileSketch(), b = QuantileSketch()
        for v in [1, 5, 900] { a.add(Int64(v) * second) }
        b.add(3 * hour)
        let block: [StepRollup.Key: QuantileSketch] = [
            .init(from: .released, to: .shipped, warehouse: "DC-EAST"): a,
            .init(from: .accepted, to: .allocated, warehouse: nil): b,
            .init(from: .allocated, to: .released, warehouse: "DC-WEST"): QuantileSketch(),
        ]
        let bytes = try #require(StepRollup.encode(block))
        let back = try StepRollup.decode(bytes)
        #expect(back.count == 2, "empty sketches are left out")
        #expect(back[.init(from: .released, to: .shipped, warehouse: "DC-EAST")] == a)
        #expect(back[.init(from: .accepted, to: .allocated, warehouse: nil)] == b)
        // Only the wanted entries are decoded.
        var seen: [StepRollup.Key] = []
        try StepRollup.decode(bytes) { $0.warehouse == nil } each: { k, _ in seen.append(k) }
        #expect(seen == [.init(from: .accepted, to: .allocated, warehouse: nil)])
        #expect(StepRollup.encode([.init(from: .accepted, to: .allocated, warehouse: nil): QuantileSketch()]) == nil)
        #expect(throws: (any Error).self) { try StepRollup.decode(Array(bytes.dropLast(2))) }
        #expect(throws: (any Error).self) { try StepRollup.decode(bytes + [0]) }
        #expect(throws: (any Error).self) { try StepRollup.decode([9] + bytes.dropFirst()) }
        #expect(throws: (any Error).self) { try StepRollup.decode([1, 1, 99, 7, 0, 0]) }
        #expect(throws: (any Error).self) { try StepRollup.decode([1, 255, 255, 255, 255, 15]) }
    }

    @Test func updatesRetractWhatChangedAndKeepWhatDidNot() throws {
        var rows: [RollupKey: [UInt8]] = [:]
        func apply(_ t: [FactsTransition]) throws {
            for (k, v) in try StepRollup.update(t, read: { rows[$0] }) { rows[k] = v }
        }
        var s = OrderScript("SO-2")
        s.accepted(t("2026-11-20T10:00:00Z"))
        s.allocated(t("2026-11-20T10:30:00Z"), warehouse: "DC-EAST")
        let first = s.facts
        try apply([FactsTransition(old: nil, new: first)])
        // A re-allocation with an earlier time from DC-WEST: the step moves warehouse (and gap).
        s.allocated(t("2026-11-20T10:20:00Z"), warehouse: "DC-WEST", id: "re")
        let second = s.facts
        try apply([FactsTransition(old: first, new: second)])
        let all = try rows.values.map(StepRollup.decode)
        #expect(all.count == 1)
        #expect(all[0].count == 1)
        let only = try #require(all[0][.init(from: .accepted, to: .allocated, warehouse: "DC-WEST")])
        #expect(only.count == 1 && only.sum == 20 * minute)
        // Retention: the order goes, its row with it.
        try apply([FactsTransition(old: second, new: OrderFacts(orderID: "SO-2"))])
        #expect(rows.values.allSatisfy { $0.isEmpty } || rows.isEmpty)
    }

    @Test func verdictsAtTheirBoundaries() {
        let p90 = 10 * minute
        #expect(StepDocument.verdict(gap: 5 * hour, p90: p90, samples: 19) == .noHistory)
        #expect(StepDocument.verdict(gap: p90, p90: p90, samples: 20) == .typical)
        #expect(StepDocument.verdict(gap: p90 + minute - 1, p90: p90, samples: 20) == .typical)
        #expect(StepDocument.verdict(gap: p90 + minute, p90: p90, samples: 20) == .slow)
        #expect(StepDocument.verdict(gap: 2 * p90, p90: p90, samples: 20) == .slow)
        #expect(StepDocument.verdict(gap: 2 * p90 + 1, p90: p90, samples: 20) == .veryslow)
        // A step of seconds: not flagged for less than a minute above p90, whatever the ratio.
        #expect(StepDocument.verdict(gap: 50 * second, p90: 2 * second, samples: 500) == .typical)
        #expect(StepDocument.verdict(gap: 62 * second, p90: 2 * second, samples: 500) == .veryslow)
        let th = StepDocument.thresholds(p90: p90)
        #expect(StepDocument.verdict(gap: th.slow, p90: p90, samples: 20) == .slow)
        #expect(StepDocument.verdict(gap: th.slow - 1, p90: p90, samples: 20) == .typical)
        #expect(StepDocument.verdict(gap: th.verySlow, p90: p90, samples: 20) == .veryslow)
        #expect(StepDocument.verdict(gap: th.verySlow - 1, p90: p90, samples: 20) == .slow)
    }
}
