import AsyncHTTPClient
import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillTestSupport

/// `/orders/{key}` and `/services` as a person sees them: headless Chromium (Debian's `chromium`,
/// installed in CI by `.ci/setup.d/40-chromium.sh`) renders each page against `waybill serve` on the
/// step history of `OrderAndServicesPageTests`; the DOM after load shows the API's numbers, and the
/// screenshots are kept under `$WAYBILL_ARTIFACTS/pages` (default `.build/test-artifacts/pages`).
@Suite(.serialized) struct OrderPagesBrowserTests {
    static var chromium: String? { HeadlessChromium.path }
    static var artifacts: URL { HeadlessChromium.artifacts }

    /// The DOM after load, and a screenshot `name.png`.
    static func render(_ chromium: String, _ url: String, name: String) async throws -> String {
        try await HeadlessChromium.render(chromium, url, name: name, height: 1400)
    }

    @Test func orderAndServicesPagesInABrowser() async throws {
        guard let chromium = Self.chromium else {
            print("SKIPPED OrderPagesBrowserTests.orderAndServicesPagesInABrowser: chromium is not installed (.ci/setup.d/40-chromium.sh)")
            return
        }
        let (db, _, spanStart) = try await OrderAndServicesPageTests.makeStore()
        let server = try await ServerProcess.start(db: db)
        defer { server.stop() }
        let api = try #require(try await httpGetJSON(server.base + "/api/v1/traces/SO-SLOW"))
        let dom = try await Self.render(chromium, server.base + "/orders/SO-SLOW", name: "order-SO-SLOW")
        #expect(dom.contains("Why it is late"))
        let shipped = try #require(api["steps"]?.arrayValue?.first { $0["to"] == "shipped" })
        let p90 = OrderAndServicesPageTests.seconds(shipped["p90_s"]), p50 = OrderAndServicesPageTests.seconds(shipped["p50_s"])
        #expect(dom.contains("usually \(p50), 90% within \(p90)"), "the finding names the API's p50 and p90")
        #expect(dom.contains("<svg class=\"timeline\""))
        let q = URLText.query(["from": RFC3339.format(spanStart - 60_000_000), "to": RFC3339.format(spanStart + 3_600_000_000)])
        let services = try #require(try await httpGetJSON(server.base + "/api/v1/services?" + q))
        let map = try await Self.render(chromium, server.base + "/services?" + q, name: "services-map")
        for e in services["edges"]?.arrayValue ?? [] {
            let calls = Int(e["calls"]?.doubleValue ?? -1), errors = Int(e["errors"]?.doubleValue ?? -1)
            #expect(map.contains("\(calls) · " + String(format: "%.1f%%", Double(errors) / Double(calls) * 100)), "edge \(e)")
        }
        #expect(map.contains("<svg class=\"map\""))
    }
}
