import Testing
import WaybillModel
@testable import WaybillKPI
import WaybillTestSupport

struct TelemetrySplitTests {
    static func span(_ service: String, _ start: Micros, _ ms: Int64, error: Bool = false) -> Span {
        Span(traceID: String(repeating: "a", count: 32), spanID: String(repeating: "b", count: 16), service: service, name: "op",
             start: start, end: start + ms * 1000, status: error ? .error : .ok)
    }

    @Test func telemetrySummarisesSpansPerService() {
        let t = OrderTelemetry(spans: [Self.span("erp", 0, 300, error: true), Self.span("erp", 0, 200), Self.span("wms", 0, 50)])
        #expect(t.spans == 3)
        #expect(t.errorSpans == 1)
        #expect(t.errorSpansByService == ["erp": 1])
        #expect(t.spanTimeByService == ["erp": 500_000, "wms": 50_000])
    }

    @Test func reportSplitsOrdersByErrorSpansInAService() throws {
        // A's trace has an erp error, B's only a wms error, C has no known trace.
        let telemetry: [String: OrderTelemetry] = [
            "A": OrderTelemetry(spans: [Self.span("erp", 0, 10, error: true)]),
            "B": OrderTelemetry(spans: [Self.span("wms", 0, 10, error: true), Self.span("erp", 0, 10)]),
        ]
        let q = try KPIQuery(from: KPIDefinitionTests.from, to: KPIDefinitionTests.to, by: .warehouse)
        let d = KPIReport.compute(facts: KPIDefinitionTests.all, query: q, split: .errorSpansIn(service: "erp")) { telemetry[$0.orderID] }
        #expect(d.groupKeyName == "error_spans:erp")
        #expect(d.query.by == nil)
        #expect(d.groups.map(\.value) == ["with_error", "without_error", nil])
        #expect(d.group("with_error")?.kpis.allocationDelay.p50Seconds == 300)
        #expect(d.group("with_error")?.kpis.shipments == 1)
        #expect(d.group("without_error")?.kpis.allocationDelay.p50Seconds == 0)
        #expect(d.group(nil)?.kpis.ordersAllocated == 1)  // C
        #expect(d.group(nil)?.kpis.shipments == 1)  // D
        #expect(d.total == KPIReport.compute(facts: KPIDefinitionTests.all, query: q).total)
        let json = d.json
        #expect(json["by"] == "error_spans:erp")
        #expect(json["groups"]?.arrayValue?.first?["key"] == ["error_spans:erp": "with_error"])
        #expect(try KPIDocument(json: json) == d)
        #expect(KPIRender.table(current: d, previous: nil).contains("By error_spans:erp"))
    }

    @Test func spanTimeSplitComparesWithTheThreshold() {
        let split = TelemetrySplit.spanTime(service: "erp", above: 2 * second)
        #expect(split.name == "span_time:erp>2s")
        #expect(split.label(OrderTelemetry(spans: [Self.span("erp", 0, 2_000)])) == "at_or_below")
        #expect(split.label(OrderTelemetry(spans: [Self.span("erp", 0, 1_500), Self.span("erp", 0, 600)])) == "above")
        #expect(split.label(nil) == nil)
        #expect(TelemetrySplit.errorSpans.label(OrderTelemetry()) == "without_error")
    }
}
