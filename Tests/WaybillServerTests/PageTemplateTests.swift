import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import WaybillAlerts
import WaybillKPI
@testable import WaybillServer
import WaybillModel
import WaybillSQLite
import WaybillTestSupport

/// The page templates and the dashboard files: loaded once, escaping by default, unescaped output only for
/// the server's own markup, and a bad dashboard file refused naming file, line and field.
@Suite struct PageTemplateTests {
    @Test func theShippedTemplatesLoadAndEscapeByDefault() throws {
        let renderer = try PageRenderer.shipped.get()
        let html = renderer.render("page", ["title": "<b>t</b>", "bodyHTML": TrustedHTML(escapedMarkup: "<p>ok</p>")] as [String: Any])
        #expect(html.contains("<title>&lt;b&gt;t&lt;/b&gt; · Waybill</title>"))
        #expect(html.contains("<p>ok</p>"))
        #expect(html.contains("action=\"/search\""), "the layout's search box")
    }

    @Test func aTemplateThatInsertsOrdinaryTextUnescapedIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tpl-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "<html>{{$content}}{{/content}}</html>".write(toFile: dir + "/layout.mustache", atomically: true, encoding: .utf8)
        try "{{<layout}}{{$content}}{{{chartSVG}}}{{& bodyHTML}}{{/content}}{{/layout}}".write(toFile: dir + "/ok.mustache", atomically: true, encoding: .utf8)
        let ok = try PageRenderer(directory: dir)
        #expect(ok.render("ok", ["chartSVG": TrustedHTML(escapedMarkup: "<svg></svg>"), "bodyHTML": TrustedHTML(escapedMarkup: "<i>x</i>")] as [String: Any])
            == "<html><svg></svg><i>x</i></html>")
        try "<p>{{{ subject }}}</p>".write(toFile: dir + "/bad.mustache", atomically: true, encoding: .utf8)
        #expect(throws: PageRenderer.LoadError.self) { try PageRenderer(directory: dir) }
        #expect(PageRenderer.unescapedNames("a {{x}} {{{ y }}} {{&z}} {{#s}}{{/s}}") == ["y", "z"])
    }

    @Test func theShippedDashboardIsValid() throws {
        let d = try Dashboard.shipped.get()
        #expect(d.panels.map(\.kind) == [.kpiTiles, .alerts, .stuckOrders, .ingest, .services])
        #expect(d.panels[0].kpis.map(\.description).contains("fill_rate"))
        #expect(d.panels[0].step == 3_600_000_000)
    }

    @Test(arguments: [
        // (file text, line, field, words of the rule)
        ("panels:\n  - kind: kpi_tiles\n    kpis: [fill_rate]\n  - kind: pie\n", 4, "kind", "not a panel kind"),
        ("panels:\n  - kind: kpi_tiles\n    kpis: [fill_rate, fill_rat]\n", 3, "kpis", "'fill_rat' is not a KPI"),
        ("panels:\n  - kind: services\n    window: soon\n", 3, "window", "not a duration"),
        ("panels:\n  - kind: alerts\n    windw: 1h\n", 3, "windw", "not a known field"),
        ("panels:\n  - kind: alerts\n    state: burning\n", 3, "state", "pending, firing or resolved"),
        ("title: x\n", 1, "panels", "is required"),
        ("panels:\n  - kind: kpi_tiles\n    kpis: [fill_rate]\n    window: 1h\n    step: 1s\n", 5, "step", "at least 1m"),
        ("panels:\n  - kind: stuck_orders\n    stages: [accepted, shipped, invoiced]\n", 3, "stages", "'invoiced' is not an open stage"),
        ("panels: [\n", 2, "document", "not YAML"),
    ])
    func aBadDashboardNamesFileLineAndField(text: String, line: Int, field: String, rule: String) throws {
        do {
            _ = try Dashboard.parse(text, file: "dash/overview.yaml")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.file == "dash/overview.yaml")
            #expect(error.line == line, "\(error)")
            #expect(error.error.field == field, "\(error)")
            #expect(error.error.rule.contains(rule), "\(error)")
            #expect(error.description.hasPrefix("dash/overview.yaml:\(line): "), "\(error)")
        }
    }

    @Test func theSearchBoxRedirectsToTheOrderPage() async throws {
        let store = try SQLiteStore(path: temporaryDatabase())
        defer { store.close() }
        let app = buildApplication(store: store, config: ServerConfig())
        try await app.test(.router) { client in
            try await client.execute(uri: "/search?key=" + URLText.pathSegment("shipment:1Z 9/x"), method: .get) { r in
                #expect(r.status == .seeOther)
                #expect(r.headers[.location] == "/orders/" + URLText.pathSegment("shipment:1Z 9/x"))
            }
            try await client.execute(uri: "/search?state=shipped", method: .get) { r in
                #expect(r.status == .ok)
                let html = String(buffer: r.body)
                #expect(html.contains("no order matches"))
                #expect(html.contains("name=\"state\" placeholder=\"state\" value=\"shipped\""))
            }
            try await client.execute(uri: "/search?state=bogus", method: .get) { r in
                #expect(String(buffer: r.body).contains("state: must be one of"))
            }
        }
    }

    /// The overview, `/kpis` (report, drill-down into the hostile group, hostile parameters) and `/alerts` (also
    /// filtered and replayed with hostile parameters) over events whose every field is hostile: escaped, no
    /// foreign tag, attribute or link (`PageSafetyTests.checkPage`).
    @Test func theNewPagesEscapeHostileEvents() async throws {
        let store = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
        defer { store.close() }
        let alerting = Alerting(config: try DemoService.shippedAlertRules(), source: StoreAlertSource(store: store), store: store,
                                baseURL: "http://127.0.0.1:4318", transport: CountingTransport())
        let app = buildApplication(store: store, config: ServerConfig(), alerting: alerting)
        let evil = PageSafetyTests.evil
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/x-ndjson"],
                                     body: ByteBuffer(string: PageSafetyTests.events())) { r in #expect(r.json["accepted"] == 5, "\(r.json)") }
            let window = ["from": "2026-11-19T00:00:00Z", "to": "2026-11-22T00:00:00Z"]
            var shown = [
                "/",
                "/kpis?" + URLText.query(window.merging(["by": "warehouse", "step": "1d"]) { a, _ in a }),
                "/kpis?" + URLText.query(window.merging(["by": "warehouse", "explain": "allocation_delay.p50_s", "group": evil]) { a, _ in a }),
                "/alerts?" + URLText.query(["at": "2026-11-23T10:00:00Z"]),
                "/search?" + URLText.query(["channel": evil]),
            ]
            shown += ["/kpis?" + URLText.query(["from": evil]), "/kpis?" + URLText.query(["split": evil]), "/kpis?" + URLText.query(["by": evil]),
                      "/alerts?" + URLText.query(["at": evil]), "/alerts?" + URLText.query(["state": evil])]
            for uri in shown {
                try await client.execute(uri: uri, method: .get) { r in
                    if r.status == .badRequest {
                        // A refused parameter: the page with its form and the reason, escaped, with the page headers.
                        #expect(uri.contains("evil") || uri.contains("%3Cscript"), "\(uri) refused")
                        #expect(r.headers[.contentSecurityPolicy] != nil, "\(uri)")
                        let html = String(buffer: r.body).replacingOccurrences(of: PageSafetyTests.brushScript, with: "")
                        #expect(!html.lowercased().contains("<script"), "\(uri)")
                        #expect(!html.contains(evil), "\(uri)")
                        #expect(html.contains("class=\"error\""), "\(uri): the reason is shown")
                        for tag in startTags(html) { #expect(PageSafetyTests.allowedTags.contains(tag.name), "\(uri): <\(tag.name)>") }
                    } else {
                        PageSafetyTests.checkPage(uri, r, shows: !uri.hasPrefix("/search") && !uri.contains("state="))
                    }
                }
            }
            // The drill-down lists the order of the hostile warehouse, linked on the site's own path.
            let drill = "/kpis?" + URLText.query(window.merging(["by": "warehouse", "explain": "allocation_delay.p50_s", "group": evil]) { a, _ in a })
            try await client.execute(uri: drill, method: .get) { r in
                #expect(String(buffer: r.body).contains("href=\"" + WebPages.orderLink(PageSafetyTests.order) + "\""))
            }
        }
    }
}
