import Foundation
import Hummingbird
import WaybillKPI
import WaybillModel
import WaybillQuery

/// `/services`: the service map of a window (default the last hour) as an inline SVG graph, services
/// as nodes and the calls between them (a span whose parent is in another service) as edges labelled
/// with their count and error rate, then rate, errors and duration per service. The same service
/// report as `GET /api/v1/services` with the same `from`/`to`.
struct ServicesPage {
    struct Row {
        var service, spans, perSecond, errors, errorRate, p50, p90, p95, p99, max: String
        var failing: Bool
    }
    struct Edge { var from, to, calls, errors, errorRate: String; var failing: Bool }

    var title = "Services"
    var from: String
    var to: String
    var fromValue: String
    var toValue: String
    var truncated: Bool
    var error: String?
    var mapSVG: TrustedHTML
    /// Spans per second of the busiest services, per step of the window (drag across it to zoom).
    var rateSVG: TrustedHTML?
    var rateTitle: String?
    var services: [Row]
    var edges: [Edge]
    var jsonHref: String

    /// An error rate at or above this marks a service or an edge (red).
    static let failingRate = 0.05

    init(_ r: ServiceReport, parameters: [String: String], error: String? = nil) {
        from = RFC3339.format(r.from)
        to = RFC3339.format(r.to)
        fromValue = parameters["from"] ?? ""
        toValue = parameters["to"] ?? ""
        truncated = r.truncated
        self.error = error
        func ms(_ v: Double) -> String { DurationText.format(Micros((v * 1000).rounded())) }
        func pct(_ v: Double) -> String { String(format: "%.1f%%", v * 100) }
        services = r.services.map { s in
            Row(service: s.service, spans: String(s.spans), perSecond: WaybillAPI.rateLabel(s.perSecond), errors: String(s.errors),
                errorRate: pct(s.errorRate), p50: ms(s.latency.p50), p90: ms(s.latency.p90), p95: ms(s.latency.p95), p99: ms(s.latency.p99), max: ms(s.latency.max),
                failing: s.errorRate >= Self.failingRate)
        }
        edges = r.edges.map { e in
            let rate = e.calls > 0 ? Double(e.errors) / Double(e.calls) : 0
            return Edge(from: e.from, to: e.to, calls: String(e.calls), errors: String(e.errors), errorRate: pct(rate), failing: rate >= Self.failingRate)
        }
        mapSVG = TrustedHTML(escapedMarkup: ServiceMapSVG(r).markup)
        jsonHref = "/api/v1/services" + (parameters.isEmpty ? "" : "?" + URLText.query(parameters))
    }
}

/// The service map: services in columns by how deep they are called (a service nobody calls is on
/// the left), each edge a curve from caller to callee, its width by calls, red when its error rate
/// is at or above 5%, labelled `calls · error rate`. Every name escaped.
struct ServiceMapSVG {
    let markup: String
    static let nodeWidth = 170.0, nodeHeight = 44.0, columnGap = 120.0, rowGap = 26.0, margin = 20.0

    init(_ r: ServiceReport) {
        let e = HTMLText.escape
        let names = Set(r.services.map(\.service) + r.edges.flatMap { [$0.from, $0.to] }).sorted()
        guard !names.isEmpty else {
            markup = "<p class=\"muted\">No spans in this window.</p>"
            return
        }
        // Column: the longest chain of callers above a service, ignoring calls that close a cycle.
        var callers: [String: [String]] = [:]
        for edge in r.edges where edge.from != edge.to { callers[edge.to, default: []].append(edge.from) }
        var depth: [String: Int] = [:]
        func column(_ s: String, _ visiting: inout Set<String>) -> Int {
            if let d = depth[s] { return d }
            visiting.insert(s)
            var d = 0
            for c in callers[s] ?? [] where !visiting.contains(c) { d = Swift.max(d, column(c, &visiting) + 1) }
            visiting.remove(s)
            depth[s] = d
            return d
        }
        for n in names {
            var v = Set<String>()
            _ = column(n, &v)
        }
        let columns = Dictionary(grouping: names, by: { depth[$0]! }).mapValues { $0.sorted() }
        let rows = columns.values.map(\.count).max() ?? 1
        let width = Self.margin * 2 + Double(columns.count) * Self.nodeWidth + Double(Swift.max(0, columns.count - 1)) * Self.columnGap
        let height = Self.margin * 2 + Double(rows) * Self.nodeHeight + Double(rows - 1) * Self.rowGap + 30
        var position: [String: (x: Double, y: Double)] = [:]
        for (c, list) in columns {
            let top = Self.margin + (Double(rows - list.count) * (Self.nodeHeight + Self.rowGap)) / 2
            for (i, n) in list.enumerated() {
                position[n] = (Self.margin + Double(c) * (Self.nodeWidth + Self.columnGap), top + Double(i) * (Self.nodeHeight + Self.rowGap))
            }
        }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        let maxCalls = Double(r.edges.map(\.calls).max() ?? 1)
        var out = ""
        for edge in r.edges {
            guard let a = position[edge.from], let b = position[edge.to] else { continue }
            let rate = edge.calls > 0 ? Double(edge.errors) / Double(edge.calls) : 0
            let colour = rate >= ServicesPage.failingRate ? "#d93f3c" : "#8aa4c8"
            let w = 1 + 5 * log1p(Double(edge.calls)) / log1p(maxCalls)
            let path: String
            let label: (Double, Double)
            if edge.from == edge.to {
                let x = a.x + Self.nodeWidth * 0.7, y = a.y
                path = "M\(f(x)),\(f(y)) C\(f(x)),\(f(y - 34)) \(f(x + 40)),\(f(y - 34)) \(f(x + 40)),\(f(y + 8))"
                label = (x + 20, y - 28)
            } else if b.x > a.x {
                let x1 = a.x + Self.nodeWidth, y1 = a.y + Self.nodeHeight / 2, x2 = b.x, y2 = b.y + Self.nodeHeight / 2
                let mx = (x1 + x2) / 2
                path = "M\(f(x1)),\(f(y1)) C\(f(mx)),\(f(y1)) \(f(mx)),\(f(y2)) \(f(x2 - 6)),\(f(y2))"
                // Near the callee, where edges from one caller have spread apart.
                label = (x2 - 40, y2 - 6)
            } else {
                // A call back to a column on the left (or the same): below the boxes.
                let x1 = a.x + Self.nodeWidth / 2, y1 = a.y + Self.nodeHeight, x2 = b.x + Self.nodeWidth / 2, y2 = b.y + Self.nodeHeight
                let low = Swift.max(y1, y2) + 24
                path = "M\(f(x1)),\(f(y1)) C\(f(x1)),\(f(low)) \(f(x2)),\(f(low)) \(f(x2)),\(f(y2 + 6))"
                label = ((x1 + x2) / 2, low - 2)
            }
            let text = "\(edge.calls) · " + String(format: "%.1f%%", rate * 100)
            out += "<g class=\"edge\"><title>\(e(edge.from)) → \(e(edge.to)): \(edge.calls) calls, \(edge.errors) errors</title>"
                + "<path d=\"\(path)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"\(f(w))\" marker-end=\"url(#arrow)\"/>"
                + "<text x=\"\(f(label.0))\" y=\"\(f(label.1))\" text-anchor=\"middle\" class=\"el\(rate >= ServicesPage.failingRate ? " bad" : "")\">\(e(text))</text></g>"
        }
        let rowsByName = Dictionary(uniqueKeysWithValues: r.services.map { ($0.service, $0) })
        for n in names {
            let p = position[n]!
            let row = rowsByName[n]
            let failing = (row?.errorRate ?? 0) >= ServicesPage.failingRate
            let label = n.count > 24 ? String(n.prefix(23)) + "…" : n
            let stats = row.map { WaybillAPI.rateText($0.perSecond) + String(format: " · %.1f%% err · p95 ", $0.errorRate * 100) + DurationText.format(Micros($0.latency.p95 * 1000)) } ?? "no spans of its own"
            out += "<g class=\"node\"><title>\(e(n))</title><rect x=\"\(f(p.x))\" y=\"\(f(p.y))\" width=\"\(f(Self.nodeWidth))\" height=\"\(f(Self.nodeHeight))\" rx=\"6\""
                + " fill=\"\(failing ? "#fde2e2" : "#fff")\" stroke=\"\(failing ? "#d93f3c" : "#7a8ca8")\"/>"
                + "<text x=\"\(f(p.x + 8))\" y=\"\(f(p.y + 17))\" class=\"nn\">\(e(label))</text>"
                + "<text x=\"\(f(p.x + 8))\" y=\"\(f(p.y + 34))\" class=\"ns\">\(e(stats))</text></g>"
        }
        markup = "<svg class=\"map\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(f(width)) \(f(height))\" width=\"\(f(Swift.min(width, 1200)))\" role=\"img\" aria-label=\"service map\">"
            + "<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"9\" refY=\"5\" markerWidth=\"9\" markerHeight=\"9\" markerUnits=\"userSpaceOnUse\" orient=\"auto-start-reverse\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#667\"/></marker></defs>"
            + "<style>.nn{font:600 12px sans-serif;fill:#1b1f24}.ns{font:10px sans-serif;fill:#555}.el{font:10px sans-serif;fill:#445}.el.bad{fill:#b91c1c;font-weight:600}</style>"
            + out + "</svg>"
    }
}

extension WaybillAPI {
    /// The steps the rate chart may use; the smallest with at most `maxPoints` in the window.
    static let rateSteps: [Micros] = {
        let seconds: [Micros] = [60, 300, 900, 1800, 3600, 10_800, 21_600, 43_200, 86_400, 604_800]
        return seconds.map { $0 * 1_000_000 }
    }()
    static let maxRatePoints = 60

    /// The rate chart's step for a window of `length`: the smallest of `rateSteps` with at most
    /// `maxRatePoints` steps in it, else (a window of years) whole weeks, as many as keep it to that many
    /// points. Each point is one services query: a window of 26 years at one week a point made 1,370 of
    /// them (10.7 s for the page; schemathesis found it).
    static func rateStep(_ length: Micros) -> Micros {
        let limit = Micros(maxRatePoints)
        if let step = rateSteps.first(where: { (length + $0 - 1) / $0 <= limit }) { return step }
        let week = rateSteps[rateSteps.count - 1]
        let perPoint = length / limit + 1
        return (perPoint + week - 1) / week * week
    }

    /// Spans per second per step for the six busiest services of the report: one services query per step
    /// (steps on whole step boundaries, so a store's rollups answer them from rows), the first and last
    /// cut at the window's edges.
    func ratesChart(_ report: ServiceReport, into page: inout ServicesPage) async throws {
        let busiest = report.services.sorted { ($0.spans, $1.service) > ($1.spans, $0.service) }.prefix(6).map(\.service)
        guard !busiest.isEmpty else { return }
        let from = report.from, to = report.to
        let length: Micros = to - from
        let step = Self.rateStep(length)
        var cuts: [Micros] = [from]
        var t = (from / step + 1) * step
        while t < to { cuts.append(t); t += step }
        cuts.append(to)
        var series = busiest.map { SVGChart.Series(name: $0, points: []) }
        for (a, b) in zip(cuts, cuts.dropFirst()) {
            let r = try await queries.services(ServicesRequest(from: RFC3339.format(a), to: RFC3339.format(b)))
            let seconds = Double(b - a) / 1e6
            for (i, name) in busiest.enumerated() {
                let n = r.services.first { $0.service == name }?.spans ?? 0
                series[i].points.append((t: a, v: Double(n) / seconds))
            }
        }
        page.rateTitle = "Spans per second per " + DurationText.format(step) + " (drag across the chart to show that range)"
        page.rateSVG = SVGChart.lines(series, from: from, to: to, label: "spans per second", brushHref: "/services") { v in
            Self.rateLabel(v)
        }
    }

    /// A rate with its unit, for the map's boxes: per second from 1/s, else per minute, hour or day,
    /// whichever is at least 1 (`0.4/min`, not `0.00/s`).
    static func rateText(_ perSecond: Double) -> String {
        guard perSecond > 0, perSecond.isFinite else { return "0/s" }
        for (unit, seconds) in [("s", 1.0), ("min", 60.0), ("h", 3600.0)] where perSecond * seconds >= 1 {
            return KPIFormatting.fixed(perSecond * seconds, perSecond * seconds < 10 ? 2 : 1) + "/" + unit
        }
        return KPIFormatting.fixed(perSecond * 86_400, perSecond * 86_400 < 10 ? 2 : 1) + "/d"
    }

    /// A rate for the chart's axis and points and the table: two significant digits below 0.1/s, so that a
    /// quiet service over weeks (a span a day is 0.0000116/s) does not read 0.0000; at most 9 decimals.
    static func rateLabel(_ v: Double) -> String {
        guard v > 0, v.isFinite else { return KPIFormatting.fixed(v, 0) }
        if v >= 10 { return KPIFormatting.fixed(v, 1) }
        if v >= 0.1 { return KPIFormatting.fixed(v, 2) }
        return KPIFormatting.fixed(v, min(9, max(4, Int((-log10(v)).rounded(.down)) + 2)))
    }

    /// `/services?from=&to=`: a bad parameter shows the form with the reason (400).
    func servicesPage(_ req: Request) async throws -> Response {
        let params = req.parameterDictionary.filter { !$0.value.isEmpty }
        do {
            let report = try await queries.services(ServicesRequest(parameters: params))
            var page = ServicesPage(report, parameters: params)
            try await ratesChart(report, into: &page)
            return WebPages.render("services", page)
        } catch let e as QueryFailure {
            let now = clock()
            var page = ServicesPage(ServiceReport(spans: [], from: now - ServicesRequest.defaultWindow, to: now), parameters: params, error: e.description)
            page.mapSVG = TrustedHTML(escapedMarkup: "")
            var r = WebPages.render("services", page)
            r.status = .badRequest
            return r
        }
    }
}
