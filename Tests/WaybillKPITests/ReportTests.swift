import Testing
import WaybillModel
@testable import WaybillKPI
import WaybillTestSupport

struct ReportTests {
    static let from = KPIDefinitionTests.from
    static let to = KPIDefinitionTests.to

    static func current(step: Micros? = 6 * hour) throws -> KPIDocument {
        KPIReport.compute(facts: KPIDefinitionTests.all, query: try KPIQuery(from: from, to: to, by: .warehouse, step: step))
    }

    /// The day before: one order allocated from DC-EAST, fully and in 60 s, shipped on time.
    static func previous(_ q: KPIQuery) -> KPIDocument {
        let base = q.previous.from
        let o = facts("P") {
            $0.accepted(base + hour, promised: RFC3339.format(base + 10 * hour), lines: [("1", 2)])
            $0.allocated(base + hour + minute, warehouse: "DC-EAST", lines: [("1", 2)])
            $0.released(base + 2 * hour)
            $0.shipped(base + 3 * hour, warehouse: "DC-EAST")
        }
        return KPIReport.compute(facts: [o], query: q.previous)
    }

    @Test func valuesAreFormattedWithUnits() {
        #expect(KPIFormatting.value(0.6875, .ratio) == "68.8%")
        #expect(KPIFormatting.value(nil, .ratio) == "–")
        #expect(KPIFormatting.seconds(0.25) == "0.25s")
        #expect(KPIFormatting.seconds(42) == "42.0s")
        #expect(KPIFormatting.seconds(750) == "12.5min")
        #expect(KPIFormatting.seconds(16_200) == "4.5h")
        #expect(KPIFormatting.value(3, .count) == "3")
        #expect(KPIFormatting.fixed(-0.04, 1) == "0.0")
        #expect(KPIFormatting.fixed(2.349, 2) == "2.35")
        #expect(KPIFormatting.change(.fillRate, current: 0.6875, previous: 1) == .init(text: "-31.3 pp", good: false))
        #expect(KPIFormatting.change(.allocationDelay(.p95), current: 3600, previous: 60) == .init(text: "+5900.0%", good: false))
        #expect(KPIFormatting.change(.allocationDelay(.p95), current: 30, previous: 60) == .init(text: "-50.0%", good: true))
        #expect(KPIFormatting.change(.shipments, current: 3, previous: 0).text == "new")
        #expect(KPIFormatting.change(.onTimeRate, current: nil, previous: 0.5).text == "–")
    }

    @Test func tableShowsTotalsAgainstThePreviousWindowAndAlignsColumns() throws {
        let d = try Self.current()
        let text = KPIRender.table(current: d, previous: Self.previous(d.query))
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        #expect(lines[0] == "KPIs 2026-11-02T00:00:00Z → 2026-11-03T00:00:00Z (1d), by warehouse, step 6h")
        #expect(lines[1] == "change vs 2026-11-01T00:00:00Z → 2026-11-02T00:00:00Z (1d)")
        let fill = try #require(lines.first { $0.hasPrefix("Fill rate ") })
        #expect(fill.split(separator: " ", omittingEmptySubsequences: true).suffix(4) == ["68.8%", "100.0%", "-31.3", "pp"])
        let p95 = try #require(lines.first { $0.hasPrefix("Allocation delay p95") })
        #expect(p95.split(separator: " ").suffix(3) == ["1.0h", "1.0min", "+5900.0%"])
        // Every row of the totals block has the same width up to its right-aligned last column.
        let block = lines[3..<(3 + KPIMetric.all.count - 1)]
        #expect(Set(block.map(\.count)).count == 1)
        #expect(text.contains("\nBy warehouse"))
        #expect(lines.contains { $0.hasPrefix("(none) ") })
        #expect(lines.contains { $0.hasPrefix("DC-WEST ") && $0.contains("0.0% (new)") == false })
        #expect(text.contains("Series warehouse = DC-EAST"))
        #expect(lines.contains { $0.hasPrefix("2026-11-02T06:00:00Z") })
    }

    @Test func tableWithoutPreviousHasNoChangeColumns() throws {
        let text = KPIRender.table(current: try Self.current(step: nil), previous: nil)
        #expect(!text.contains("previous"))
        #expect(!text.contains("Series"))
        #expect(text.contains("Orders allocated"))
    }

    @Test func csvHasOneRowPerTotalGroupAndPoint() throws {
        let d = try Self.current()
        let csv = KPIRender.csv(d)
        let rows = csv.split(separator: "\r\n").map(String.init)
        #expect(rows.count == 1 + 1 + 3 + 3 * 4)
        #expect(rows[0].hasPrefix("scope,warehouse,start,end,orders_allocated,fill_rate,order_fill_rate,allocation_delay_count,allocation_delay_mean_s,"))
        #expect(rows[1].hasPrefix("total,,2026-11-02T00:00:00Z,2026-11-03T00:00:00Z,3,0.6875,"))
        #expect(rows[4].hasPrefix("group,,"))  // the null group, last
        #expect(rows.filter { $0.hasPrefix("series,DC-WEST,") }.count == 4)
        let header = rows[0].split(separator: ",")
        #expect(rows.allSatisfy { $0.split(separator: ",", omittingEmptySubsequences: false).count == header.count })
        #expect(KPIRender.csvField("DC \"East\", 2") == "\"DC \"\"East\"\", 2\"")
        #expect(KPIRender.csvField("=HYPERLINK(1)") == "'=HYPERLINK(1)")
        #expect(KPIRender.csvField("-1.5") == "-1.5")
    }

    @Test func jsonFormatIsTheDocument() throws {
        let d = try Self.current()
        let text = KPIRender.render(.json, current: d, previous: nil)
        #expect(text == d.json.jsonString + "\n")
        #expect(try KPIDocument(json: JSONParser.parse(text)) == d)
    }

    @Test func htmlIsSelfContainedWithTilesChartsWorstGroupsAndTraceLinks() throws {
        let d = try Self.current()
        let contributors = [KPIContributor(orderID: "A", reason: "allocated 6 of 10 units", value: 4),
                            KPIContributor(orderID: "ORD/<1>&", reason: "shipped \"late\"", value: 1)]
        let html = KPIRender.html(current: d, previous: Self.previous(d.query), contributors: contributors)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(!html.contains("http://") && !html.contains("https://") && !html.contains("<script") && !html.contains("<link"))
        #expect(html.contains("<style>"))
        for label in ["Fill rate", "Order fill rate", "Allocation delay p95", "Shipment lag p95", "On-time rate"] {
            #expect(html.contains("<div class=\"label\">\(label)</div>"))
        }
        #expect(html.contains("<div class=\"value\">68.8%</div><div class=\"change bad\">-31.3 pp</div>"))
        #expect(html.components(separatedBy: "<svg ").count - 1 == 7)
        #expect(html.contains("<th>warehouse</th>"))
        #expect(html.contains("<a href=\"/traces/A\">A</a> — allocated 6 of 10 units"))
        #expect(html.contains("<a href=\"/traces/ORD%2F%3C1%3E%26\">ORD/&lt;1&gt;&amp;</a> — shipped &quot;late&quot;"))
        // Mean rank over the headline KPIs (0 = worst of a column): the null group is worst on order fill
        // rate and p95 delay, best on fill rate (1/3); DC-WEST worst on on-time, best on lag (1/2);
        // DC-EAST worst on fill rate and lag, best on the other three (3/5).
        let rows = html.components(separatedBy: "<tr><td>").dropFirst().map { String($0.prefix { $0 != "<" }) }
        #expect(rows == ["(none)", "DC-WEST", "DC-EAST"])
        #expect(html.contains("<td class=\"worst\">66.7%"))
    }

    @Test func htmlWithoutSeriesOrGroupsSaysSo() throws {
        let d = KPIReport.compute(facts: [OrderFacts](), query: try KPIQuery(from: Self.from, to: Self.to))
        let html = KPIRender.html(current: d, previous: nil)
        #expect(html.contains("No time series"))
        #expect(html.contains("No orders stand out"))
        #expect(!html.contains("Worst groups"))
        #expect(html.contains("<div class=\"value\">–</div>"))
    }
}
