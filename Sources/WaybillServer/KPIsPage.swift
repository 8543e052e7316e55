import Foundation
import Hummingbird
import WaybillKPI
import WaybillModel
import WaybillQuery

/// `/kpis`: the KPI report made interactive. A GET form sets window, grouping, step and telemetry split
/// (the parameters of `GET /api/v1/kpis`); every figure links to the orders behind it (the drill-down of
/// `/api/v1/kpis?explain=`), shown on the same page; a chart draws one KPI per step; the self-contained
/// HTML export (`/api/v1/kpis?format=html`) is one link away.
struct KPIsPage {
    struct Option { var value, label: String; var selected: Bool }
    struct Cell { var value: String; var href: String? }
    struct Row { var group: String; var total: Bool; var cells: [Cell] }
    struct Contributor { var href, id, reason, value: String }
    struct Explain { var metric, group: String; var orders: [Contributor]; var closeHref: String }
    struct Export { var label, href: String }

    var title = "KPIs"
    var from, to, split: String
    var byOptions, stepOptions, chartOptions: [Option]
    var window: String?
    var windowFrom, windowTo: String?
    var groupName: String
    var columns: [String]
    var rows: [Row]
    var chartSVG: TrustedHTML?
    var chartTitle: String?
    var explain: Explain?
    var exports: [Export]
    var error: String?
}

extension WaybillAPI {
    /// The columns of the page's table, in order.
    static let kpiColumns: [KPIMetric] = [.ordersAllocated, .fillRate, .orderFillRate, .allocationDelay(.p50), .allocationDelay(.p90),
                                          .shipments, .shipmentLag(.p50), .shipmentLag(.p90), .onTimeRate]

    func kpisPage(_ req: Request) async throws -> Response {
        var params = req.parameterDictionary.filter { !$0.value.isEmpty }
        let chart = params.removeValue(forKey: "chart").flatMap(KPIMetric.init) ?? .fillRate
        // The form shows the window it asks for; with a `to` alone the window is the 7 days before it, as in the API.
        if params["from"] == nil && params["to"] == nil { params["from"] = "-7d" }
        params.removeValue(forKey: "format")
        func options(_ values: [(String, String)], _ current: String?) -> [KPIsPage.Option] {
            values.map { KPIsPage.Option(value: $0.0, label: $0.1, selected: $0.0 == (current ?? "")) }
        }
        var page = KPIsPage(
            from: params["from"] ?? "", to: params["to"] ?? "", split: params["split"] ?? "",
            byOptions: options([("", "no grouping")] + KPIDimension.allCases.map { ($0.rawValue, $0.rawValue) }, params["by"]),
            stepOptions: options([("", "no step"), ("1h", "1 hour"), ("6h", "6 hours"), ("1d", "1 day"), ("7d", "7 days")], params["step"]),
            chartOptions: options(KPIMetric.all.filter { $0.kind != .count || $0 == .ordersAllocated || $0 == .shipments }.map { ($0.description, $0.label) },
                                  chart.description),
            groupName: "", columns: Self.kpiColumns.map(\.label), rows: [], exports: [])
        do {
            let request = try KPIRequest(parameters: params)
            // The report without the drill-down, and the drill-down when asked.
            var reportRequest = request
            reportRequest.explain = nil
            reportRequest.group = .none
            let doc = try await queries.kpis(reportRequest)
            let window = ["from": RFC3339.format(doc.query.from), "to": RFC3339.format(doc.query.to)]
            page.window = window["from"]! + " to " + window["to"]!
            page.windowFrom = window["from"]
            page.windowTo = window["to"]
            page.groupName = doc.groupKeyName ?? ""
            // Drill-down links carry the resolved window, so the orders listed are those of the figures shown.
            var base = window
            if let by = request.by { base["by"] = by }
            if let step = request.step { base["step"] = step }
            if chart != .fillRate { base["chart"] = chart.description }
            func link(_ m: KPIMetric, group: String??) -> String? {
                guard m.kind != .count, request.split == nil else { return nil }
                var q = base
                q["explain"] = m.description
                if case .some(let g) = group { q["group"] = g ?? "null" }
                return "/kpis?" + URLText.query(q)
            }
            func row(_ label: String, _ k: KPIs, group: String??, total: Bool) -> KPIsPage.Row {
                KPIsPage.Row(group: label, total: total, cells: Self.kpiColumns.map { KPIsPage.Cell(value: KPIFormatting.value(k, $0), href: link($0, group: group)) })
            }
            page.rows = doc.groups.map { row($0.value ?? "(none)", $0.kpis, group: .some($0.value), total: false) }
            page.rows.append(row("all orders", doc.total, group: .none, total: true))
            if doc.query.step != nil {
                let series = doc.series.map { s in
                    SVGChart.Series(name: s.value ?? (doc.groupKeyName == nil ? "all orders" : "(none)"),
                                    points: s.points.map { (t: $0.start, v: $0.kpis.value(chart)) })
                }
                let kind = chart.kind
                page.chartTitle = chart.label + " per " + (request.step ?? "")
                // Dragging across the chart shows that range with the same group, step, split and chart.
                var brush = base
                if let split = params["split"] { brush["split"] = split }
                page.chartSVG = SVGChart.lines(series, from: doc.query.from, to: doc.query.to, label: page.chartTitle!,
                                               brushHref: "/kpis?" + URLText.query(brush)) { v in
                    KPIFormatting.value(v, kind)
                }
            }
            var exportQuery = window
            for k in ["by", "step", "split"] { if let v = params[k] { exportQuery[k] = v } }
            page.exports = [("HTML report (self-contained, for mail and print)", "html"), ("CSV", "csv"), ("JSON", "json")].map {
                var q = exportQuery
                q["format"] = $0.1
                return KPIsPage.Export(label: $0.0, href: "/api/v1/kpis?" + URLText.query(q))
            }
            if let metric = request.explain {
                var explainRequest = request
                explainRequest.from = window["from"]
                explainRequest.to = window["to"]
                let found = try await queries.explain(explainRequest)
                var close = base
                close.removeValue(forKey: "explain")
                let groupText: String = switch request.group {
                case .none: "all orders"
                case .some(.none): "(none)"
                case .some(.some(let g)): g
                }
                page.explain = KPIsPage.Explain(
                    metric: metric.label, group: groupText,
                    orders: found.orders.map {
                        KPIsPage.Contributor(href: WebPages.orderLink($0.orderID), id: $0.orderID, reason: $0.reason,
                                             value: metric == .fillRate || metric == .orderFillRate ? KPIFormatting.fixed($0.value, 0) + " units short" : KPIFormatting.seconds($0.value))
                    },
                    closeHref: "/kpis?" + URLText.query(close))
            }
        } catch let e as QueryFailure {
            page.error = e.description
        }
        return WebPages.render("kpis", page, status: page.error == nil ? .ok : .badRequest)
    }
}
