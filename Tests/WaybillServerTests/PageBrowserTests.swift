import AsyncHTTPClient
import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillTestSupport

/// The pages as a person sees them: a real server loaded by the simulator, each page rendered by headless
/// Chromium (DOM and screenshot), and the numbers shown compared with the API's for the same window.
/// Screenshots are kept under `$WAYBILL_ARTIFACTS` (default `.build/test-artifacts/pages`).
@Suite(.serialized) struct PageBrowserTests {
    static var chromium: String? { HeadlessChromium.path }
    static var artifacts: URL { HeadlessChromium.artifacts }

    /// Runs headless Chromium on a URL: the DOM after load, and a screenshot saved as `name.png`.
    static func render(_ url: String, name: String) async throws -> String {
        try await HeadlessChromium.render(try #require(chromium), url, name: name, height: 1000)
    }

    static func getJSON(_ url: String) async throws -> JSONValue {
        let r = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
        #expect(r.status == .ok, "\(url): \(r.status)")
        return try JSONParser.parse(Array(try await r.body.collect(upTo: 1 << 26).readableBytesView))
    }

    /// The text of the first element after `marker` in the DOM (between its `>` and the next `<`).
    static func text(after marker: String, in html: String) -> String? {
        guard let r = html.range(of: marker), let gt = html[r.upperBound...].firstIndex(of: ">") else { return nil }
        let rest = html[html.index(after: gt)...]
        return String(rest[..<(rest.firstIndex(of: "<") ?? rest.endIndex)]).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The value a KPI tile shows.
    static func tileValue(_ metric: String, in html: String) -> String? {
        guard let r = html.range(of: "id=\"tile-\(metric)\"") else { return nil }
        let rest = String(html[r.upperBound...])
        guard let v = rest.range(of: "class=\"value\"") else { return nil }
        return text(after: "<a href=", in: String(rest[v.upperBound...]))
    }

    /// The texts of the table cells after `marker`, up to the end of its row.
    static func cells(after marker: String, in html: String) -> [String] {
        guard let r = html.range(of: marker) else { return [] }
        let row = String(html[r.upperBound...]).components(separatedBy: "</tr>")[0]
        return row.components(separatedBy: "<td").dropFirst().map { cell in
            let inner = cell[(cell.firstIndex(of: ">").map { cell.index(after: $0) } ?? cell.startIndex)...]
            return String(inner.prefix { $0 != "<" }).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }

    /// A KPI value of a document's `total` (or group) as the pages write it.
    static func formatted(_ kpis: JSONValue?, _ m: KPIMetric) -> String {
        let v: Double? = switch m {
        case .allocationDelay(let f): kpis?["allocation_delay"]?[f.rawValue]?.doubleValue
        case .shipmentLag(let f): kpis?["shipment_lag"]?[f.rawValue]?.doubleValue
        default: kpis?[m.description]?.doubleValue
        }
        return KPIFormatting.value(v, m.kind)
    }

    static func unescape(_ s: String) -> String {
        s.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">").replacingOccurrences(of: "&quot;", with: "\"")
            .replacingOccurrences(of: "&#39;", with: "'").replacingOccurrences(of: "&amp;", with: "&")
    }

    @Test func everyPageShowsTheAPIsNumbersInABrowser() async throws {
        guard FileManager.default.fileExists(atPath: ServerProcess.binary.path) else { Issue.record("waybill binary missing"); return }
        guard Self.chromium != nil else {
            print("SKIPPED PageBrowserTests.everyPageShowsTheAPIsNumbersInABrowser: chromium is not installed (.ci/setup.d/40-chromium.sh)")
            return
        }
        let db = temporaryDatabase()
        // A day of orders ending about now (with spans), so the overview's 24-hour window has them.
        let start = RFC3339.format(SystemClock().now() - 30 * 3_600_000_000)
        let sim = try await CLIRun.run(["simulate", "--orders", "600", "--days", "1", "--seed", "11", "--start", start,
                                  "--faults", "erp-errors=0.2", "--db", db])
        #expect(sim.status == 0, "\(sim.stderr)")
        let rules = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../queries/alerts").standardized.path
        // The shipped rules' hook signs with a secret from the environment; its deliveries fail (nothing listens), which the alerts page shows.
        let port = Int.random(in: 20_000...60_000)
        let process = Process()
        process.executableURL = ServerProcess.binary
        process.arguments = ["serve", "--port", String(port), "--db", db, "--config", rules]
        process.environment = ProcessInfo.processInfo.environment.merging(["WAYBILL_HOOK_SECRET": "page-test"]) { _, b in b }
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let server = ServerProcess(process: process, port: port, db: db)
        defer { server.stop() }
        try await server.waitUntilHealthy()
        // More orders through HTTP, so ingest health has sources to show.
        let live = try await CLIRun.run(["simulate", "--orders", "60", "--days", "0.05", "--seed", "12", "--start", "-2h", "--url", server.base])
        #expect(live.status == 0, "\(live.stderr)")
        let base = server.base

        // Overview: each KPI tile equals the KPI document of the window it names; services and stuck orders equal theirs.
        let overview = try await Self.render(base + "/", name: "overview")
        #expect(overview.contains("id=\"panel-kpi_tiles\""), "the overview has no KPI tiles")
        let from = try #require(Self.text(after: "class=\"from\"", in: overview))
        let to = try #require(Self.text(after: "class=\"to\"", in: overview))
        let kpis = try await Self.getJSON(base + "/api/v1/kpis?" + URLText.query(["from": from, "to": to, "step": "1h"]))
        #expect((kpis["total"]?["orders_allocated"]?.doubleValue ?? 0) > 0, "no orders in the overview's window: \(from) to \(to)")
        var tiles = 0
        for m in KPIMetric.all {
            guard let shown = Self.tileValue(m.description, in: overview) else { continue }
            #expect(shown == Self.formatted(kpis["total"], m), "tile \(m): page \(shown), API \(Self.formatted(kpis["total"], m))")
            tiles += 1
        }
        #expect(tiles >= 5, "KPI tiles found: \(tiles)")
        #expect(overview.contains("<svg class=\"spark\""), "sparklines")

        let stuck = try await Self.getJSON(base + "/api/v1/stuck")
        for s in stuck["stages"]?.arrayValue ?? [] {
            let stage = s["stage"]?.stringValue ?? ""
            let row = try #require(overview.range(of: "id=\"stuck-\(stage)\""), "stage \(stage) missing")
            let count = Self.text(after: "class=\"num\"", in: String(overview[row.upperBound...]))
            #expect(count == String(Int(s["count"]?.doubleValue ?? -1)), "stuck \(stage): page \(count ?? "nil"), API \(s["count"] ?? .null)")
        }
        let servicesPanel = try #require(overview.range(of: "id=\"panel-services\""))
        let sFrom = try #require(Self.text(after: "class=\"from\"", in: String(overview[servicesPanel.upperBound...])))
        let sTo = try #require(Self.text(after: "class=\"to\"", in: String(overview[servicesPanel.upperBound...])))
        let services = try await Self.getJSON(base + "/api/v1/services?" + URLText.query(["from": sFrom, "to": sTo]))
        let serviceRows = services["services"]?.arrayValue ?? []
        #expect(!serviceRows.isEmpty, "no services in \(sFrom) to \(sTo)")
        for r in serviceRows.prefix(5) {
            let name = r["service"]?.stringValue ?? ""
            let cells = Self.cells(after: "<tr class=\"service\"><td>\(name)</td>", in: overview)
            #expect(cells.count == 6, "service \(name): \(cells)")
            #expect(cells.first == KPIFormatting.fixed(r["per_second"]?.doubleValue ?? r["perSecond"]?.doubleValue ?? -1, 2), "service \(name) rate: \(cells) vs \(r)")
            #expect(cells.dropFirst().first == String(Int(r["errors"]?.doubleValue ?? -1)), "service \(name) errors: page \(cells), API \(r)")
        }
        let ingestPanel = try #require(overview.range(of: "id=\"panel-ingest\""))
        #expect(!String(overview[ingestPanel.upperBound...]).prefix(3000).contains("no events received"), "ingest health lists no source")

        // /kpis by warehouse: every cell equals the document's figure; a drill-down lists the API's orders.
        let window = ["from": from, "to": to, "by": "warehouse", "step": "1h"]
        let kpiPage = try await Self.render(base + "/kpis?" + URLText.query(window), name: "kpis")
        let byWarehouse = try await Self.getJSON(base + "/api/v1/kpis?" + URLText.query(window))
        let groups = byWarehouse["groups"]?.arrayValue ?? []
        #expect(!groups.isEmpty)
        for g in groups {
            let name = g["key"]?["warehouse"]?.stringValue ?? "(none)"
            let row = try #require(kpiPage.range(of: "<td>\(name)</td>"), "group \(name) missing from /kpis")
            let cells = String(kpiPage[row.upperBound...].prefix(while: { $0 != "\n" }))
            let fill = Self.formatted(g["kpis"], .fillRate)
            #expect(cells.contains(">\(fill)<"), "\(name) fill rate \(fill) not in \(cells)")
            #expect(cells.contains(">\(Self.formatted(g["kpis"], .allocationDelay(.p90)))<"), "\(name) allocation delay p90")
        }
        #expect(kpiPage.contains("<svg class=\"chart\""), "the chart")
        let explainQuery = ["from": from, "to": to, "explain": "allocation_delay.p90_s"]
        let drill = try await Self.render(base + "/kpis?" + URLText.query(explainQuery), name: "kpis-explain")
        let explained = try await Self.getJSON(base + "/api/v1/kpis?" + URLText.query(explainQuery))
        let orderIDs = (explained["orders"]?.arrayValue ?? []).compactMap { $0["order"]?.stringValue }
        #expect(!orderIDs.isEmpty)
        for id in orderIDs { #expect(drill.contains(">\(id)</a>"), "drill-down lacks \(id)") }

        // /alerts: the alerts of the API, each state's count, the rules with their last evaluation.
        let alertsPage = try await Self.render(base + "/alerts", name: "alerts")
        let alerts = try await Self.getJSON(base + "/api/v1/alerts")
        for state in ["firing", "pending", "resolved"] {
            let n = (alerts["alerts"]?.arrayValue ?? []).filter { $0["state"]?.stringValue == state }.count
            let section = alertsPage.components(separatedBy: "class=\"alerts \(state)\"").dropFirst().first ?? ""
            let rows = section.components(separatedBy: "</table>").first?.components(separatedBy: "<tr>").count ?? 0
            #expect(max(0, rows - 2) == n, "\(state): page rows \(max(0, rows - 2)), API \(n)")
        }
        let rulesDoc = try await Self.getJSON(base + "/api/v1/rules")
        for r in rulesDoc["rules"]?.arrayValue ?? [] { #expect(alertsPage.contains("<td>\(r["name"]?.stringValue ?? "?")</td>")) }
        #expect(alertsPage.contains("Hook deliveries"))

        // The search page and the orders of a stage.
        let search = try await Self.render(base + "/search?state=allocated", name: "search")
        #expect(search.contains("Orders"))
    }
}
