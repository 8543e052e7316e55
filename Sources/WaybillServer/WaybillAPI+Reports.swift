import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import WaybillKPI
import WaybillModel
import WaybillQuery
import WaybillReports
import WaybillStore

/// `GET /api/v1/reports`: the saved reports this server knows (`serve --queries DIR`).
public struct ReportListDocument: Codable, Sendable, Equatable {
    public struct Delivery: Codable, Sendable, Equatable {
        public var name: String
        public var format: String
    }

    public struct Report: Codable, Sendable, Equatable {
        public var name: String
        public var title: String
        public var description: String?
        public var window: String
        public var timeZone: String
        public var by: String?
        public var stepS: Double?
        public var kpis: [String]
        public var schedule: String?
        /// The next scheduled time, when the report has a schedule.
        public var nextAt: String?
        public var deliver: [Delivery]
        /// The HTML rendering as of now (`?at=` and `?format=` change it).
        public var url: String

        enum CodingKeys: String, CodingKey {
            case name, title, description, window, timeZone = "time_zone", by, stepS = "step_s", kpis, schedule, nextAt = "next_at", deliver, url
        }
    }

    public var reports: [Report]

    public init(_ defs: [ReportDefinition], now: Micros) {
        reports = defs.map { r in
            Report(name: r.name, title: r.title, description: r.description, window: r.window.description, timeZone: r.zone.identifier,
                   by: r.by?.rawValue, stepS: r.step.map { Double($0) / 1e6 }, kpis: r.kpis.map(\.description),
                   schedule: r.schedule?.expression, nextAt: r.schedule?.next(after: now).map(RFC3339.format),
                   deliver: r.deliver.map { Delivery(name: String($0.hook.name.dropFirst("report:\(r.name):".count)), format: $0.format.rawValue) },
                   url: "/api/v1/reports/" + URLText.pathSegment(r.name) + "?format=html")
        }
    }
}

extension WaybillAPI {
    var savedReports: [ReportDefinition] { config.savedQueries?.reports ?? [] }

    /// `GET /api/v1/reports`.
    func listReports(_ req: Request) async throws -> Response {
        _ = try ReportParameters(req.parameterDictionary, known: [])
        return try jsonDocument(ReportListDocument(savedReports, now: clock()))
    }

    /// `GET /api/v1/reports/{name}?at=&format=html|csv|json|md`: the saved report rendered as of `at` (default now).
    func getReport(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        guard let raw = ctx.parameters.get("name") else { throw APIError(.badRequest, "name: missing") }
        let name = raw.removingPercentEncoding ?? raw
        guard let def = savedReports.first(where: { $0.name == name }) else {
            throw APIError(.notFound, "no saved report '\(name)'" + (config.savedQueries == nil ? " (the server was started without --queries)" : ""))
        }
        let p = try ReportParameters(req.parameterDictionary, known: ["at", "format"])
        let format = try ReportRenderer.parseFormat(p.values["format"])
        let at = try ReportRenderer.instant(p.values["at"], now: clock())
        let body = try await ReportRenderer.render(def, format: format, at: at, using: queries)
        return Response(status: .ok, headers: [.contentType: ReportRenderer.contentType(format)], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// `POST /api/v1/reports/{name}/send?at=`: renders the saved report as of `at` (default now) and queues one
    /// notification per hook in the outbox; the server's delivery worker signs, sends and retries them as it
    /// does scheduled reports. 409 when this server delivers no reports (no alerting or no outbox).
    func sendReport(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        guard let raw = ctx.parameters.get("name") else { throw APIError(.badRequest, "name: missing") }
        let name = raw.removingPercentEncoding ?? raw
        guard let def = savedReports.first(where: { $0.name == name }) else {
            throw APIError(.notFound, "no saved report '\(name)'" + (config.savedQueries == nil ? " (the server was started without --queries)" : ""))
        }
        let p = try ReportParameters(req.parameterDictionary, known: ["at"])
        guard !def.deliver.isEmpty else { throw APIError(.conflict, "report '\(name)' has no deliver hooks in \(def.file)") }
        guard let alerting, let outbox = store as? any AlertStore else {
            throw APIError(.conflict, "this server delivers no reports (on a shared ClickHouse store, the --alerts server does)")
        }
        let now = clock()
        let at = try ReportRenderer.instant(p.values["at"], now: now)
        let doc = try await ReportRenderer.document(def, at: at, using: queries)
        let fp = try await ReportOutbox.queue(doc, def, base: alerting.engine.baseURL, outbox: outbox, now: now)
        return try jsonDocument(ReportSendDocument(report: def.name, fingerprint: fp, items: try ReportOutbox.notifications(fp, in: outbox)))
    }

    /// `/reports`: the saved reports, each linked to its HTML rendering.
    func reportsPage(_ req: Request) async throws -> Response {
        let e = WebPages.escape
        var b = "<h1>Reports</h1>"
        if config.savedQueries == nil {
            b += "<p>No saved reports are loaded. Start the server with <code>waybill serve --queries queries/</code>.</p>"
        }
        let list = ReportListDocument(savedReports, now: clock())
        if !list.reports.isEmpty {
            b += "<table><tr><th>report</th><th>window</th><th>by</th><th>schedule</th><th>next</th><th>formats</th></tr>"
            for r in list.reports {
                let base = "/api/v1/reports/" + URLText.pathSegment(r.name)
                b += "<tr><td><a href=\"\(e(r.url))\">\(e(r.title))</a><div class=\"muted\">\(e(r.name))</div></td>"
                b += "<td>\(e(r.window)) (\(e(r.timeZone)))</td><td>\(e(r.by ?? "–"))</td><td><code>\(e(r.schedule ?? "–"))</code></td>"
                b += "<td>\(e(r.nextAt ?? "–"))</td><td>"
                b += ["html", "md", "csv", "json"].map { "<a href=\"\(e(base + "?format=" + $0))\">\($0)</a>" }.joined(separator: " ")
                b += "</td></tr>"
            }
            b += "</table>"
        }
        return WebPages.page("Reports", b)
    }
}

/// Query parameters of the report routes: unknown names are refused.
struct ReportParameters {
    var values: [String: String]
    init(_ values: [String: String], known: [String]) throws(QueryFailure) {
        for k in values.keys.sorted() where !known.contains(k) {
            throw .badRequest(FieldError(field: k, rule: known.isEmpty ? "unknown parameter; this route takes none" : "unknown parameter; known: \(known.joined(separator: ", "))"))
        }
        self.values = values.filter { !$0.value.isEmpty }
    }
}

/// Runs the report scheduler: queues each scheduled report when due (the alert delivery worker sends it).
struct ReportScheduleService: Service {
    let scheduler: ReportScheduler
    let clock: any ServiceClock
    let logger: Logger

    /// The service for `saved`'s scheduled reports over `store`, nil when none is scheduled or the store
    /// keeps no outbox and checkpoints.
    static func make(_ saved: SavedQueries?, store: any WaybillStore, queries: any WaybillQueries, baseURL: String, clock: any ServiceClock,
                     logger: Logger) -> ReportScheduleService? {
        guard let saved, saved.reports.contains(where: { $0.schedule != nil }),
              let outbox = store as? any AlertStore, let checkpoints = store as? any WorkflowStore else { return nil }
        let log = logger
        let scheduler = ReportScheduler(reports: saved.reports, queries: queries, outbox: outbox, checkpoints: checkpoints, baseURL: baseURL,
                                        log: { log.warning("\($0)") })
        return ReportScheduleService(scheduler: scheduler, clock: clock, logger: logger)
    }

    func run() async throws {
        logger.info("scheduled reports: \(scheduler.reports.map { "\($0.name) (\($0.schedule!.description))" }.joined(separator: ", "))")
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let next = await scheduler.runDue(now: clock.now())
            try? await cancelWhenGracefulShutdown { try await clock.sleep(until: next) }
        }
    }
}
