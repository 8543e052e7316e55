import Foundation
import Testing
import WaybillKPI
import WaybillModel
@testable import WaybillReports

@Suite("Saved query files")
struct SavedQueryTests {
    func reportError(_ yaml: String, file: String = "queries/reports/weekly.yaml") -> SavedQueryError? {
        do {
            _ = try SavedQueries.parseReport(yaml: yaml, file: file)
            return nil
        } catch { return error }
    }

    static let good = """
        title: Weekly executive report
        description: Fill, speed and punctuality of last week.
        window: previous ISO week
        time_zone: Europe/Berlin
        by: warehouse
        step: 1d
        kpis: [fill_rate, order_fill_rate, allocation_delay.p95_s, on_time_rate]
        drilldowns:
          - allocation_delay.p95_s
          - kpi: on_time_rate
            group: DC-EAST
            limit: 5
        schedule: "0 8 * * mon"
        deliver:
          - name: exec
            url: https://hooks.example.com/reports
            secret_env: WAYBILL_REPORT_SECRET
            format: html
          - name: slack
            url: https://hooks.slack.com/services/T/B/X
            format: slack
        """

    @Test("A full report definition is read with every field")
    func parsesReport() throws {
        let r = try SavedQueries.parseReport(yaml: Self.good, file: "queries/reports/weekly-exec.yaml")
        #expect(r.name == "weekly-exec")
        #expect(r.title == "Weekly executive report")
        #expect(r.window == .previous(.week))
        #expect(r.zone.identifier == "Europe/Berlin")
        #expect(r.by == .warehouse && r.step == 86_400_000_000)
        #expect(r.kpis == [.fillRate, .orderFillRate, .allocationDelay(.p95), .onTimeRate])
        #expect(r.drilldowns == [ReportDrilldown(metric: .allocationDelay(.p95)), ReportDrilldown(metric: .onTimeRate, group: .some("DC-EAST"), limit: 5)])
        #expect(r.schedule?.expression == "0 8 * * mon")
        #expect(r.deliver.map(\.hook.name) == ["report:weekly-exec:exec", "report:weekly-exec:slack"])
        #expect(r.deliver.map(\.format) == [.html, .slack])
        #expect(r.deliver[0].hook.contentType.hasPrefix("text/html") && r.deliver[1].hook.contentType == "application/json")
        #expect(r.deliver[0].hook.secretEnv == "WAYBILL_REPORT_SECRET")
    }

    @Test("A bad report file is refused naming the file, the line and the field")
    func refusesReports() {
        let cases: [(String, Int?, String, String)] = [
            ("title: T\nwindow: previous fortnight\n", 2, "window", "not a report window"),
            ("title: T\nwindow: previous day\nby: country\n", 3, "by", "not one of warehouse"),
            ("title: T\nwindow: previous day\nkpis:\n  - fill_rate\n  - fill_ratio\n", 5, "kpis", "'fill_ratio' is not a KPI"),
            ("title: T\nwindow: previous day\ntime_zone: Mars/Olympus\n", 3, "time_zone", "IANA"),
            ("title: T\nwindow: previous day\nschedule: \"0 25 * * *\"\ndeliver:\n  - {name: a, url: http://x.example}\n", 3, "schedule", "hour field"),
            ("title: T\nwindow: previous day\nschedule: \"0 8 * * *\"\n", 3, "schedule", "needs deliver"),
            ("title: T\nwindow: previous day\ndeliver:\n  - name: a\n    url: ftp://x\n", 5, "url", "http"),
            ("title: T\nwindow: previous day\ndeliver:\n  - name: a\n    url: http://x.example\n    format: pdf\n", 6, "format", "html, json, slack"),
            ("title: T\nwindow: previous day\ndeliver:\n  - name: a\n    url: http://x.example\n    secret_env: s3cr3t value\n", 6, "secret_env", "environment variable"),
            ("title: T\nwindow: previous day\ncolour: blue\n", 3, "colour", "not a known field"),
            ("window: previous day\n", 1, "title", "required"),
            ("title: T\nwindow: previous day\nsplit: errors-in:erp\nby: warehouse\n", 3, "split", "must be errors"),
            ("title: T\nwindow: previous day\ndrilldowns:\n  - kpi: fill_rate\n    group: DC-EAST\n", 5, "group", "needs the report's by"),
            ("title: T\nwindow: previous day\ndrilldowns:\n  - kpi: fill_rate\n    limit: 0\n", 5, "limit", "from 1 to 1000"),
            ("title: T\nwindow: previous day\nsplit: error-in:erp\nby: warehouse\n", 3, "split", "cannot be combined with by"),
            ("title: [unclosed\n", nil, "yaml", "not valid YAML"),
            ("- title: T\n- window: previous day\n", 1, "document", "mapping"),
            ("", nil, "document", "empty"),
        ]
        for (yaml, line, field, rule) in cases {
            let e = reportError(yaml)
            #expect(e?.file == "queries/reports/weekly.yaml", "\(yaml)")
            #expect(e?.field == field, "\(yaml): \(String(describing: e))")
            if let line { #expect(e?.line == line, "\(yaml): \(String(describing: e))") }
            #expect(e?.rule.contains(rule) == true, "\(yaml): \(String(describing: e))")
            #expect(e?.description.hasPrefix("queries/reports/weekly.yaml:") == true)
        }
        #expect(reportError("title: T\nwindow: previous day\n", file: "queries/reports/bad name.yaml")?.field == "file")
    }

    @Test("A saved search keeps waybill search's filters; a bad one names its field and line")
    func searches() throws {
        let s = try SavedQueries.parseSearch(yaml: "title: Stuck orders\nfilters:\n  stuck: 4h\n  state: allocated\n  warehouse: DC-EAST\n",
                                             file: "queries/searches/stuck.yaml")
        #expect(s.name == "stuck" && s.filters == ["stuck": "4h", "state": "allocated", "warehouse": "DC-EAST"])
        #expect(try s.request(overrides: ["warehouse": "DC-WEST", "limit": "5"]).parameters == ["stuck": "4h", "state": "allocated",
                                                                                                  "warehouse": "DC-WEST", "limit": "5"])
        func error(_ yaml: String) -> SavedQueryError? {
            do { _ = try SavedQueries.parseSearch(yaml: yaml, file: "s.yaml"); return nil } catch { return error }
        }
        #expect(error("filters:\n  stuck: forever\n").map { ($0.field, $0.line) } ?? ("", nil) == ("stuck", 2))
        #expect(error("filters:\n  state: allocated\n  colour: red\n")?.field == "colour")
        #expect(error("filters:\n  state: teleported\n")?.field == "state")
        #expect(error("title: x\n")?.field == "filters")
    }

    @Test("A folder loads reports and searches; a bad file stops the load naming it")
    func folder() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-queries-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/reports", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/searches", withIntermediateDirectories: true)
        try Self.good.write(toFile: dir + "/reports/weekly.yaml", atomically: true, encoding: .utf8)
        try "title: D\nwindow: previous day\n".write(toFile: dir + "/reports/daily.yml", atomically: true, encoding: .utf8)
        try "filters:\n  stuck: 4h\n".write(toFile: dir + "/searches/stuck.yaml", atomically: true, encoding: .utf8)
        let q = try SavedQueries.load(directory: dir)
        #expect(q.reports.map(\.name) == ["daily", "weekly"])
        #expect(q.searches.map(\.name) == ["stuck"])
        #expect(q.deliveryHooks.count == 2)
        try "title: X\nwindow: last 7 weeks\n".write(toFile: dir + "/reports/x.yaml", atomically: true, encoding: .utf8)
        do {
            _ = try SavedQueries.load(directory: dir)
            Issue.record("loaded a bad file")
        } catch {
            #expect(error.file == dir + "/reports/x.yaml" && error.field == "window" && error.line == 2)
        }
    }

    @Test("The shipped queries folder loads")
    func shipped() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let q = try SavedQueries.load(directory: root.appendingPathComponent("queries").path)
        #expect(q.reports.count >= 2)
        #expect(q.searches.count >= 1)
    }
}
