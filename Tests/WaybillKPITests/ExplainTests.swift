import Testing
import WaybillModel
@testable import WaybillKPI
import WaybillTestSupport

struct ExplainTests {
    static let from = t("2026-11-02T00:00:00Z")

    /// Ten orders allocated 10 s, 20 s, ... 100 s after acceptance; O-03 and O-07 short-allocated.
    static let orders: [OrderFacts] = (1...10).map { i in
        let id = "O-" + String(100 + i).dropFirst()
        return facts(id) {
            let accepted = from + Micros(i) * hour
            $0.accepted(accepted, channel: i % 2 == 0 ? "web" : "store", promised: RFC3339.format(accepted + 2 * hour),
                        lines: [("1", 4), ("2", 1)])
            let qty: Double = i == 3 ? 1 : (i == 7 ? 3 : 4)
            $0.allocated(accepted + Micros(i * 10) * second, lines: [("1", qty), ("2", 1)])
            $0.released(accepted + hour)
            $0.shipped(accepted + hour + Micros(i) * 20 * minute)
        }
    }

    static let query = try! KPIQuery(from: from, to: from + day)

    @Test func quantileExplanationListsTheOrdersAtOrAboveIt() throws {
        // p90 of 10..100 s is the 9th value, 90 s.
        let c = try KPIExplain.contributors(facts: Self.orders, metric: .allocationDelay(.p90), query: Self.query)
        #expect(c.map(\.orderID) == ["O-10", "O-09"])
        #expect(c.map(\.value) == [100, 90])
        #expect(c[0].reason == "allocation delay 1m40s (p90 1m30s)")
        let p50 = try KPIExplain.contributors(facts: Self.orders, metric: .allocationDelay(.p50), query: Self.query, limit: 3)
        #expect(p50.map(\.orderID) == ["O-10", "O-09", "O-08"])
        let slowest = try KPIExplain.contributors(facts: Self.orders, metric: .allocationDelay(.max), query: Self.query, limit: 1)
        #expect(slowest.map(\.orderID) == ["O-10"])
    }

    @Test func fillRateExplanationRanksShortAllocatedOrders() throws {
        let c = try KPIExplain.contributors(facts: Self.orders, metric: .fillRate, query: Self.query)
        #expect(c.map(\.orderID) == ["O-03", "O-07"])
        #expect(c.map(\.value) == [3, 1])
        #expect(c[0].reason == "allocated 2 of 5 units at first allocation (line 1: 1 of 4)")
        #expect(try KPIExplain.contributors(facts: Self.orders, metric: .orderFillRate, query: Self.query).count == 2)
    }

    @Test func onTimeExplanationRanksLateOrdersByLateness() throws {
        // Shipped 1 h + i × 20 min after acceptance, promised 2 h after: late from i = 4 on.
        let c = try KPIExplain.contributors(facts: Self.orders, metric: .onTimeRate, query: Self.query)
        #expect(c.map(\.orderID) == ["O-10", "O-09", "O-08", "O-07", "O-06", "O-05", "O-04"])
        #expect(c.first?.value == Double(140 * 60))
        #expect(c.last?.reason.hasPrefix("shipped 20m late (promised by ") == true)
    }

    @Test func explanationCanBeLimitedToOneGroup() throws {
        let q = try KPIQuery(from: Self.from, to: Self.from + day, by: .channel)
        let c = try KPIExplain.contributors(facts: Self.orders, metric: .fillRate, query: q, group: "store")
        #expect(c.map(\.orderID) == ["O-03", "O-07"])
        #expect(try KPIExplain.contributors(facts: Self.orders, metric: .fillRate, query: q, group: "web").isEmpty)
        #expect(try KPIExplain.contributors(facts: Self.orders, metric: .fillRate, query: q, group: .some(nil)).isEmpty)
    }

    @Test func volumesCannotBeExplained() {
        #expect(throws: KPIQueryError.self) {
            try KPIExplain.contributors(facts: Self.orders, metric: .shipments, query: Self.query)
        }
    }

    @Test func contributorsRenderAsTableJSONAndCSV() throws {
        let c = KPIExplainDocument(metric: "fill_rate", orders: try KPIExplain.contributors(facts: Self.orders, metric: .fillRate, query: Self.query))
        let table = KPIRender.contributors(c, format: .table)
        #expect(table.split(separator: "\n").first == "order  reason")
        #expect(table.contains("O-03   allocated 2 of 5 units at first allocation (line 1: 1 of 4)"))
        let json = try JSONParser.parse(KPIRender.contributors(c, format: .json))
        #expect(json["metric"] == "fill_rate")
        #expect(json["orders"]?.arrayValue?.first == ["order": "O-03", "reason": "allocated 2 of 5 units at first allocation (line 1: 1 of 4)", "value": 3])
        #expect(KPIRender.contributors(c, format: .csv).hasPrefix("order,value,reason\r\nO-03,3,allocated 2 of 5 units at first allocation (line 1: 1 of 4)\r\n"))
        #expect(KPIRender.contributors(KPIExplainDocument(metric: "fill_rate", orders: []), format: .table) == "No orders stand out.\n")
    }

    @Test func unknownMetricNamesGetAnErrorListingTheValidOnes() throws {
        #expect(throws: KPIQueryError.self) { try KPIMetric.parse("p95") }
        do {
            _ = try KPIMetric.parse("allocation_delay.p42_s")
            Issue.record("accepted an unknown metric")
        } catch {
            #expect(error.field == "metric")
            #expect(error.rule.contains("allocation_delay.p95_s"))
        }
        #expect(try KPIMetric.parse("on_time_rate") == .onTimeRate)
    }
}
