import Testing
import WaybillModel
@testable import WaybillKPI
import WaybillTestSupport

/// The rollup path (accumulators maintained at ingest) against the reference path (facts).
struct RollupTests {
    static let start = t("2026-11-02T00:00:00Z")

    /// What a store does: keep facts per order and, for each event, retract the order's old
    /// contribution from the rollup rows and add its new one; rows that empty are deleted.
    struct IngestSimulation {
        let widths: [Micros]
        var facts: [String: OrderFacts] = [:]
        var rows: [KPIRollupKey: KPIAccumulator] = [:]

        mutating func ingest(_ e: CloudEvent) {
            let old = facts[e.subject]
            var f = old ?? OrderFacts(orderID: e.subject)
            f.apply(e)
            facts[e.subject] = f
            for width in widths {
                for change in KPIRollup.changes(from: old.map(OrderContribution.init), to: OrderContribution(f), bucketWidth: width) {
                    var acc = rows[change.key] ?? KPIAccumulator()
                    change.apply(to: &acc)
                    rows[change.key] = acc.isEmpty ? nil : acc
                }
            }
        }

        var rollupRows: [KPIRollupRow] { rows.map { KPIRollupRow(key: $0.key, accumulator: $0.value) } }
    }

    static func simulate(seed: UInt64, widths: [Micros]) -> IngestSimulation {
        var rng = SplitMix64(seed: seed)
        let events = randomScripts(count: 400, seed: seed, start: start, days: 3).flatMap(\.events).shuffled(using: &rng)
        var sim = IngestSimulation(widths: widths)
        for e in events { sim.ingest(e) }
        return sim
    }

    /// Everything exact (`max_s` too) but quantiles, which must be within 1%.
    func expectAgree(_ a: KPIs, _ b: KPIs, _ context: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.ordersAllocated == b.ordersAllocated, "\(context)", sourceLocation: sourceLocation)
        #expect(a.fillRate == b.fillRate, "\(context)", sourceLocation: sourceLocation)
        #expect(a.orderFillRate == b.orderFillRate, "\(context)", sourceLocation: sourceLocation)
        #expect(a.shipments == b.shipments, "\(context)", sourceLocation: sourceLocation)
        #expect(a.onTimeRate == b.onTimeRate, "\(context)", sourceLocation: sourceLocation)
        for (x, y) in [(a.allocationDelay, b.allocationDelay), (a.shipmentLag, b.shipmentLag)] {
            #expect(x.count == y.count, "\(context)", sourceLocation: sourceLocation)
            #expect(x.meanSeconds == y.meanSeconds, "\(context)", sourceLocation: sourceLocation)
            #expect(x.maxSeconds == y.maxSeconds, "\(context) max_s", sourceLocation: sourceLocation)
            for f in [DistributionField.p50, .p90, .p95, .p99] {
                switch (x.value(f), y.value(f)) {
                case (nil, nil): break
                case let (u?, v?): #expect(relativeError(u, v) <= 0.01, "\(context) \(f): \(u) vs \(v)", sourceLocation: sourceLocation)
                default: Issue.record("\(context) \(f): \(String(describing: x.value(f))) vs \(String(describing: y.value(f)))", sourceLocation: sourceLocation)
                }
            }
        }
    }

    func expectAgree(_ a: KPIDocument, _ b: KPIDocument, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(a.query == b.query, sourceLocation: sourceLocation)
        expectAgree(a.total, b.total, "total", sourceLocation: sourceLocation)
        #expect(a.groups.map(\.value) == b.groups.map(\.value), sourceLocation: sourceLocation)
        for (g, h) in zip(a.groups, b.groups) { expectAgree(g.kpis, h.kpis, "group \(g.value ?? "null")", sourceLocation: sourceLocation) }
        #expect(a.series.map(\.value) == b.series.map(\.value), sourceLocation: sourceLocation)
        for (s, r) in zip(a.series, b.series) {
            #expect(s.points.map(\.start) == r.points.map(\.start), sourceLocation: sourceLocation)
            for (p, q) in zip(s.points, r.points) {
                expectAgree(p.kpis, q.kpis, "series \(s.value ?? "null") @\(RFC3339.format(p.start))", sourceLocation: sourceLocation)
            }
        }
    }

    @Test func rollupsMaintainedAtIngestEqualRollupsOfTheFinalFacts() {
        let sim = Self.simulate(seed: 3, widths: [hour])
        var direct: [KPIRollupKey: KPIAccumulator] = [:]
        for f in sim.facts.values {
            for change in KPIRollup.changes(from: nil, to: OrderContribution(f), bucketWidth: hour) {
                change.apply(to: &direct[change.key, default: KPIAccumulator()])
            }
        }
        #expect(Set(sim.rows.keys) == Set(direct.keys))
        for (k, acc) in direct {
            let got = sim.rows[k]!
            #expect(got.ordersAllocated == acc.ordersAllocated && got.unitsOrdered == acc.unitsOrdered
                && got.unitsAllocatedFirst == acc.unitsAllocatedFirst && got.fullyAllocatedFirst == acc.fullyAllocatedFirst
                && got.shipments == acc.shipments && got.onTimeDefined == acc.onTimeDefined && got.onTime == acc.onTime)
            #expect(got.allocationDelay.count == acc.allocationDelay.count && got.allocationDelay.sum == acc.allocationDelay.sum)
            // The maximum is exact, or marked not known with a bound above it: never a guess.
            for (mine, theirs) in [(got.allocationDelay, acc.allocationDelay), (got.shipmentLag, acc.shipmentLag)] {
                if mine.maxIsExact {
                    #expect(mine.max == theirs.max)
                } else {
                    #expect(mine.maxBound! >= theirs.max!)
                }
            }
            // Equal buckets; a quantile may differ only by the cap at a max approximated after retracting the maximum.
            for p in [50.0, 95, 99] {
                #expect(relativeError(got.shipmentLag.quantile(percent: p) ?? 0, acc.shipmentLag.quantile(percent: p) ?? 0) <= 0.01)
                #expect(got.allocationDelay.quantile(percent: p) == acc.allocationDelay.quantile(percent: p)
                    || relativeError(got.allocationDelay.quantile(percent: p)!, acc.allocationDelay.quantile(percent: p)!) <= 0.01)
            }
        }
    }

    @Test(arguments: [
        // (from offset, to offset, step, by): aligned, unaligned edges, steps not multiples of the bucket.
        (Micros(0), 3 * day, Micros?.none, KPIDimension?.none),
        (0, 3 * day, hour * 6, .warehouse),
        (90 * minute + 17, 2 * day + 5 * minute, nil, .channel),
        (90 * minute, 2 * day + 30 * minute, 6 * hour, .region),
        (20 * minute, 30 * hour, 90 * minute, .warehouse),
        (10 * minute, 9 * hour + 50 * minute, 37 * minute, nil),
    ])
    func rollupDocumentAgreesWithTheReference(_ fromOffset: Micros, _ toOffset: Micros, _ step: Micros?, _ by: KPIDimension?) throws {
        // One tier of hours, the store's hours and minutes, and three tiers whose finest does not divide evenly into steps.
        for widths in [[hour], [hour, minute], [6 * hour, 15 * minute, minute]] {
            let sim = Self.simulate(seed: 8, widths: widths)
            let q = try KPIQuery(from: Self.start + fromOffset, to: Self.start + toOffset, by: by, step: step)
            let reference = KPIReport.compute(facts: Array(sim.facts.values), query: q)
            // Shuffled arrival retracted some rows' maxima: those rows' buckets come from finer rows and facts.
            #expect(sim.rows.values.contains { !$0.maxIsExact })
            let plan = q.rollupPlan(bucketWidths: widths).settled(by: sim.rollupRows, dimension: q.by)
            // Read exactly what the plan asks for, as a store would.
            let edgeFacts = sim.facts.values.filter { f in
                [f.allocatedAt, f.shippedAt].contains { t in t.map(plan.inFacts) ?? false }
            }
            let fromRollups = KPIReport.compute(query: q, bucketWidths: widths, rows: sim.rollupRows, edgeFacts: edgeFacts)
            expectAgree(fromRollups, reference)
            // Over-reading facts changes nothing: parts answered by rollups are not counted twice.
            let overRead = KPIReport.compute(query: q, bucketWidths: widths, rows: sim.rollupRows, edgeFacts: Array(sim.facts.values))
            #expect(overRead == fromRollups)
            #expect(reference.total.ordersAllocated > 0)
        }
    }

    @Test func rollupPlanCoversTheWindowOnce() throws {
        let q = try KPIQuery(from: Self.start + 90 * minute, to: Self.start + 10 * hour + 5 * minute, step: 4 * hour)
        let plan = q.rollupPlan(bucketWidth: hour)
        // Steps: [01:30, 04:00), [04:00, 08:00), [08:00, 10:05); buckets of 1h inside each.
        #expect(plan.rollupRanges == [[(Self.start + 2 * hour)..<(Self.start + 10 * hour)]])
        #expect(plan.factRanges == [(Self.start + 90 * minute)..<(Self.start + 2 * hour),
                                    (Self.start + 10 * hour)..<(Self.start + 10 * hour + 5 * minute)])
        let odd = try KPIQuery(from: Self.start, to: Self.start + 3 * hour, step: 90 * minute)
        let oddPlan = odd.rollupPlan(bucketWidth: hour)
        // The bucket [01:00, 02:00) straddles the step boundary at 01:30: read from facts.
        #expect(oddPlan.rollupRanges == [[Self.start..<(Self.start + hour), (Self.start + 2 * hour)..<(Self.start + 3 * hour)]])
        #expect(oddPlan.factRanges == [(Self.start + hour)..<(Self.start + 2 * hour)])
        // With minutes under the hours, that bucket comes from minute rows instead, and so do unaligned edges.
        #expect(odd.rollupPlan(bucketWidths: [hour, minute]).rollupRanges
            == [[Self.start..<(Self.start + hour), (Self.start + 2 * hour)..<(Self.start + 3 * hour)], [(Self.start + hour)..<(Self.start + 2 * hour)]])
        #expect(odd.rollupPlan(bucketWidths: [hour, minute]).factRanges.isEmpty)
        // An alert window off the minute: [22:37:30, 23:37:30) holds no whole hour.
        let alert = try KPIQuery(from: Self.start + 22 * hour + 37 * minute + 30 * second, to: Self.start + 23 * hour + 37 * minute + 30 * second)
        let tiered = alert.rollupPlan(bucketWidths: [hour, minute])
        #expect(tiered.rollupRanges == [[], [(Self.start + 22 * hour + 38 * minute)..<(Self.start + 23 * hour + 37 * minute)]])
        #expect(tiered.factRanges == [alert.from..<(Self.start + 22 * hour + 38 * minute), (Self.start + 23 * hour + 37 * minute)..<alert.to])
    }

    /// Property: for random windows, steps and tiers, every instant of every step is covered by exactly
    /// one tier's whole bucket or by the facts, and a tier's bucket never straddles a step boundary.
    /// The same holds once random buckets of each tier are deferred to the finer tiers and facts
    /// (`KPIRollupPlan.deferring`, for rows whose maximum is not known).
    @Test func tieredPlansPartitionEveryStep() throws {
        var rng = SplitMix64(seed: 77)
        let tierSets: [[Micros]] = [[hour], [hour, minute], [day, hour, 5 * minute, minute]]
        for _ in 0..<300 {
            let from = Self.start + Micros(rng.next() % UInt64(2 * day))
            let to = from + 1 + Micros(rng.next() % UInt64(3 * day))
            let step: Micros? = rng.next() % 2 == 0 ? nil : Micros(1 + rng.next() % UInt64(10 * hour))
            guard let q = try? KPIQuery(from: from, to: to, step: step) else { continue }
            let widths = tierSets[Int(rng.next() % 3)]
            let plan = q.rollupPlan(bucketWidths: widths)
            var deferred = plan
            for tier in widths.indices {
                let buckets = deferred.rollupRanges[tier].flatMap { stride(from: $0.lowerBound, to: $0.upperBound, by: Int(widths[tier])) }
                let picked = (0..<Swift.min(buckets.count, 1 + Int(rng.next() % 8))).map { _ in buckets[Int(rng.next() % UInt64(buckets.count))] }
                deferred = deferred.deferring(picked, tier: tier)
                for b in picked {
                    #expect(!deferred.inRollups(KPIRollupKey(dimension: nil, group: nil, bucketStart: b, bucketWidth: widths[tier])))
                }
            }
            expectPartition(plan, q, widths)
            expectPartition(deferred, q, widths)
        }
    }

    func expectPartition(_ plan: KPIRollupPlan, _ q: KPIQuery, _ widths: [Micros], sourceLocation: SourceLocation = #_sourceLocation) {
        var pieces: [Range<Micros>] = plan.factRanges
        for (tier, ranges) in plan.rollupRanges.enumerated() {
            for r in ranges {
                #expect(r.lowerBound % widths[tier] == 0 && r.upperBound % widths[tier] == 0, sourceLocation: sourceLocation)
                for b in stride(from: r.lowerBound, to: r.upperBound, by: Int(widths[tier])) {
                    #expect(q.step == nil || q.stepIndex(b) == q.stepIndex(b + widths[tier] - 1), "bucket \(b) straddles a step",
                            sourceLocation: sourceLocation)
                }
            }
            pieces += ranges
        }
        pieces.sort { $0.lowerBound < $1.lowerBound }
        #expect(pieces.first?.lowerBound == q.from && pieces.last?.upperBound == q.to, sourceLocation: sourceLocation)
        for (a, b) in zip(pieces, pieces.dropFirst()) {
            #expect(a.upperBound == b.lowerBound, "gap or overlap at \(a) \(b)", sourceLocation: sourceLocation)
        }
    }

    @Test func unchangedContributionsNeedNoRollupChange() {
        var f = OrderFacts(orderID: "X")
        f.apply(CloudEvent(id: "1", source: "oms", type: "order.accepted", time: Self.start, subject: "X",
                           data: ["channel": "web", "lines": [["line": "1", "qty": 2]]]))
        f.apply(CloudEvent(id: "2", source: "wms", type: "order.allocated", time: Self.start + minute, subject: "X",
                           data: ["warehouse": "DC-EAST", "lines": [["line": "1", "qty_allocated": 2]]]))
        let before = OrderContribution(f)
        f.apply(CloudEvent(id: "3", source: "wms", type: "order.picked", time: Self.start + hour, subject: "X", data: [:]))
        #expect(KPIRollup.changes(from: before, to: OrderContribution(f), bucketWidth: hour).isEmpty)
        // A later re-allocation does not move the first allocation either.
        f.apply(CloudEvent(id: "4", source: "wms", type: "order.allocated", time: Self.start + 2 * minute, subject: "X",
                           data: ["warehouse": "DC-WEST", "lines": [["line": "1", "qty_allocated": 2]]]))
        #expect(KPIRollup.changes(from: before, to: OrderContribution(f), bucketWidth: hour).isEmpty)
        // A late, earlier allocation moves the order from DC-EAST to DC-NORTH: 4 rows retract, 4 add, 1 (total) both.
        f.apply(CloudEvent(id: "5", source: "wms", type: "order.allocated", time: Self.start + 30 * second, subject: "X",
                           data: ["warehouse": "DC-NORTH", "lines": [["line": "1", "qty_allocated": 1]]]))
        let changes = KPIRollup.changes(from: before, to: OrderContribution(f), bucketWidth: hour)
        #expect(changes.count == 5)
        let total = changes.first { $0.key.dimension == nil }
        #expect(total?.removals.count == 1 && total?.additions.count == 1)
        #expect(changes.first { $0.key.group == "DC-EAST" }?.additions.isEmpty == true)
        #expect(changes.first { $0.key.group == "DC-NORTH" }?.removals.isEmpty == true)
    }

    @Test func accumulatorAddRemoveMergeAreConsistent() throws {
        let contributions = randomOrders(count: 300, seed: 21, start: Self.start).map(OrderContribution.init)
        var all = KPIAccumulator()
        for c in contributions { all.add(c) }
        var rest = KPIAccumulator()
        var rng = SplitMix64(seed: 1)
        for c in contributions {
            if rng.next() % 3 == 0 { all.remove(c) } else { rest.add(c) }
        }
        #expect(all.kpis.fillRate == rest.kpis.fillRate)
        #expect(all.kpis.shipmentLag.p95Seconds == rest.kpis.shipmentLag.p95Seconds)
        #expect(all.ordersAllocated == rest.ordersAllocated && all.onTime == rest.onTime)

        // Merge order is irrelevant.
        let chunks = stride(from: 0, to: contributions.count, by: 50).map { i in
            var a = KPIAccumulator()
            for c in contributions[i..<Swift.min(i + 50, contributions.count)] { a.add(c) }
            return a
        }
        var forward = KPIAccumulator(), backward = KPIAccumulator(), whole = KPIAccumulator()
        for c in chunks { forward.merge(c) }
        for c in chunks.reversed() { backward.merge(c) }
        for c in contributions { whole.add(c) }
        #expect(forward == whole)
        #expect(backward == whole)
        var less = whole
        less.subtract(chunks[0])
        less.merge(chunks[0])
        #expect(less.kpis == whole.kpis)

        // Serialization round trip.
        let bytes = whole.serialized
        #expect(try KPIAccumulator(serialized: bytes) == whole)
        #expect(try KPIAccumulator(serialized: KPIAccumulator().serialized).isEmpty)
        #expect(throws: KPIDecodingError.self) { try KPIAccumulator(serialized: Array(bytes.dropLast(3))) }
        #expect(throws: KPIDecodingError.self) { try KPIAccumulator(serialized: [2] + bytes.dropFirst()) }
    }

    @Test func rollupBlocksRoundTripAndRejectDamage() throws {
        let contributions = randomOrders(count: 60, seed: 5, start: Self.start).map(OrderContribution.init)
        var groups: [String?: KPIAccumulator] = [nil: KPIAccumulator(), "DC-EAST": KPIAccumulator(), "DC-WEST": KPIAccumulator(), "DC-É": KPIAccumulator()]
        for (i, c) in contributions.enumerated() { groups[[nil, "DC-EAST", "DC-É"][i % 3], default: KPIAccumulator()].add(c) }
        let bytes = try #require(KPIRollupBlock.encode(groups.map { ($0.key, $0.value) }))
        let back = try KPIRollupBlock.decode(bytes)
        // Empty groups are left out; names in order, the null group last.
        #expect(back.map(\.group) == ["DC-EAST", "DC-É", nil])
        for (g, acc) in back { #expect(acc == groups[g]!) }
        #expect(KPIRollupBlock.encode([("x", KPIAccumulator())]) == nil)
        // A maximum retracted (not known any more) stays marked through the bytes.
        var retracted = groups["DC-EAST"]!
        retracted.remove(contributions.filter { $0.allocation != nil }.max { $0.allocation!.delay < $1.allocation!.delay }!)
        let marked = try KPIRollupBlock.decode(#require(KPIRollupBlock.encode([("DC-EAST", retracted)])))
        #expect(marked.count == 1 && marked[0].accumulator == retracted && !marked[0].accumulator.maxIsExact)
        #expect(throws: KPIDecodingError.self) { try KPIRollupBlock.decode(Array(bytes.dropLast(2))) }
        #expect(throws: KPIDecodingError.self) { try KPIRollupBlock.decode(bytes + [0]) }
        #expect(throws: KPIDecodingError.self) { try KPIRollupBlock.decode([9] + bytes.dropFirst()) }
    }

    @Test func sketchedFactsPathAgreesWithTheExactOne() throws {
        let orders = randomOrders(count: 500, seed: 4, start: Self.start)
        let q = try KPIQuery(from: Self.start, to: Self.start + 3 * day, by: .channel, step: 12 * hour)
        expectAgree(KPIReport.compute(facts: orders, query: q, quantiles: .sketched), KPIReport.compute(facts: orders, query: q))
    }

    @Test func rollupKeysRoundTripThroughTheirStoredNames() {
        let keys = [KPIRollupKey(dimension: nil, group: nil, bucketStart: 0, bucketWidth: hour),
                    KPIRollupKey(dimension: .warehouse, group: nil, bucketStart: hour, bucketWidth: minute),
                    KPIRollupKey(dimension: .region, group: "EU", bucketStart: -hour, bucketWidth: hour)]
        for k in keys {
            let parsed = KPIRollupKey.parse(storedDimension: k.storedDimension)
            #expect(parsed?.dimension == k.dimension && parsed?.width == k.bucketWidth)
        }
        #expect(keys[1].storedDimension == "warehouse@60s")
        for bad in ["country@60s", "warehouse", "warehouse@", "warehouse@0s", "warehouse@60", "warehouse@xs"] {
            #expect(KPIRollupKey.parse(storedDimension: bad) == nil, "\(bad)")
        }
        #expect(KPIRollup.bucketStart(-1, width: hour) == -hour)
        #expect(KPIRollup.bucketStart(hour, width: hour) == hour)
    }
}
