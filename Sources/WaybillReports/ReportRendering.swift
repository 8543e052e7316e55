import Foundation
import WaybillKPI
import WaybillModel
import WaybillQuery

/// A saved report as rendered at one instant (`waybill report NAME --format json`,
/// `GET /api/v1/reports/{name}?format=json`, the `json` delivery body).
public struct ReportDocument: Codable, Sendable, Equatable {
    public struct Window: Codable, Sendable, Equatable {
        /// The definition's words, e.g. `previous ISO week`.
        public var text: String
        public var from: String
        public var to: String
    }

    public struct Drilldown: Codable, Sendable, Equatable {
        public var metric: String
        /// Absent: every group; `null`: the orders without a value.
        public var group: String??
        public var orders: [KPIContributor]

        enum CodingKeys: String, CodingKey { case metric, group, orders }

        public init(metric: String, group: String??, orders: [KPIContributor]) {
            self.metric = metric
            self.group = group
            self.orders = orders
        }

        public init(from decoder: any Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            metric = try c.decode(String.self, forKey: .metric)
            orders = try c.decode([KPIContributor].self, forKey: .orders)
            group = c.contains(.group) ? .some(try c.decodeNil(forKey: .group) ? nil : try c.decode(String.self, forKey: .group)) : .none
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(metric, forKey: .metric)
            if case .some(let g) = group {
                if let g { try c.encode(g, forKey: .group) } else { try c.encodeNil(forKey: .group) }
            }
            try c.encode(orders, forKey: .orders)
        }
    }

    public var report: String
    public var title: String
    public var description: String?
    /// The instant the window was resolved against.
    public var at: String
    public var timeZone: String
    public var window: Window
    /// The KPIs the report shows, in order.
    public var kpis: [String]
    public var current: KPIDocument
    /// The window of the same length just before, when the report compares.
    public var previous: KPIDocument?
    /// The report's telemetry split, when it has one.
    public var split: KPIDocument?
    public var drilldowns: [Drilldown]

    enum CodingKeys: String, CodingKey {
        case report, title, description, at, timeZone = "time_zone", window, kpis, current, previous, split, drilldowns
    }

    var metrics: [KPIMetric] { kpis.compactMap(KPIMetric.init) }
}

/// Renders saved reports through the query layer, so a report over `--db` and over `--url` is the same.
public enum ReportRenderer {
    public enum Format: String, Sendable, CaseIterable {
        case html, csv, json, md
    }

    public static func parseFormat(_ text: String?) throws(QueryFailure) -> Format {
        guard let f = Format(rawValue: text ?? "html") else {
            throw .badRequest(FieldError(field: "format", rule: "must be one of html, csv, json, md"))
        }
        return f
    }

    public static func contentType(_ f: Format) -> String {
        switch f {
        case .html: return "text/html; charset=utf-8"
        case .csv: return "text/csv; charset=utf-8"
        case .json: return "application/json"
        case .md: return "text/markdown; charset=utf-8"
        }
    }

    /// The instant of `--at`/`?at=` (RFC 3339, a date, or relative like `-1d`), `now` when absent.
    public static func instant(_ text: String?, now: Micros) throws(QueryFailure) -> Micros {
        guard let text, !text.isEmpty else { return now }
        guard let t = TimeText.parse(text, now: now) else {
            throw .badRequest(FieldError(field: "at", rule: "'\(text)' is not an RFC 3339 time, a date, or relative like -1d"))
        }
        return t
    }

    /// The report's document as of `at`.
    public static func document(_ def: ReportDefinition, at: Micros, using q: any WaybillQueries) async throws -> ReportDocument {
        let range = def.window.resolve(at: at, zone: def.zone)
        let from = RFC3339.format(range.lowerBound), to = RFC3339.format(range.upperBound)
        let request = KPIRequest(from: from, to: to, by: def.by?.rawValue, step: def.step.map(DurationText.format))
        let current = try await q.kpis(request)
        let previous = def.comparePrevious ? try await q.kpis(request.previous(of: current)) : nil
        var split: KPIDocument?
        if let s = def.split { split = try await q.kpis(KPIRequest(from: from, to: to, split: s)) }
        var drilldowns: [ReportDocument.Drilldown] = []
        for d in def.drilldowns {
            let r = KPIRequest(from: from, to: to, by: d.group == nil ? nil : def.by?.rawValue, explain: d.metric, group: d.group, limit: d.limit)
            drilldowns.append(.init(metric: d.metric.description, group: d.group, orders: try await q.explain(r).orders))
        }
        return ReportDocument(report: def.name, title: def.title, description: def.description, at: RFC3339.format(at),
                              timeZone: def.zone.identifier, window: .init(text: def.window.description, from: from, to: to),
                              kpis: def.kpis.map(\.description), current: current, previous: previous, split: split, drilldowns: drilldowns)
    }

    public static func render(_ def: ReportDefinition, format: Format, at: Micros, using q: any WaybillQueries, linkBase: String = "") async throws -> String {
        render(try await document(def, at: at, using: q), format: format, linkBase: linkBase)
    }

    /// `linkBase` prefixes the trace links of the HTML page (`/traces/ID`): empty on the server's own
    /// pages, the server's external URL in a delivered report.
    public static func render(_ doc: ReportDocument, format: Format, linkBase: String = "") -> String {
        switch format {
        case .json: return String(decoding: (try? JSONCoding.bytes(doc)) ?? [], as: UTF8.self) + "\n"
        case .csv: return csv(doc)
        case .md: return markdown(doc, linkBase: linkBase)
        case .html: return html(doc, linkBase: linkBase)
        }
    }

    // MARK: CSV

    /// One row per total (current and previous), group, series point and split group, with the report's KPIs as columns.
    static func csv(_ d: ReportDocument) -> String {
        let metrics = d.metrics
        let key = d.current.groupKeyName ?? "group"
        var lines = [(["scope", key, "start", "end"] + metrics.map { $0.description.replacingOccurrences(of: ".", with: "_") })
            .map(csvField).joined(separator: ",")]
        func row(_ scope: String, _ group: String?, _ start: Micros, _ end: Micros, _ k: KPIs) {
            lines.append(([scope, group ?? "", RFC3339.format(start), RFC3339.format(end)] + metrics.map { k.value($0).map(csvNumber) ?? "" })
                .map(csvField).joined(separator: ","))
        }
        let c = d.current
        row("total", nil, c.query.from, c.query.to, c.total)
        if let p = d.previous { row("previous_total", nil, p.query.from, p.query.to, p.total) }
        for g in c.groups { row("group", g.value, c.query.from, c.query.to, g.kpis) }
        for s in c.series { for p in s.points { row("series", s.value, p.start, p.end, p.kpis) } }
        if let s = d.split { for g in s.groups { row("split:" + (s.groupKeyName ?? ""), g.value, s.query.from, s.query.to, g.kpis) } }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    static func csvNumber(_ v: Double) -> String { v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : "\(v)" }

    /// RFC 4180 quoting; a leading `=`, `+`, `-` or `@` that is not a number gets a `'` so spreadsheets do not run it.
    static func csvField(_ s: String) -> String {
        var s = s
        if let f = s.first, "=+-@".contains(f), Double(s) == nil { s = "'" + s }
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    // MARK: Markdown

    static func mdCell(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "|", with: "\\|")
            .replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "\r", with: " ")
    }

    static func windowLine(_ d: ReportDocument) -> String {
        "\(d.window.text): \(d.window.from) to \(d.window.to) (\(d.timeZone)), as of \(d.at)"
    }

    static func markdown(_ d: ReportDocument, linkBase: String) -> String {
        let metrics = d.metrics
        var m = "# " + mdCell(d.title) + "\n\n"
        if let desc = d.description { m += mdCell(desc) + "\n\n" }
        m += "_" + mdCell(windowLine(d)) + "_\n\n## Totals\n\n"
        if let p = d.previous {
            m += "| KPI | value | previous | change |\n|---|---:|---:|---:|\n"
            for k in metrics {
                let c = KPIFormatting.change(k, current: d.current.total.value(k), previous: p.total.value(k))
                m += "| \(k.label) | \(KPIFormatting.value(d.current.total, k)) | \(KPIFormatting.value(p.total, k)) | \(c.text) |\n"
            }
        } else {
            m += "| KPI | value |\n|---|---:|\n"
            for k in metrics { m += "| \(k.label) | \(KPIFormatting.value(d.current.total, k)) |\n" }
        }
        func groupTable(_ title: String, _ doc: KPIDocument) {
            guard !doc.groups.isEmpty else { return }
            m += "\n## " + mdCell(title) + "\n\n| " + mdCell(doc.groupKeyName ?? "group") + " | " + metrics.map(\.label).joined(separator: " | ") + " |\n"
            m += "|---|" + metrics.map { _ in "---:|" }.joined() + "\n"
            for g in doc.groups {
                m += "| " + mdCell(KPIFormatting.groupName(g.value)) + " | " + metrics.map { KPIFormatting.value(g.kpis, $0) }.joined(separator: " | ") + " |\n"
            }
        }
        if let by = d.current.groupKeyName { groupTable("By " + by, d.current) }
        if let s = d.split { groupTable("Split by " + (s.groupKeyName ?? "telemetry"), s) }
        for dd in d.drilldowns {
            m += "\n## " + mdCell(drilldownTitle(dd)) + "\n\n"
            if dd.orders.isEmpty { m += "No orders stand out in this window.\n"; continue }
            for (i, o) in dd.orders.enumerated() {
                let id = linkBase.isEmpty ? "`" + o.orderID.replacingOccurrences(of: "`", with: "'") + "`"
                    : "[" + mdCell(o.orderID).replacingOccurrences(of: "]", with: "\\]") + "](" + linkBase + "/traces/" + URLText.pathSegment(o.orderID) + ")"
                m += "\(i + 1). " + id + " — " + mdCell(o.reason) + "\n"
            }
        }
        return m
    }

    static func drilldownTitle(_ dd: ReportDocument.Drilldown) -> String {
        let label = KPIMetric(dd.metric)?.label ?? dd.metric
        switch dd.group {
        case .none: return "Orders behind " + label
        case .some(let g): return "Orders behind \(label), \(KPIFormatting.groupName(g))"
        }
    }

    // MARK: HTML

    /// The KPI report's self-contained page (tiles, charts, worst groups, slowest allocations), with the
    /// report's title, window, KPI tables, split and drill-downs added; still nothing fetched.
    static func html(_ d: ReportDocument, linkBase: String) -> String {
        var page = KPIRender.html(current: d.current, previous: d.previous, contributors: [], title: d.title)
        let e = HTMLText.escape
        let metrics = d.metrics
        var extra = "<section><h2>Report</h2><p class=\"meta\">" + e(windowLine(d)) + "</p>"
        if let desc = d.description { extra += "<p>" + e(desc) + "</p>" }
        extra += "<table><thead><tr><th>KPI</th><th>value</th>" + (d.previous != nil ? "<th>previous</th><th>change</th>" : "") + "</tr></thead><tbody>"
        for k in metrics {
            extra += "<tr><td>" + e(k.label) + "</td><td>" + e(KPIFormatting.value(d.current.total, k)) + "</td>"
            if let p = d.previous {
                let c = KPIFormatting.change(k, current: d.current.total.value(k), previous: p.total.value(k))
                extra += "<td>" + e(KPIFormatting.value(p.total, k)) + "</td><td>" + e(c.text) + "</td>"
            }
            extra += "</tr>"
        }
        extra += "</tbody></table></section>\n"
        func groupTable(_ title: String, _ doc: KPIDocument) {
            guard !doc.groups.isEmpty else { return }
            extra += "<section><h2>" + e(title) + "</h2><table><thead><tr><th>" + e(doc.groupKeyName ?? "group") + "</th>"
            extra += metrics.map { "<th>" + e($0.label) + "</th>" }.joined() + "</tr></thead><tbody>"
            for g in doc.groups {
                extra += "<tr><td>" + e(KPIFormatting.groupName(g.value)) + "</td>" + metrics.map { "<td>" + e(KPIFormatting.value(g.kpis, $0)) + "</td>" }.joined() + "</tr>"
            }
            extra += "</tbody></table></section>\n"
        }
        if let by = d.current.groupKeyName { groupTable("By " + by, d.current) }
        if let s = d.split { groupTable("Split by " + (s.groupKeyName ?? "telemetry"), s) }
        for dd in d.drilldowns {
            extra += "<section><h2>" + e(drilldownTitle(dd)) + "</h2>"
            if dd.orders.isEmpty {
                extra += "<p class=\"note\">No orders stand out in this window.</p></section>\n"
                continue
            }
            extra += "<ol>"
            for o in dd.orders {
                extra += "<li><a href=\"" + e(linkBase + "/traces/" + URLText.pathSegment(o.orderID)) + "\">" + e(o.orderID) + "</a> — " + e(o.reason) + "</li>"
            }
            extra += "</ol></section>\n"
        }
        // The KPI page lists no contributors here (they are the report's drill-downs): drop its empty section.
        if let r = page.range(of: "<section><h2>Orders that contributed most</h2><p class=\"note\">No orders stand out in this window.</p></section>\n") {
            page.removeSubrange(r)
        }
        if let end = page.range(of: "</body></html>", options: .backwards) {
            page.insert(contentsOf: extra, at: end.lowerBound)
        } else {
            page += extra
        }
        return page
    }
}
