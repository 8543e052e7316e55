import Testing
import WaybillModel
@testable import WaybillKPI
import WaybillTestSupport

@Suite struct ServiceReportTests {
    func span(_ id: String, parent: String? = nil, _ service: String, ms: Int, error: Bool = false) -> Span {
        Span(traceID: String(repeating: "a", count: 32), spanID: String(repeating: id, count: 16),
             parentSpanID: parent.map { String(repeating: $0, count: 16) }, service: service, name: "x",
             start: 1_000_000, end: 1_000_000 + Micros(ms) * 1000, status: error ? .error : .ok)
    }

    @Test func ratesPercentilesAndEdgesBetweenServices() {
        var spans = [span("1", "orchestrator", ms: 100)]
        for (i, ms) in [10, 20, 30, 40].enumerated() { spans.append(span(String(i + 2), parent: "1", "erp", ms: ms, error: i == 3)) }
        spans.append(span("7", parent: "2", "erp", ms: 5))  // same service as its parent: not an edge
        let r = ServiceReport(spans: spans, from: 0, to: 10_000_000)
        let erp = r.services.first { $0.service == "erp" }
        #expect(erp?.spans == 5)
        #expect(erp?.errors == 1)
        #expect(erp?.errorRate == 0.2)
        #expect(erp?.perSecond == 0.5)
        // Percentiles from the duration histogram: within 0.5% of the exact ones; the max exact.
        func near(_ v: Double?, _ exact: Double) -> Bool { v.map { abs($0 - exact) <= exact * 0.005 } ?? false }
        #expect(near(erp?.latency.p50, 20))  // smallest value with at least 50% of 5 values at or below it: the 3rd
        #expect(near(erp?.latency.p90, 40))
        #expect(near(erp?.latency.p95, 40))
        #expect(erp?.latency.max == 40)
        #expect(erp.map { $0.latency.p50 != $0.latency.p90 } == true)
        #expect(r.edges == [ServiceReport.Edge(from: "orchestrator", to: "erp", calls: 4, errors: 1)])
    }
}
