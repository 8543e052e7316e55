import Foundation
import Hummingbird
import WaybillAlerts
import WaybillKPI
import WaybillModel
import WaybillQuery
import WaybillStore

/// The overview page (`/`): the panels of the dashboard file, each filled from the query layer (the same
/// calls as the API, so the figures equal the API's for the same window) and rendered by `overview.mustache`.
struct OverviewPage {
    struct Tile {
        var label, metric, value, previous, change, changeClass, href, explainHref: String
        var sparklineSVG: TrustedHTML
    }

    struct Tiles {
        var from, to, step: String
        var reportHref: String
        var tiles: [Tile]
    }

    struct AlertRow {
        var state, rule, summary, labels, value, since: String
        var orders: [Link]
        var more: Int?
    }

    struct Link { var href, text: String }

    struct Alerts {
        var configured: Bool
        var rows: [AlertRow]
        var hidden: Int?
    }

    struct StuckStage {
        struct Order { var href, id, age, since: String; var barStyle: String }
        var stage: String
        var count: Int
        var searchHref: String
        var orders: [Order]
    }

    struct Stuck { var at: String; var stages: [StuckStage] }

    struct IngestRow { var source, perSecond, rejectedPerSecond, lagP50, lagP95, lagMax, accepted, rejected: String }
    struct Ingest { var windowSeconds: String; var queueDepth: String; var rows: [IngestRow] }

    struct ServiceRow { var service, perSecond, errorRate, errors, spans, p50, p95, p99: String; var errorClass: String }
    struct Services { var from, to: String; var rows: [ServiceRow]; var hidden: Int?; var truncated: Bool; var href: String }

    struct Panel {
        var title: String
        var wide: Bool
        var kind: String
        var kpiTiles: Tiles?
        var alerts: Alerts?
        var stuck: Stuck?
        var ingest: Ingest?
        var services: Services?
        var error: String?
    }

    var title: String
    var refreshSeconds: Int?
    var source: String
    var panels: [Panel]
}

extension WaybillAPI {
    /// The dashboard the overview draws: the one the server was started with, else the shipped one.
    var dashboard: Result<Dashboard, DashboardFileError> {
        if let d = config.dashboard { return .success(d) }
        return Dashboard.shipped
    }

    func overviewPage(_ req: Request) async throws -> Response {
        let dashboard: Dashboard
        switch self.dashboard {
        case .success(let d): dashboard = d
        case .failure(let e): return WebPages.page("Overview", "<h1>Overview</h1><p class=\"error\">\(HTMLText.escape(e.description))</p>")
        }
        var panels: [OverviewPage.Panel] = []
        for p in dashboard.panels {
            var panel = OverviewPage.Panel(title: p.title, wide: p.wide, kind: p.kind.rawValue)
            do {
                switch p.kind {
                case .kpiTiles: panel.kpiTiles = try await kpiTiles(p)
                case .alerts: panel.alerts = try await alertsPanel(p)
                case .stuckOrders: panel.stuck = try await stuckPanel(p)
                case .ingest: panel.ingest = ingestPanel()
                case .services: panel.services = try await servicesPanel(p)
                }
            } catch {
                panel.error = (error as? QueryFailure)?.description ?? "\(error)"
            }
            panels.append(panel)
        }
        let page = OverviewPage(title: dashboard.title, refreshSeconds: dashboard.refresh.map { Int($0 / 1_000_000) },
                                source: dashboard.file, panels: panels)
        return WebPages.render("overview", page)
    }

    /// Dragging across a tile's sparkline opens `/kpis` on that range, charting the tile's KPI per step.
    func sparklineBrush(_ starts: [Micros], base: [String: String], chart: KPIMetric) -> SVGChart.Brush? {
        guard let first = starts.first, let last = starts.last, last > first else { return nil }
        var q = base
        q["chart"] = chart.description
        return SVGChart.Brush(href: "/kpis?" + URLText.query(q), from: first, to: last)
    }

    /// KPI tiles: the window ending now against the window before it, and a sparkline per step.
    func kpiTiles(_ p: Dashboard.Panel) async throws -> OverviewPage.Tiles {
        let now = clock()
        let step = p.step ?? p.window
        // Whole steps: the window ends at the end of the current step, so each point is a full step but the last.
        let to = (now / step + 1) * step
        let request = KPIRequest(from: RFC3339.format(to - p.window), to: RFC3339.format(to), step: DurationText.format(step))
        let current = try await queries.kpis(request)
        let previous = try await queries.kpis(request.previous(of: current))
        let points = current.series.first?.points ?? []
        let base = ["from": request.from!, "to": request.to!, "step": request.step!]
        let tiles = p.kpis.map { m -> OverviewPage.Tile in
            let c = current.total.value(m), prev = previous.total.value(m)
            let change = KPIFormatting.change(m, current: c, previous: prev)
            var explain = base
            explain["explain"] = m.description
            explain.removeValue(forKey: "step")
            return OverviewPage.Tile(
                label: m.label, metric: m.description, value: KPIFormatting.value(c, m.kind), previous: KPIFormatting.value(prev, m.kind),
                change: change.text, changeClass: change.good.map { $0 ? "up" : "down" } ?? "flat",
                href: "/kpis?" + URLText.query(base), explainHref: "/kpis?" + URLText.query(explain),
                sparklineSVG: SVGChart.sparkline(points.map { $0.kpis.value(m) }, label: m.label + " per " + DurationText.format(step),
                                                 brush: sparklineBrush(points.map(\.start), base: base, chart: m)))
        }
        return OverviewPage.Tiles(from: request.from!, to: request.to!, step: request.step!, reportHref: "/kpis?" + URLText.query(base), tiles: tiles)
    }

    func alertsPanel(_ p: Dashboard.Panel) async throws -> OverviewPage.Alerts {
        let doc = try await queries.alerts(AlertsRequest(state: p.state))
        let shown = doc.alerts.filter { p.state != nil || $0.state != AlertState.resolved.rawValue }
        let rows = shown.prefix(p.limit).map { WebPages.alertRow($0, orders: 3) }
        return OverviewPage.Alerts(configured: alerting != nil, rows: Array(rows), hidden: shown.count > p.limit ? shown.count - p.limit : nil)
    }

    func stuckPanel(_ p: Dashboard.Panel) async throws -> OverviewPage.Stuck {
        let doc = try await queries.stuck(StuckRequest(stages: p.stages ?? StuckRequest.defaultStages, limit: p.limit))
        let longest = doc.stages.flatMap(\.orders).map(\.ageSeconds).max() ?? 0
        let stages = doc.stages.map { s in
            OverviewPage.StuckStage(
                stage: s.stage, count: s.count, searchHref: "/search?" + URLText.query(["state": s.stage]),
                orders: s.orders.map { o in
                    .init(href: WebPages.orderLink(o.id), id: o.id, age: KPIFormatting.seconds(o.ageSeconds), since: o.since,
                          barStyle: "width:" + SVGChart.n(longest > 0 ? max(1, o.ageSeconds / longest * 80) : 0) + "px")
                })
        }
        return OverviewPage.Stuck(at: doc.at, stages: stages)
    }

    func ingestPanel() -> OverviewPage.Ingest {
        let h = metrics.ingestHealth()
        func secs(_ v: Double?) -> String { v.map(KPIFormatting.seconds) ?? KPIFormatting.missing }
        func rate(_ v: Double) -> String { KPIFormatting.fixed(v, v < 10 ? 2 : 1) }
        return OverviewPage.Ingest(
            windowSeconds: SVGChart.n(h.windowSeconds), queueDepth: h.queueDepth.map(String.init) ?? KPIFormatting.missing,
            rows: h.sources.map {
                .init(source: $0.source, perSecond: rate($0.eventsPerSecond), rejectedPerSecond: rate($0.rejectionsPerSecond),
                      lagP50: secs($0.lagP50Seconds), lagP95: secs($0.lagP95Seconds), lagMax: secs($0.lagMaxSeconds),
                      accepted: String($0.acceptedTotal), rejected: String($0.rejectedTotal))
            })
    }

    func servicesPanel(_ p: Dashboard.Panel) async throws -> OverviewPage.Services {
        let now = clock()
        let request = ServicesRequest(from: RFC3339.format(now - p.window), to: RFC3339.format(now))
        let report = try await queries.services(request)
        let rows = report.services.sorted { ($0.spans, $1.service) > ($1.spans, $0.service) }
        return OverviewPage.Services(
            from: request.from!, to: request.to!,
            rows: rows.prefix(p.limit).map { r in
                .init(service: r.service, perSecond: KPIFormatting.fixed(r.perSecond, 2), errorRate: KPIFormatting.fixed(r.errorRate * 100, 2) + "%",
                      errors: String(r.errors), spans: String(r.spans), p50: KPIFormatting.seconds(r.latency.p50 / 1000),
                      p95: KPIFormatting.seconds(r.latency.p95 / 1000), p99: KPIFormatting.seconds(r.latency.p99 / 1000),
                      errorClass: r.errorRate >= 0.05 ? "bad" : r.errorRate > 0 ? "warn" : "")
            },
            hidden: rows.count > p.limit ? rows.count - p.limit : nil, truncated: report.truncated,
            href: "/services?" + URLText.query(request.parameters))
    }
}

extension WebPages {
    /// One alert as a row of the alerts tables (overview and `/alerts`), with links to at most `orders` of its orders.
    static func alertRow(_ r: AlertDocument, orders: Int) -> OverviewPage.AlertRow {
        let labels = r.labels.filter { $0.key != "alertname" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let shown = r.orders.prefix(orders)
        return OverviewPage.AlertRow(state: r.state, rule: r.rule, summary: r.annotations["summary"] ?? "", labels: labels,
                                     value: AlertTransitions.formatValue(r.value), since: r.since,
                                     orders: shown.map { OverviewPage.Link(href: orderLink($0), text: $0) },
                                     more: r.ordersTotal > shown.count ? r.ordersTotal - shown.count : nil)
    }
}
