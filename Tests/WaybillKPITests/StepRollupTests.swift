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

    /// `update` decodes only the changed entries of a row and keeps the others' bytes: the rows must be
    /// byte for byte those of decoding every entry, applying, and encoding the whole row again, over
    /// many orders interleaved in time with re-allocations that move steps between warehouses and
    /// buckets, and orders retracted by retention.
    @Test func rowsEqualDecodingEveryEntry() throws {
        var rng = SplitMix64(seed: 16)
        var fast: [RollupKey: [UInt8]] = [:], reference: [RollupKey: [UInt8]] = [:]
        func referenceUpdate(_ transitions: [FactsTransition]) throws {
            var changes: [RollupKey: [StepRollup.Key: (retracted: QuantileSketch, added: QuantileSketch)]] = [:]
            func steps(_ f: OrderFacts?) -> [(RollupKey, StepRollup.Key, Micros)] {
                guard let f else { return [] }
                return f.lifecycleSteps.map {
                    (RollupKey(dimension: StepRollup.dimension, group: nil, bucketStart: KPIRollup.bucketStart($0.end, width: StepRollup.bucketWidth)),
                     StepRollup.Key(from: $0.from, to: $0.to, warehouse: f.stepWarehouse), $0.gap)
                }
            }
            for t in transitions {
                var remaining = steps(t.new)
                for o in steps(t.old) {
                    if let j = remaining.firstIndex(where: { $0 == o }) { remaining.remove(at: j); continue }
                    changes[o.0, default: [:]][o.1, default: (QuantileSketch(), QuantileSketch())].retracted.add(o.2)
                }
                for n in remaining { changes[n.0, default: [:]][n.1, default: (QuantileSketch(), QuantileSketch())].added.add(n.2) }
            }
            for (key, byKey) in changes {
                var block = try reference[key].map(StepRollup.decode) ?? [:]
                for (k, c) in byKey {
                    var s = block[k] ?? QuantileSketch()
                    s.apply(retracting: c.retracted, adding: c.added)
                    block[k] = s
                }
                reference[key] = StepRollup.encode(block)
            }
        }
        let warehouses = ["DC-EAST", "DC-WEST", "DC-NORTH", "DC-SOUTH", "3PL-A"]
        var scripts: [OrderScript] = []
        var facts: [OrderFacts?] = []
        let start = t("2026-11-20T00:00:00Z")
        for round in 0..<60 {
            var transitions: [FactsTransition] = []
            // New orders, and more events for earlier ones (some re-allocated elsewhere, earlier or later).
            for _ in 0..<40 {
                let i: Int
                if scripts.isEmpty || rng.next() % 3 == 0 {
                    var s = OrderScript("SO-\(scripts.count)")
                    s.accepted(start + Micros(round) * 20 * minute + Micros(rng.next() % 600) * second)
                    scripts.append(s)
                    facts.append(nil)
                    i = scripts.count - 1
                } else {
                    i = Int(rng.next() % UInt64(scripts.count))
                }
                guard facts[i] != nil || scripts[i].events.count == 1 else { continue }  // retracted: gone
                let last = scripts[i].events.map(\.time).max()!
                let later = last + Micros(rng.next() % 7200) * second
                let w = warehouses[Int(rng.next() % UInt64(warehouses.count))]
                switch rng.next() % 4 {
                case 0: scripts[i].allocated(later, warehouse: w, id: "a\(rng.next() % 1000)")
                case 1: scripts[i].released(later, warehouse: w)
                case 2: scripts[i].shipped(later, warehouse: w, id: "s\(rng.next() % 1000)")
                default: scripts[i].allocated(last - Micros(rng.next() % 3600) * second, warehouse: w, id: "r\(rng.next() % 1000)")
                }
                let new = scripts[i].facts
                transitions.append(FactsTransition(old: facts[i], new: new))
                facts[i] = new
            }
            // Retention takes a few orders out.
            for i in facts.indices where facts[i] != nil && rng.next() % 50 == 0 {
                transitions.append(FactsTransition(old: facts[i], new: OrderFacts(orderID: facts[i]!.orderID)))
                facts[i] = nil
            }
            for (k, v) in try StepRollup.update(transitions, read: { fast[$0] }) { fast[k] = v }
            try referenceUpdate(transitions)
            #expect(fast.filter { $0.value != nil } == reference.filter { $0.value != nil }, "round \(round)")
        }
        #expect(try fast.values.contains { try StepRollup.decode($0).count > 3 }, "rows hold several keys")
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
