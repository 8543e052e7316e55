import Testing
@testable import WaybillModel

/// Builds events the way a producer sends them.
func event(_ id: String, _ type: String, _ time: String, subject: String = "ORD-1", source: String = "test",
           _ data: JSONValue? = nil) -> CloudEvent
{
    CloudEvent(id: id, source: source, type: type, time: RFC3339.parse(time)!, subject: subject, data: data)
}

func facts(_ events: [CloudEvent]) -> OrderFacts {
    var f = OrderFacts(orderID: events.first?.subject ?? "ORD-1")
    for e in events { f.apply(e) }
    return f
}

@Suite struct OrderFactsTests {
    static let lifecycle: [CloudEvent] = [
        event("a1", "order.accepted", "2026-11-23T14:00:00Z", ["channel": "web", "region": "EU", "promised_ship_by": "2026-11-24T12:00:00+01:00",
                                                               "lines": [["line": 1, "sku": "A", "qty": 6], ["line": "2", "sku": "B", "qty": 4]]]),
        // A later duplicate acceptance with other data never wins.
        event("a0", "order.accepted", "2026-11-23T14:05:00Z", ["channel": "phone", "lines": [["line": 1, "qty": 100]]]),
        event("al2", "order.allocated", "2026-11-23T14:01:00Z", ["warehouse": "DC-WEST", "lines": [["line": 1, "qty_allocated": 6]]]),
        // Same time as al2: the smaller id is the first allocation. Over-allocation is capped at the ordered quantity.
        event("al1", "order.allocated", "2026-11-23T14:01:00Z", ["warehouse": "DC-EAST", "lines": [
            ["line": "1", "qty_allocated": 9], ["line": 2, "qty_allocated": 0], ["line": 7, "qty_allocated": 5]]]),
        event("r1", "order.released", "2026-11-23T15:00:00Z", ["warehouse": "DC-EAST"]),
        event("s1", "order.shipped", "2026-11-23T14:30:00Z", ["warehouse": "DC-EAST", "carrier": "UPS", "tracking": "1Z"]),
    ]

    /// Many lines (looked up through a dictionary past 16) and few give the same fill, repeated line ids added up.
    @Test(arguments: [3, 16, 17, 40])
    func fillSumsRepeatedLinesAtAnyOrderSize(_ n: Int) {
        // Each line id twice in the order (2 + 1 units); allocated 3 for even ids, 2 for odd ones, plus an unordered line.
        let ordered: [JSONValue] = (0..<n).flatMap { i -> [JSONValue] in [["line": .number(Double(i)), "qty": 2], ["line": .number(Double(i)), "qty": 1]] }
        let allocated: [JSONValue] = (0..<n).map { i in ["line": .number(Double(i)), "qty_allocated": .number(i % 2 == 0 ? 3 : 2)] }
            + [["line": "extra", "qty_allocated": 5]]
        let f = facts([event("a", "order.accepted", "2026-11-23T14:00:00Z", ["lines": .array(ordered)]),
                       event("b", "order.allocated", "2026-11-23T14:01:00Z", ["warehouse": "W", "lines": .array(allocated)])])
        #expect(f.unitsOrdered == Double(3 * n))
        #expect(f.unitsAllocatedFirst == Double(3 * ((n + 1) / 2) + 2 * (n / 2)))
        #expect(f.fullyAllocatedFirst == false)
        let full = facts([event("a", "order.accepted", "2026-11-23T14:00:00Z", ["lines": .array(ordered)]),
                          event("b", "order.allocated", "2026-11-23T14:01:00Z", ["lines": .array((0..<n).map { i in ["line": .number(Double(i)), "qty_allocated": 3] })])])
        #expect(full.fullyAllocatedFirst == true)
        #expect(full.unitsAllocatedFirst == Double(3 * n))
    }

    @Test func derivesTheFactsOfKpisMd() {
        let f = facts(Self.lifecycle)
        #expect(f.acceptedAt == RFC3339.parse("2026-11-23T14:00:00Z"))
        #expect(f.channel == "web")
        #expect(f.unitsOrdered == 10)
        #expect(f.firstAllocation?.ref.id == "al1")
        #expect(f.allocationWarehouse == "DC-EAST")
        #expect(f.unitsAllocatedFirst == 6)  // min(9, 6) + min(0, 4) + line 7 not ordered
        #expect(f.fullyAllocatedFirst == false)
        #expect(f.allocationDelay == 60)
        #expect(f.shipmentLag == 0)  // shipped before released: clamped
        #expect(f.onTime == true)  // 14:30Z <= 11:00Z next day
        #expect(f.state == .shipped)
        #expect(f.eventCount == 6)
    }

    @Test func onTimeComparesInstantsAcrossTimeZones() {
        let f = facts([
            event("a", "order.accepted", "2026-11-23T10:00:00Z", ["promised_ship_by": "2026-11-23T12:00:00+02:00", "lines": []]),
            event("s", "order.shipped", "2026-11-23T10:30:00Z", ["warehouse": "W"]),
        ])
        #expect(f.onTime == false)  // promised 10:00Z, shipped 10:30Z
    }

    @Test func undefinedFactsStayUndefined() {
        let f = facts([event("s", "order.shipped", "2026-11-23T10:30:00Z", ["warehouse": "W"])])
        #expect(f.allocationDelay == nil)
        #expect(f.shipmentLag == nil)
        #expect(f.unitsAllocatedFirst == nil)
        #expect(f.onTime == nil)
    }

    @Test func cancelledEndsTheLifecycle() {
        let f = facts([event("a", "order.accepted", "2026-11-23T10:00:00Z"), event("c", "order.cancelled", "2026-11-23T09:00:00Z", ["reason": "x"])])
        #expect(f.state == .cancelled)
    }

    /// Property: any permutation of the same distinct events gives identical facts.
    @Test func factsDoNotDependOnArrivalOrder() {
        var rng = SplitMix64(seed: 7)
        let reference = facts(Self.lifecycle)
        for _ in 0..<500 {
            #expect(facts(Self.lifecycle.shuffled(using: &rng)) == reference)
        }
    }

    @Test func storageFormRoundTrips() {
        let f = facts(Self.lifecycle)
        #expect(OrderFacts(storageJSON: try! JSONParser.parse(f.storageJSON.jsonBytes)) == f)
    }
}

@Suite struct OrderFactsMergeTests {
    /// Property: splitting the events into two parts, folding each and merging equals folding all.
    @Test func mergeOfPartsEqualsTheWhole() {
        var rng = SplitMix64(seed: 11)
        let events = OrderFactsTests.lifecycle
        let whole = facts(events)
        for _ in 0..<300 {
            let shuffled = events.shuffled(using: &rng)
            let cut = Int(rng.next() % UInt64(events.count + 1))
            var left = OrderFacts(orderID: "ORD-1")
            for e in shuffled[..<cut] { left.apply(e) }
            var right = OrderFacts(orderID: "ORD-1")
            for e in shuffled[cut...] { right.apply(e) }
            var a = left
            a.merge(right)
            var b = right
            b.merge(left)
            #expect(a == whole)
            #expect(b == whole)
        }
    }

    @Test func foldGroupsOrderEventsBySubject() {
        let folded = OrderFacts.fold(OrderFactsTests.lifecycle + [event("x", "order.accepted", "2026-11-23T10:00:00Z", subject: "ORD-2"),
                                                                  event("y", "shipment.delivered", "2026-11-23T10:00:00Z", subject: "shipment:1")])
        #expect(Set(folded.keys) == ["ORD-1", "ORD-2"])
        #expect(folded["ORD-1"] == facts(OrderFactsTests.lifecycle))
    }
}

@Suite struct OrderFactsStorageTests {
    @Test func directStorageBytesEqualTheGenericEncoding() {
        var rng = SplitMix64(seed: 3)
        var cases = [OrderFacts(orderID: "empty"), facts(OrderFactsTests.lifecycle)]
        for _ in 0..<50 {
            let subset = OrderFactsTests.lifecycle.filter { _ in rng.next() % 2 == 0 }
            cases.append(facts(subset))
        }
        var noOptionals = facts([event("a", "order.accepted", "2026-11-23T10:00:00Z", ["lines": [["line": 1, "qty": 2.5]]]),
                                 event("s", "order.shipped", "2026-11-23T11:00:00Z", [:])])
        noOptionals.types.insert("x\"quoted\"")
        cases.append(noOptionals)
        for f in cases {
            #expect(String(decoding: f.storageBytes, as: UTF8.self) == f.storageJSON.jsonString)
        }
    }
}
