import Foundation
import WaybillModel

/// The report formats of `waybill kpi --format`.
public enum KPIFormat: String, CaseIterable, Sendable {
    case table, json, csv, html
}

public enum KPIRender {
    /// Renders `current`, comparing with `previous` (the window of the same length before) where the
    /// format shows change. `contributors` only appear in HTML.
    public static func render(_ format: KPIFormat, current: KPIDocument, previous: KPIDocument?,
                              contributors: [KPIContributor] = []) -> String
    {
        switch format {
        case .table: return table(current: current, previous: previous)
        case .json: return json(current)
        case .csv: return csv(current)
        case .html: return html(current: current, previous: previous, contributors: contributors)
        }
    }

    /// The KPI document of interfaces.md, compact with sorted keys, and a final newline.
    public static func json(_ d: KPIDocument) -> String { d.json.jsonString + "\n" }

    /// The metrics a per-group or per-step row shows.
    static let rowMetrics: [KPIMetric] = [.ordersAllocated, .fillRate, .orderFillRate, .allocationDelay(.p50), .allocationDelay(.p95),
                                          .shipments, .shipmentLag(.p50), .shipmentLag(.p95), .onTimeRate]

    /// Aligned plain text: the total with every KPI against the previous window, then the groups
    /// (value and change), then the time series.
    public static func table(current d: KPIDocument, previous p: KPIDocument?) -> String {
        var out = "KPIs " + KPIFormatting.window(d.query)
        if let by = d.groupKeyName { out += ", by \(by)" }
        if let s = d.query.step { out += ", step \(DurationText.format(s))" }
        out += "\n"
        if let p { out += "change vs " + KPIFormatting.window(p.query) + "\n" }
        out += "\n"

        var rows = [["metric", "value"] + (p != nil ? ["previous", "change"] : [])]
        for m in KPIMetric.all where m != .allocationDelay(.count) && m != .shipmentLag(.count) {
            var row = [m.label, KPIFormatting.value(d.total, m)]
            if let p {
                row.append(KPIFormatting.value(p.total, m))
                row.append(KPIFormatting.change(m, current: d.total.value(m), previous: p.total.value(m)).text)
            }
            rows.append(row)
        }
        out += aligned(rows, leftColumns: 1)

        if let by = d.groupKeyName, !d.groups.isEmpty {
            out += "\nBy \(by)" + (p != nil ? " (change vs previous window in brackets)" : "") + "\n"
            var g = [[by] + rowMetrics.map(\.shortLabel)]
            for group in d.groups {
                let before = p?.group(group.value)?.kpis
                g.append([KPIFormatting.groupName(group.value)] + rowMetrics.map { m in
                    let v = KPIFormatting.value(group.kpis, m)
                    guard p != nil else { return v }
                    let c = KPIFormatting.change(m, current: group.kpis.value(m), previous: before?.value(m))
                    return c.text == KPIFormatting.missing ? v : v + " (" + c.text + ")"
                })
            }
            out += aligned(g, leftColumns: 1)
        }

        for s in d.series {
            out += "\nSeries" + (d.groupKeyName.map { " \($0) = " + KPIFormatting.groupName(s.value) } ?? "") + "\n"
            var r = [["start"] + rowMetrics.map(\.shortLabel)]
            for point in s.points {
                r.append([RFC3339.format(point.start)] + rowMetrics.map { KPIFormatting.value(point.kpis, $0) })
            }
            out += aligned(r, leftColumns: 1)
        }
        return out
    }

    /// Pads columns to equal width: the first `leftColumns` left-aligned, numbers right-aligned.
    static func aligned(_ rows: [[String]], leftColumns: Int) -> String {
        let columns = rows.map(\.count).max() ?? 0
        var widths = Array(repeating: 0, count: columns)
        for r in rows { for (i, c) in r.enumerated() { widths[i] = Swift.max(widths[i], c.count) } }
        var out = ""
        for r in rows {
            var line = ""
            for (i, c) in r.enumerated() {
                let pad = String(repeating: " ", count: widths[i] - c.count)
                if i > 0 { line += "  " }
                line += i < leftColumns ? c + pad : pad + c
            }
            while line.hasSuffix(" ") { line.removeLast() }
            out += line + "\n"
        }
        return out
    }

    /// One row per total, group and series point; the group column is empty for the total and for the null group.
    public static func csv(_ d: KPIDocument) -> String {
        let metrics = KPIMetric.all
        var lines = [(["scope", d.groupKeyName ?? "group", "start", "end"] + metrics.map { $0.description.replacingDots() })
            .map(csvField).joined(separator: ",")]
        func row(_ scope: String, _ group: String?, _ start: Micros, _ end: Micros, _ k: KPIs) -> String {
            ([scope, group ?? "", RFC3339.format(start), RFC3339.format(end)] + metrics.map { m in
                k.value(m).map(csvNumber) ?? ""
            }).map(csvField).joined(separator: ",")
        }
        lines.append(row("total", nil, d.query.from, d.query.to, d.total))
        for g in d.groups { lines.append(row("group", g.value, d.query.from, d.query.to, g.kpis)) }
        for s in d.series { for p in s.points { lines.append(row("series", s.value, p.start, p.end, p.kpis)) } }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    static func csvNumber(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : "\(v)"
    }

    /// RFC 4180: quoted when it holds a comma, quote or line break. A leading `=`, `+`, `-` or `@`
    /// is prefixed with `'` so spreadsheets do not run a group name as a formula.
    static func csvField(_ s: String) -> String {
        var s = s
        if let f = s.first, "=+-@".contains(f), Double(s) == nil { s = "'" + s }
        guard s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }
}

extension KPIMetric {
    /// Column heading for per-group and per-step tables.
    var shortLabel: String {
        switch self {
        case .ordersAllocated: return "allocated"
        case .fillRate: return "fill"
        case .orderFillRate: return "order fill"
        case .allocationDelay(let f): return "alloc " + f.label
        case .shipments: return "shipped"
        case .shipmentLag(let f): return "lag " + f.label
        case .onTimeRate: return "on time"
        }
    }
}

extension String {
    func replacingDots() -> String { String(map { $0 == "." ? "_" : $0 }) }
}
