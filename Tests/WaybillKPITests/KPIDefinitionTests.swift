import Testing
import WaybillModel
@testable import WaybillKPI
import WaybillTestSupport

/// Hand-computed fixtures for the definitions of kpis.md. Window: 2026-11-02, UTC.
struct KPIDefinitionTests {
    static let from = t("2026-11-02T00:00:00Z")
    static let to = t("2026-11-03T00:00:00Z")

    /// Ties on first allocation (smallest id wins), a later re-allocation, partial first allocation,
    /// shipped from another warehouse; promised in +01:00 and shipped 15 minutes late.
    static let a = facts("A") {
        $0.accepted(t("2026-11-02T10:00:00Z"), channel: "web", region: "EU", promised: "2026-11-02T17:15:00+01:00",
                    lines: [("1", 4), ("2", 6)])
        $0.allocated(t("2026-11-02T10:05:00Z"), warehouse: "DC-WEST", lines: [("1", 4), ("2", 6)], id: "a-2")
        $0.allocated(t("2026-11-02T10:05:00Z"), warehouse: "DC-EAST", lines: [("1", 4), ("2", 2)], id: "a-1")
        $0.allocated(t("2026-11-02T10:30:00Z"), warehouse: "DC-WEST", lines: [("1", 4), ("2", 6)], id: "a-3")
        $0.released(t("2026-11-02T12:00:00Z"))
        $0.shipped(t("2026-11-02T16:30:00Z"), warehouse: "DC-WEST")
    }
    /// Allocated before acceptance (clamped to 0), over-allocated (capped), a line not ordered (counts 0),
    /// no region; promised in -05:00 and shipped 15 minutes early.
    static let b = facts("B") {
        $0.accepted(t("2026-11-02T11:00:00Z"), channel: "store", region: nil, promised: "2026-11-02T12:45:00-05:00", lines: [("1", 2)])
        $0.allocated(t("2026-11-02T10:59:00Z"), warehouse: "DC-EAST", lines: [("1", 5), ("9", 3)])
        $0.released(t("2026-11-02T12:00:00Z"))
        $0.shipped(t("2026-11-02T17:30:00Z"), warehouse: "DC-EAST")
    }
    /// No channel, no allocation warehouse, a line left out of the allocation; shipped exactly at `to` (excluded).
    static let c = facts("C") {
        $0.accepted(t("2026-11-02T20:00:00Z"), channel: nil, region: "US", lines: [("1", 3), ("2", 1)])
        $0.allocated(t("2026-11-02T21:00:00Z"), warehouse: nil, lines: [("1", 3)])
        $0.released(t("2026-11-02T23:00:00Z"))
        $0.shipped(t("2026-11-03T00:00:00Z"), warehouse: "DC-EAST")
    }
    /// Allocated just before `from` (excluded), shipped exactly at `from` (included), no promised date.
    static let d = facts("D") {
        $0.accepted(t("2026-11-01T23:00:00Z"), channel: "web", region: "EU")
        $0.allocated(t("2026-11-01T23:59:59.999999Z"))
        $0.released(t("2026-11-01T23:00:00Z"))
        $0.shipped(t("2026-11-02T00:00:00Z"), warehouse: "DC-EAST")
    }
    /// Allocated and shipped in the window but never accepted nor released: counts nowhere.
    static let e = facts("E") {
        $0.allocated(t("2026-11-02T09:00:00Z"))
        $0.shipped(t("2026-11-02T09:30:00Z"))
    }
    /// Accepted only.
    static let f = facts("F") { $0.accepted(t("2026-11-02T09:00:00Z")) }

    static let all = [a, b, c, d, e, f]

    func doc(by: KPIDimension? = nil, step: Micros? = nil, from: Micros = from, to: Micros = to,
             _ facts: [OrderFacts] = all) throws -> KPIDocument
    {
        KPIReport.compute(facts: facts, query: try KPIQuery(from: from, to: to, by: by, step: step))
    }

    @Test func orderContributionsFollowTheFactDefinitions() throws {
        let a = try #require(OrderContribution(Self.a).allocation)
        #expect(a.at == t("2026-11-02T10:05:00Z"))
        #expect(a.warehouse == "DC-EAST")  // a-1 beats a-2 at the same time
        #expect(a.unitsOrdered == Units.micro(10))
        #expect(a.unitsAllocatedFirst == Units.micro(6))
        #expect(!a.fullyAllocatedFirst)
        #expect(a.delay == 300 * second)
        let aShip = try #require(OrderContribution(Self.a).shipment)
        #expect(aShip.warehouse == "DC-WEST")
        #expect(aShip.lag == Micros(16_200) * second)
        #expect(aShip.onTime == false)

        let b = try #require(OrderContribution(Self.b).allocation)
        #expect(b.delay == 0)
        #expect(b.unitsAllocatedFirst == Units.micro(2))
        #expect(b.fullyAllocatedFirst)
        #expect(b.region == nil)
        #expect(OrderContribution(Self.b).shipment?.onTime == true)

        #expect(OrderContribution(Self.c).allocation?.fullyAllocatedFirst == false)
        #expect(OrderContribution(Self.d).shipment?.onTime == nil)
        #expect(OrderContribution(Self.e).isEmpty)
        #expect(OrderContribution(Self.f).isEmpty)
    }

    @Test func totalsOverTheWindow() throws {
        let k = try doc().total
        #expect(k.ordersAllocated == 3)
        #expect(k.fillRate == 11.0 / 16.0)
        #expect(k.orderFillRate == 1.0 / 3.0)
        #expect(k.allocationDelay == DistributionSummary(count: 3, meanSeconds: 1300, p50Seconds: 300, p90Seconds: 3600,
                                                         p95Seconds: 3600, p99Seconds: 3600, maxSeconds: 3600))
        #expect(k.shipments == 3)
        #expect(k.shipmentLag == DistributionSummary(count: 3, meanSeconds: 13_200, p50Seconds: 16_200, p90Seconds: 19_800,
                                                     p95Seconds: 19_800, p99Seconds: 19_800, maxSeconds: 19_800))
        #expect(k.onTimeRate == 0.5)
    }

    @Test func byWarehouseUsesTheAllocationAndTheShipmentWarehouses() throws {
        let d = try doc(by: .warehouse)
        #expect(d.groups.map(\.value) == ["DC-EAST", "DC-WEST", nil])
        let east = try #require(d.group("DC-EAST")).kpis
        #expect(east.ordersAllocated == 2)
        #expect(east.fillRate == 8.0 / 12.0)
        #expect(east.orderFillRate == 0.5)
        #expect(east.allocationDelay == DistributionSummary(count: 2, meanSeconds: 150, p50Seconds: 0, p90Seconds: 300,
                                                            p95Seconds: 300, p99Seconds: 300, maxSeconds: 300))
        #expect(east.shipments == 2)
        #expect(east.shipmentLag.p50Seconds == 3600)
        #expect(east.shipmentLag.meanSeconds == 11_700)
        #expect(east.onTimeRate == 1)  // B on time, D undefined

        let west = try #require(d.group("DC-WEST")).kpis
        #expect(west.ordersAllocated == 0)
        #expect(west.fillRate == nil)
        #expect(west.orderFillRate == nil)
        #expect(west.allocationDelay == .empty)
        #expect(west.shipments == 1)
        #expect(west.onTimeRate == 0)

        let none = try #require(d.group(nil)).kpis
        #expect(none.ordersAllocated == 1)
        #expect(none.fillRate == 0.75)
        #expect(none.orderFillRate == 0)
        #expect(none.shipments == 0)
        #expect(none.onTimeRate == nil)
        #expect(d.series.isEmpty)
    }

    @Test func missingChannelAndRegionFallInTheNullGroup() throws {
        let byChannel = try doc(by: .channel)
        #expect(byChannel.groups.map(\.value) == ["store", "web", nil])
        #expect(byChannel.group(nil)?.kpis.ordersAllocated == 1)  // C
        #expect(byChannel.group("web")?.kpis.shipments == 2)  // A and D
        let byRegion = try doc(by: .region)
        #expect(byRegion.groups.map(\.value) == ["EU", "US", nil])
        #expect(byRegion.group(nil)?.kpis.ordersAllocated == 1)  // B
        #expect(byRegion.group(nil)?.kpis.shipments == 1)
        #expect(byRegion.group("US")?.kpis.shipments == 0)  // C shipped at `to`
    }

    @Test func windowIsHalfOpen() throws {
        // Moving `to` one microsecond later takes C's shipment in; moving `from` one later drops D's.
        #expect(try doc(to: Self.to + 1).total.shipments == 4)
        #expect(try doc(from: Self.from + 1).total.shipments == 2)
        #expect(try doc(from: Self.from - 1).total.ordersAllocated == 4)
    }

    @Test func seriesStepsAreAlignedToTheEpoch() throws {
        let d = try doc(step: 6 * hour)
        #expect(d.series.count == 1)
        let points = d.series[0].points
        #expect(points.map(\.start) == [0, 6, 12, 18].map { Self.from + Micros($0) * hour })
        #expect(points.map(\.kpis.ordersAllocated) == [0, 2, 0, 1])
        #expect(points.map(\.kpis.shipments) == [1, 0, 2, 0])
        #expect(points[1].kpis.fillRate == 8.0 / 12.0)
        #expect(points[2].kpis.onTimeRate == 0.5)
        #expect(points[0].kpis.fillRate == nil)

        let q = try KPIQuery(from: t("2026-11-02T01:30:00Z"), to: t("2026-11-02T13:00:00Z"), step: 6 * hour)
        #expect(q.steps == [t("2026-11-02T01:30:00Z")..<t("2026-11-02T06:00:00Z"),
                            t("2026-11-02T06:00:00Z")..<t("2026-11-02T12:00:00Z"),
                            t("2026-11-02T12:00:00Z")..<t("2026-11-02T13:00:00Z")])
        // An unaligned `from`: the first point is still named by its aligned step, but counts only [from, 06:00).
        let cut = try doc(step: 6 * hour, from: Self.from + 90 * minute)
        #expect(cut.series[0].points.first?.start == Self.from)
        #expect(cut.series[0].points.first?.end == Self.from + 6 * hour)
        #expect(cut.series[0].points.first?.kpis.shipments == 0)  // D shipped at 00:00
        // A step that does not divide a day still aligns to the epoch, not to the window.
        let odd = try KPIQuery(from: t("2026-11-02T00:00:00Z"), to: t("2026-11-02T00:20:00Z"), step: 7 * minute)
        // 2026-11-02T00:00Z is 1793577600 s = 4270422 × 420 s + 360 s: boundaries fall at :01, :08, :15.
        #expect(odd.steps.map(\.lowerBound) == [t("2026-11-02T00:00:00Z"), t("2026-11-02T00:01:00Z"), t("2026-11-02T00:08:00Z"),
                                                t("2026-11-02T00:15:00Z")])
        // Before the epoch too.
        let early = try KPIQuery(from: -90 * minute, to: 0, step: hour)
        #expect(early.steps == [(-90 * minute)..<(-hour), (-hour)..<0])
    }

    @Test func seriesByGroupAreDenseAndSorted() throws {
        let d = try doc(by: .warehouse, step: 12 * hour)
        #expect(d.series.map(\.value) == ["DC-EAST", "DC-WEST", nil])
        #expect(d.series.allSatisfy { $0.points.count == 2 })
        #expect(d.series[0].points.map(\.kpis.ordersAllocated) == [2, 0])
        #expect(d.series[0].points.map(\.kpis.shipments) == [1, 1])
        #expect(d.series[1].points.map(\.kpis.shipments) == [0, 1])
    }

    @Test func documentJSONIsTheInterfaceShape() throws {
        let b = #"{"allocation_delay":{"count":1,"max_s":0,"mean_s":0,"p50_s":0,"p90_s":0,"p95_s":0,"p99_s":0},"fill_rate":1,"on_time_rate":1,"order_fill_rate":1,"orders_allocated":1,"shipment_lag":{"count":1,"max_s":19800,"mean_s":19800,"p50_s":19800,"p90_s":19800,"p95_s":19800,"p99_s":19800},"shipments":1}"#
        let expected = #"{"by":"channel","from":"2026-11-02T00:00:00Z","groups":[{"key":{"channel":"store"},"kpis":"# + b
            + #"}],"series":[],"step_s":null,"to":"2026-11-03T00:00:00Z","total":"# + b + "}"
        #expect(try doc(by: .channel, [Self.b]).json.jsonString == expected)

        let empty = #"{"allocation_delay":{"count":0,"max_s":null,"mean_s":null,"p50_s":null,"p90_s":null,"p95_s":null,"p99_s":null},"fill_rate":null,"on_time_rate":null,"order_fill_rate":null,"orders_allocated":0,"shipment_lag":{"count":0,"max_s":null,"mean_s":null,"p50_s":null,"p90_s":null,"p95_s":null,"p99_s":null},"shipments":0}"#
        let none = try doc(step: day, [])
        #expect(none.json.jsonString == #"{"by":null,"from":"2026-11-02T00:00:00Z","groups":[],"series":[{"key":{},"points":[{"end":"2026-11-03T00:00:00Z","kpis":"#
            + empty + #","start":"2026-11-02T00:00:00Z"}]}],"step_s":86400,"to":"2026-11-03T00:00:00Z","total":"# + empty + "}")
    }

    @Test func documentJSONReadsBack() throws {
        for d in [try doc(by: .warehouse, step: 6 * hour), try doc(), try doc(by: .region)] {
            #expect(try KPIDocument(json: d.json) == d)
        }
    }

    @Test func documentIsIndependentOfOrderAndEventOrder() throws {
        let scripts = randomScripts(count: 300, seed: 11, start: Self.from, days: 2)
        let q = try KPIQuery(from: Self.from, to: Self.from + 2 * day, by: .warehouse, step: 4 * hour)
        let reference = KPIReport.compute(facts: scripts.map(\.facts), query: q)
        var rng = SplitMix64(seed: 5)
        for _ in 0..<3 {
            let shuffled = scripts.shuffled(using: &rng).map { s in
                var f = OrderFacts(orderID: s.order)
                for e in s.events.shuffled(using: &rng) { f.apply(e) }
                return f
            }
            #expect(KPIReport.compute(facts: shuffled, query: q).json.jsonString == reference.json.jsonString)
        }
        #expect(reference.total.ordersAllocated > 100)
        #expect(reference.groups.contains { $0.value == nil })
    }

    @Test func metricNamesRoundTrip() {
        for m in KPIMetric.all { #expect(KPIMetric(m.description) == m) }
        #expect(KPIMetric("allocation_delay.p95_s") == .allocationDelay(.p95))
        #expect(KPIMetric("allocation_delay") == nil)
        #expect(KPIMetric("fill") == nil)
        #expect(KPIMetric("shipment_lag.p42_s") == nil)
    }

    @Test func queryParametersAreValidated() throws {
        let now = t("2026-11-23T14:00:00Z")
        let q = try KPIQuery.parse(from: "-7d", to: nil, by: "region", step: "1h", now: now)
        #expect(q.from == now - 7 * day)
        #expect(q.to == now)
        #expect(q.by == .region)
        #expect(q.step == hour)
        #expect(q.previous.to == q.from)
        #expect(q.previous.from == now - 14 * day)
        #expect(throws: KPIQueryError(field: "by", rule: "'country' is not one of warehouse, channel, region")) {
            try KPIQuery.parse(from: nil, to: nil, by: "country", step: nil, now: now)
        }
        #expect(throws: KPIQueryError.self) { try KPIQuery.parse(from: "yesterday", to: nil, by: nil, step: nil, now: now) }
        #expect(throws: KPIQueryError.self) { try KPIQuery.parse(from: "now", to: "-1h", by: nil, step: nil, now: now) }
        #expect(throws: KPIQueryError.self) { try KPIQuery.parse(from: "-30d", to: nil, by: nil, step: "1s", now: now) }
        #expect(throws: KPIQueryError.self) { try KPIQuery(from: 0, to: hour, step: 0) }
    }
}
