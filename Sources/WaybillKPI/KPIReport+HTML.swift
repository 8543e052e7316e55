import Foundation
import WaybillModel

extension KPIRender {
    /// A self-contained page (inline CSS and SVG, nothing fetched): headline tiles with the change
    /// against `previous`, a chart per KPI with a line per group, the worst groups, and the orders
    /// behind the worst numbers, each linking to `/traces/<order id>`.
    public static func html(current d: KPIDocument, previous p: KPIDocument?, contributors: [KPIContributor] = [],
                            title: String = "Waybill KPIs") -> String
    {
        HTMLReport(current: d, previous: p, contributors: contributors, title: title).render()
    }

    /// The KPIs the tiles, the charts and the worst-groups ranking lead with.
    public static let headline: [KPIMetric] = [.fillRate, .orderFillRate, .allocationDelay(.p95), .shipmentLag(.p95), .onTimeRate]
}

struct HTMLReport {
    let current: KPIDocument
    let previous: KPIDocument?
    let contributors: [KPIContributor]
    let title: String

    static let palette = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777", "#4b5563", "#65a30d"]

    static let style = """
    body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;padding:24px;color:#111827;background:#f9fafb}
    h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
    .meta{color:#4b5563;margin:0}
    .tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;margin-top:18px}
    .tile{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:12px 14px}
    .tile .label{color:#4b5563;font-size:13px}.tile .value{font-size:26px;font-weight:600;margin:2px 0}
    .good{color:#15803d}.bad{color:#b91c1c}.flat{color:#6b7280}.prev{color:#6b7280;font-size:12px}
    .charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:14px}
    figure{margin:0;background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px}
    figcaption{font-weight:600;margin-bottom:4px}svg{width:100%;height:auto;display:block}
    svg text{font-size:11px;fill:#6b7280}.axis{stroke:#d1d5db}.grid{stroke:#f3f4f6}
    .legend{display:flex;flex-wrap:wrap;gap:10px;font-size:12px;margin-top:4px}.legend span::before{content:"";display:inline-block;width:10px;height:3px;margin-right:4px;vertical-align:middle;background:var(--c)}
    table{border-collapse:collapse;background:#fff;border:1px solid #e5e7eb}th,td{padding:6px 10px;border-bottom:1px solid #f3f4f6;text-align:right;white-space:nowrap}
    th{background:#f3f4f6;font-weight:600}td:first-child,th:first-child{text-align:left}td.worst{background:#fef2f2;font-weight:600}
    small{color:#6b7280}ol{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px 10px 10px 36px}li{margin:3px 0}
    a{color:#1d4ed8}.note{color:#6b7280}
    """

    func render() -> String {
        let q = current.query
        var h = "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        h += "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
        h += "<title>" + esc(title) + "</title><style>" + Self.style + "</style></head><body>\n"
        h += "<header><h1>" + esc(title) + "</h1><p class=\"meta\">" + esc(KPIFormatting.window(q))
        if let by = current.groupKeyName { h += " · by " + esc(by) }
        if let s = q.step { h += " · step " + esc(DurationText.format(s)) }
        h += "</p>"
        if let p = previous { h += "<p class=\"meta\">Change against " + esc(KPIFormatting.window(p.query)) + "</p>" }
        h += "</header>\n"
        h += tiles() + charts() + worstGroups() + contributorList()
        h += "</body></html>\n"
        return h
    }

    func tiles() -> String {
        var h = "<section class=\"tiles\">"
        for m in KPIRender.headline {
            let v = current.total.value(m)
            h += "<div class=\"tile\"><div class=\"label\">" + esc(m.label) + "</div>"
            h += "<div class=\"value\">" + esc(KPIFormatting.value(v, m.kind)) + "</div>"
            if let p = previous {
                let before = p.total.value(m)
                let c = KPIFormatting.change(m, current: v, previous: before)
                h += "<div class=\"change " + cls(c) + "\">" + esc(c.text) + "</div>"
                h += "<div class=\"prev\">previous " + esc(KPIFormatting.value(before, m.kind)) + "</div>"
            }
            h += "</div>"
        }
        let volume = "\(current.total.ordersAllocated) orders allocated · \(current.total.shipments) shipped"
        return h + "</section><p class=\"meta\">" + esc(volume) + "</p>\n"
    }

    func charts() -> String {
        var h = "<section><h2>Over time</h2>"
        guard !current.series.isEmpty else {
            return h + "<p class=\"note\">No time series: ask for a step (for example <code>--step 1h</code>).</p></section>\n"
        }
        h += "<div class=\"charts\">"
        for m in KPIRender.headline + [.ordersAllocated, .shipments] {
            h += "<figure><figcaption>" + esc(m.label) + "</figcaption>" + chart(m)
            if current.groupKeyName != nil {
                h += "<div class=\"legend\">"
                for (i, s) in current.series.enumerated() {
                    h += "<span style=\"--c:" + color(i) + "\">" + esc(KPIFormatting.groupName(s.value)) + "</span>"
                }
                h += "</div>"
            }
            h += "</figure>"
        }
        return h + "</div></section>\n"
    }

    func color(_ i: Int) -> String { Self.palette[i % Self.palette.count] }

    /// A line per series; gaps where the KPI is undefined (a ratio over nothing).
    func chart(_ m: KPIMetric) -> String {
        let width = 560.0, height = 200.0, left = 58.0, right = 10.0, top = 10.0, bottom = 24.0
        let q = current.query
        let values = current.series.flatMap { $0.points.compactMap { $0.kpis.value(m) } }
        var lo = 0.0, hi = values.max() ?? 1
        if m.kind == .ratio {
            hi = 1
            if let mn = values.min() { lo = Swift.max(0, ((mn - 0.05) * 10).rounded(.down) / 10) }
        }
        if hi <= lo { hi = lo + 1 }
        let span = Double(q.to - q.from)
        func x(_ t: Micros) -> Double { left + (width - left - right) * Double(t - q.from) / span }
        func y(_ v: Double) -> Double { top + (height - top - bottom) * (1 - (v - lo) / (hi - lo)) }
        func n(_ v: Double) -> String { KPIFormatting.fixed(v, 1) }

        var s = "<svg viewBox=\"0 0 \(n(width)) \(n(height))\" role=\"img\" aria-label=\"" + esc(m.label) + " over time\">"
        for i in 0...2 {
            let v = lo + (hi - lo) * Double(i) / 2
            s += "<line class=\"grid\" x1=\"\(n(left))\" x2=\"\(n(width - right))\" y1=\"\(n(y(v)))\" y2=\"\(n(y(v)))\"/>"
            s += "<text x=\"\(n(left - 4))\" y=\"\(n(y(v) + 4))\" text-anchor=\"end\">" + esc(KPIFormatting.value(v, m.kind)) + "</text>"
        }
        s += "<line class=\"axis\" x1=\"\(n(left))\" x2=\"\(n(width - right))\" y1=\"\(n(height - bottom))\" y2=\"\(n(height - bottom))\"/>"
        s += "<text x=\"\(n(left))\" y=\"\(n(height - 6))\">" + esc(shortTime(q.from)) + "</text>"
        s += "<text x=\"\(n(width - right))\" y=\"\(n(height - 6))\" text-anchor=\"end\">" + esc(shortTime(q.to)) + "</text>"
        for (i, series) in current.series.enumerated() {
            var path = ""
            var pen = false
            var dots = ""
            for p in series.points {
                guard let v = p.kpis.value(m) else { pen = false; continue }
                let a = Swift.max(p.start, q.from), b = Swift.min(p.end, q.to)
                let px = x(a + (b - a) / 2), py = y(v)
                path += (pen ? "L" : "M") + n(px) + " " + n(py)
                pen = true
                if series.points.count <= 200 {
                    let label = KPIFormatting.groupName(series.value) + " " + shortTime(p.start) + ": " + KPIFormatting.value(v, m.kind)
                    dots += "<circle cx=\"\(n(px))\" cy=\"\(n(py))\" r=\"2.5\" fill=\"\(color(i))\"><title>" + esc(label) + "</title></circle>"
                }
            }
            if !path.isEmpty {
                s += "<path d=\"" + path + "\" fill=\"none\" stroke=\"\(color(i))\" stroke-width=\"1.8\" stroke-linejoin=\"round\"/>"
            }
            s += dots
        }
        return s + "</svg>"
    }

    /// Groups ranked by their mean rank over the headline KPIs (worst first); the worst value of each column is marked.
    func worstGroups() -> String {
        guard let by = current.groupKeyName else { return "" }
        var h = "<section><h2>Worst groups by " + esc(by) + "</h2>"
        guard !current.groups.isEmpty else { return h + "<p class=\"note\">No orders in this window.</p></section>\n" }
        let groups = current.groups
        var score = Array(repeating: 0.0, count: groups.count)
        var seen = Array(repeating: 0, count: groups.count)
        var worstIndex: [KPIMetric: Int] = [:]
        for m in KPIRender.headline {
            var ranked: [(index: Int, value: Double)] = []
            for (i, g) in groups.enumerated() {
                if let v = g.kpis.value(m) { ranked.append((i, v)) }
            }
            let higherIsBetter = m.higherIsBetter
            ranked.sort { (a: (index: Int, value: Double), b: (index: Int, value: Double)) -> Bool in
                if a.value != b.value { return higherIsBetter ? a.value < b.value : a.value > b.value }
                return a.index < b.index
            }
            guard ranked.count > 1 else { continue }
            worstIndex[m] = ranked[0].index
            for (r, e) in ranked.enumerated() {
                score[e.index] += Double(r) / Double(ranked.count - 1)
                seen[e.index] += 1
            }
        }
        func badness(_ i: Int) -> Double { seen[i] == 0 ? 1 : score[i] / Double(seen[i]) }
        let order = groups.indices.sorted { (a: Int, b: Int) -> Bool in
            badness(a) != badness(b) ? badness(a) < badness(b) : groupOrder(groups[a].value, groups[b].value)
        }
        let columns: [KPIMetric] = [.ordersAllocated] + KPIRender.headline + [.shipments]
        h += "<table><thead><tr><th>" + esc(by) + "</th>"
        for m in columns { h += "<th>" + esc(m.label) + "</th>" }
        h += "</tr></thead><tbody>"
        for i in order.prefix(25) {
            let g = groups[i]
            let before = previous?.group(g.value)?.kpis
            h += "<tr><td>" + esc(KPIFormatting.groupName(g.value)) + "</td>"
            for m in columns {
                h += worstIndex[m] == i ? "<td class=\"worst\">" : "<td>"
                h += esc(KPIFormatting.value(g.kpis, m))
                if previous != nil {
                    let c = KPIFormatting.change(m, current: g.kpis.value(m), previous: before?.value(m))
                    if c.text != KPIFormatting.missing { h += " <small class=\"" + cls(c) + "\">" + esc(c.text) + "</small>" }
                }
                h += "</td>"
            }
            h += "</tr>"
        }
        h += "</tbody></table>"
        if groups.count > 25 { h += "<p class=\"note\">\(groups.count - 25) more groups not shown.</p>" }
        return h + "</section>\n"
    }

    func contributorList() -> String {
        var h = "<section><h2>Orders that contributed most</h2>"
        guard !contributors.isEmpty else { return h + "<p class=\"note\">No orders stand out in this window.</p></section>\n" }
        h += "<ol>"
        for c in contributors {
            h += "<li><a href=\"/traces/" + esc(URLText.pathSegment(c.orderID)) + "\">" + esc(c.orderID) + "</a> — " + esc(c.reason) + "</li>"
        }
        return h + "</ol></section>\n"
    }

    func cls(_ c: KPIFormatting.Change) -> String {
        switch c.good {
        case .some(true): return "good"
        case .some(false): return "bad"
        case .none: return "flat"
        }
    }

    /// `2026-11-02 06:00` (UTC), enough for axis labels.
    func shortTime(_ t: Micros) -> String {
        let s = RFC3339.format(t)
        return String(s.prefix(16)).replacingOccurrences(of: "T", with: " ")
    }
}

/// Escapes text for HTML element content and quoted attribute values.
func esc(_ s: String) -> String { HTMLText.escape(s) }
