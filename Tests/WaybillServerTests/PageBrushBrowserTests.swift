import Foundation
import Testing
import WaybillModel
import WaybillTestSupport

/// Brushing a time range (`/assets/brush.js`) in headless Chromium against `waybill serve`: the script
/// loads under the pages' Content-Security-Policy, and dragging across the `/kpis` chart and the
/// `/services` rate chart (synthetic pointer events, `#brush-check=0.25,0.75`) selects the same page with
/// `from` and `to` set to that part of the chart's axis, the page's other parameters kept. Screenshots
/// with the selection drawn are kept as `kpis-brush.png` and `services-brush.png`.
@Suite(.serialized) struct PageBrushBrowserTests {
    /// The value of `attribute` on the first element that has it, unescaped.
    static func attribute(_ attribute: String, in html: String) -> String? {
        guard let r = html.range(of: attribute + "=\"") else { return nil }
        let rest = html[r.upperBound...]
        guard let end = rest.firstIndex(of: "\"") else { return nil }
        return String(rest[..<end]).replacingOccurrences(of: "&amp;", with: "&")
    }

    @Test func draggingAcrossATimeAxisChartShowsThatRange() async throws {
        guard let chromium = HeadlessChromium.path else {
            print("SKIPPED PageBrushBrowserTests.draggingAcrossATimeAxisChartShowsThatRange: chromium is not installed (.ci/setup.d/40-chromium.sh)")
            return
        }
        let (db, _, spanStart) = try await OrderAndServicesPageTests.makeStore()
        let server = try await ServerProcess.start(db: db)
        defer { server.stop() }
        let script = try await OrderAndServicesPageTests.get(server.base + "/assets/brush.js")
        #expect(script.status == 200 && script.body.contains("data-brush-href"))
        let hour: Micros = 3_600_000_000
        let from = spanStart / hour * hour - hour, to = from + 4 * hour
        let window = ["from": RFC3339.format(from), "to": RFC3339.format(to)]
        let kpiFrom = to - 7 * 24 * hour
        let cases: [(page: String, query: [String: String], name: String, kept: [String: String], axis: (Micros, Micros))] = [
            ("/services", window, "services-brush", [:], (from, to)),
            ("/kpis", ["from": RFC3339.format(kpiFrom), "to": RFC3339.format(to), "by": "warehouse", "step": "1d"], "kpis-brush",
             ["by": "warehouse", "step": "1d"], (kpiFrom, to)),
        ]
        for c in cases {
            let url = server.base + c.page + "?" + URLText.query(c.query) + "#brush-check=0.25,0.75"
            let dom = try await HeadlessChromium.render(chromium, url, name: c.name, height: 1200)
            #expect(dom.contains("data-brush-ready=\"1\""), "\(c.page): the script ran under the CSP")
            guard let target = Self.attribute("data-brush-target", in: dom), let u = URLComponents(string: target) else {
                Issue.record("\(c.page): no data-brush-target after the drag")
                continue
            }
            #expect(u.path == c.page, "\(target)")
            var q: [String: String] = [:]
            for item in u.queryItems ?? [] { q[item.name] = item.value }
            for (k, v) in c.kept { #expect(q[k] == v, "\(target): \(k) kept") }
            // Whole seconds in RFC 3339, a quarter and three quarters along the chart's axis.
            let (a, b) = c.axis
            let wantFrom = a + (b - a) / 4, wantTo = a + (b - a) * 3 / 4
            let gotFrom = try #require(q["from"].flatMap(RFC3339.parse), "\(target)")
            let gotTo = try #require(q["to"].flatMap(RFC3339.parse), "\(target)")
            #expect(q["from"]!.hasSuffix("Z") && !q["from"]!.contains("."), "\(target)")
            #expect(abs(gotFrom - wantFrom) <= (b - a) / 200 + 1_000_000, "\(target): from \(q["from"]!), expected about \(RFC3339.format(wantFrom))")
            #expect(abs(gotTo - wantTo) <= (b - a) / 200 + 1_000_000, "\(target): to \(q["to"]!), expected about \(RFC3339.format(wantTo))")
            // The range selected answers like any other (the page the drag loads).
            let next = try await OrderAndServicesPageTests.get(server.base + target)
            #expect(next.status == 200, "\(target): \(next.status)")
        }
    }
}
