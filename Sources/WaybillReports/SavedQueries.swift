// Saved queries, scheduled reports and the OCEL 2.0 export (issue 15).
import Foundation
import WaybillAlerts
import WaybillKPI
import WaybillModel
import WaybillQuery
import WaybillStore
import Yams

/// A problem in a saved-query file: the file, line, the entry and the field, and the rule it breaks
/// (the same shape, and the same YAML reader, as the alert rules').
public typealias SavedQueryError = AlertConfigError

/// One drill-down a report includes: the orders behind one figure, optionally of one group.
public struct ReportDrilldown: Sendable, Hashable {
    public var metric: KPIMetric
    /// With the report's `by`: only this group; `.some(nil)` is the group of orders without a value.
    public var group: String??
    public var limit: Int

    public init(metric: KPIMetric, group: String?? = .none, limit: Int = 10) {
        self.metric = metric
        self.group = group
        self.limit = limit
    }
}

/// Where and how a report is delivered: a hook as alert rules declare it, and the body's format.
public struct ReportDelivery: Sendable, Hashable {
    public enum Format: String, Sendable, Hashable, CaseIterable {
        /// The self-contained HTML page (`Content-Type: text/html`).
        case html
        /// The report document (`application/json`).
        case json
        /// A Slack incoming-webhook message: the headline figures as text, with a link to the HTML report.
        case slack
    }

    public var hook: HookConfig
    public var format: Format
}

/// A saved report of `queries/reports/NAME.yaml`.
public struct ReportDefinition: Sendable, Hashable {
    public var name: String
    public var title: String
    public var description: String?
    public var window: ReportWindow
    public var zone: ZonedClock
    public var by: KPIDimension?
    public var step: Micros?
    /// The KPIs the tables, the CSV and the Markdown show, in this order.
    public var kpis: [KPIMetric]
    public var split: TelemetrySplit?
    public var drilldowns: [ReportDrilldown]
    /// Whether the report compares with the window of the same length just before.
    public var comparePrevious: Bool
    public var schedule: CronSchedule?
    public var deliver: [ReportDelivery]
    public var file: String

    public static let defaultKPIs: [KPIMetric] = [.ordersAllocated, .fillRate, .orderFillRate, .allocationDelay(.p95), .shipmentLag(.p95),
                                                  .onTimeRate]

    public init(name: String, title: String, window: ReportWindow, zone: ZonedClock = .utc, by: KPIDimension? = nil, step: Micros? = nil,
                kpis: [KPIMetric] = defaultKPIs, split: TelemetrySplit? = nil, drilldowns: [ReportDrilldown] = [],
                comparePrevious: Bool = true, schedule: CronSchedule? = nil, deliver: [ReportDelivery] = [], description: String? = nil,
                file: String = "") {
        self.name = name
        self.title = title
        self.description = description
        self.window = window
        self.zone = zone
        self.by = by
        self.step = step
        self.kpis = kpis
        self.split = split
        self.drilldowns = drilldowns
        self.comparePrevious = comparePrevious
        self.schedule = schedule
        self.deliver = deliver
        self.file = file
    }

    /// The name a delivery hook has in the shared outbox: unique across reports and alert hooks.
    public static func outboxHook(report: String, hook: String) -> String { "report:\(report):\(hook)" }
}

/// A saved search of `queries/searches/NAME.yaml`: filters as `waybill search` takes them.
public struct SavedSearch: Sendable, Hashable {
    public var name: String
    public var title: String?
    public var description: String?
    /// Parameters of `waybill search` / `GET /api/v1/traces` (`state`, `stuck`, `warehouse`, `from`, ...).
    public var filters: [String: String]
    public var file: String

    /// The search request, with `overrides` (flags given beside `--saved`) taking precedence.
    public func request(overrides: [String: String] = [:]) throws(QueryFailure) -> SearchRequest {
        try SearchRequest(parameters: filters.merging(overrides) { _, new in new })
    }
}

/// The saved reports and searches of a `queries/` folder.
public struct SavedQueries: Sendable {
    public var reports: [ReportDefinition] = []
    public var searches: [SavedSearch] = []
    public init(reports: [ReportDefinition] = [], searches: [SavedSearch] = []) {
        self.reports = reports
        self.searches = searches
    }

    public func report(_ name: String) -> ReportDefinition? { reports.first { $0.name == name } }
    public func search(_ name: String) -> SavedSearch? { searches.first { $0.name == name } }

    /// Every delivery hook of every report, named as in the outbox.
    public var deliveryHooks: [HookConfig] { reports.flatMap { $0.deliver.map(\.hook) } }

    /// Reads `DIR/reports/*.yaml` and `DIR/searches/*.yaml` (either folder may be missing, not both).
    public static func load(directory: String) throws(SavedQueryError) -> SavedQueries {
        let reportsDir = (directory as NSString).appendingPathComponent("reports")
        let searchesDir = (directory as NSString).appendingPathComponent("searches")
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw SavedQueryError(file: directory, field: "directory", rule: "does not exist or is not a directory")
        }
        let hasReports = fm.fileExists(atPath: reportsDir), hasSearches = fm.fileExists(atPath: searchesDir)
        guard hasReports || hasSearches else {
            throw SavedQueryError(file: directory, field: "directory", rule: "holds neither reports/ nor searches/")
        }
        var out = SavedQueries()
        if hasReports { out.reports = try loadReports(directory: reportsDir) }
        if hasSearches { out.searches = try loadSearches(directory: searchesDir) }
        return out
    }

    static func yamlFiles(_ dir: String) throws(SavedQueryError) -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: dir).filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
                .map { (dir as NSString).appendingPathComponent($0) }
        } catch {
            throw SavedQueryError(file: dir, field: "directory", rule: "cannot be read: \(error.localizedDescription)")
        }
    }

    static func text(_ file: String) throws(SavedQueryError) -> String {
        guard let data = FileManager.default.contents(atPath: file), let text = String(data: data, encoding: .utf8) else {
            throw SavedQueryError(file: file, field: "file", rule: "cannot be read as UTF-8 text")
        }
        return text
    }

    public static func loadReports(directory: String) throws(SavedQueryError) -> [ReportDefinition] {
        try yamlFiles(directory).map { f throws(SavedQueryError) in try parseReport(yaml: try text(f), file: f) }
    }

    public static func loadSearches(directory: String) throws(SavedQueryError) -> [SavedSearch] {
        try yamlFiles(directory).map { f throws(SavedQueryError) in try parseSearch(yaml: try text(f), file: f) }
    }

    /// The name a file gives its query: the file name without `.yaml`/`.yml`.
    static func name(file: String) throws(SavedQueryError) -> String {
        let base = (file as NSString).lastPathComponent
        let name = base.hasSuffix(".yaml") ? String(base.dropLast(5)) : base.hasSuffix(".yml") ? String(base.dropLast(4)) : base
        guard name.range(of: "^[A-Za-z0-9][A-Za-z0-9_-]*$", options: .regularExpression) != nil else {
            throw SavedQueryError(file: file, field: "file", rule: "the file name is the query's name: letters, digits, - and _")
        }
        return name
    }

    static func root(_ yaml: String, file: String) throws(SavedQueryError) -> YAMLFields {
        let node: Node?
        do { node = try Yams.compose(yaml: yaml) } catch {
            var line: Int?
            if let e = error as? YamlError, case .scanner(_, _, let mark, _) = e { line = mark.line }
            if let e = error as? YamlError, case .parser(_, _, let mark, _) = e { line = mark.line }
            throw SavedQueryError(file: file, line: line, field: "yaml", rule: "is not valid YAML: \(error)")
        }
        guard let node else { throw SavedQueryError(file: file, field: "document", rule: "is empty") }
        do { return try YAMLFields(node, file: file, context: nil) } catch let e as SavedQueryError { throw e } catch {
            throw SavedQueryError(file: file, field: "document", rule: "\(error)")
        }
    }

    /// Parses one report file (its name is the file's).
    public static func parseReport(yaml: String, file: String) throws(SavedQueryError) -> ReportDefinition {
        do { return try parseReportFields(yaml: yaml, file: file) } catch let e as SavedQueryError { throw e } catch {
            throw SavedQueryError(file: file, field: "document", rule: "\(error)")
        }
    }

    static func parseReportFields(yaml: String, file: String) throws -> ReportDefinition {
        let name = try name(file: file)
        let f = try root(yaml, file: file)
        try f.allow(["title", "description", "window", "time_zone", "by", "step", "kpis", "split", "drilldowns", "compare_previous",
                     "schedule", "deliver"])
        func wrap<T>(_ field: String, _ body: () throws(FieldError) -> T) throws -> T {
            do { return try body() } catch { throw f.error(field, error.rule) }
        }
        let title = try f.requiredString("title")
        let window = try wrap("window") { () throws(FieldError) in try ReportWindow(try f.requiredStringField("window")) }
        var zone = ZonedClock.utc
        if let z = try f.string("time_zone") {
            guard let c = ZonedClock(identifier: z) else {
                throw f.error("time_zone", "'\(z)' is not an IANA time zone name such as Europe/Berlin, America/New_York or UTC")
            }
            zone = c
        }
        let by = try f.string("by").map { b throws -> KPIDimension in
            guard let d = KPIDimension(rawValue: b) else { throw f.error("by", "'\(b)' is not one of warehouse, channel, region") }
            return d
        }
        let step = try f.duration("step")
        if let s = step, s < 60_000_000 { throw f.error("step", "must be at least 1m") }
        var kpis = ReportDefinition.defaultKPIs
        if f.has("kpis") {
            kpis = []
            for (i, n) in try f.list("kpis").enumerated() {
                guard let s = n.string, n.null == nil else { throw f.error("kpis", "item \(i) must be a KPI name") }
                guard let m = KPIMetric(s) else {
                    throw SavedQueryError(file: file, line: n.mark?.line, context: "kpis[\(i)]", field: "kpis",
                                          rule: "'\(s)' is not a KPI; use one of " + KPIMetric.all.map(\.description).joined(separator: ", "))
                }
                kpis.append(m)
            }
            if kpis.isEmpty { throw f.error("kpis", "must list at least one KPI") }
        }
        let split = try f.string("split").map { s throws -> TelemetrySplit in
            do { return try TelemetrySplit.parse(s) } catch let e as FieldError { throw f.error("split", e.rule) }
        }
        if split != nil, by != nil { throw f.error("split", "cannot be combined with by: a report is split by a dimension or by telemetry") }
        var drilldowns: [ReportDrilldown] = []
        for (i, n) in try f.list("drilldowns").enumerated() {
            if let s = n.scalar?.string {
                guard let m = KPIMetric(s) else {
                    throw SavedQueryError(file: file, line: n.mark?.line, context: "drilldowns[\(i)]", field: "kpi",
                                          rule: "'\(s)' is not a KPI; use one of " + KPIMetric.all.map(\.description).joined(separator: ", "))
                }
                drilldowns.append(ReportDrilldown(metric: m))
                continue
            }
            let d = try YAMLFields(n, file: file, context: "drilldowns[\(i)]")
            try d.allow(["kpi", "group", "limit"])
            let text = try d.requiredString("kpi")
            guard let m = KPIMetric(text) else {
                throw d.error("kpi", "'\(text)' is not a KPI; use one of " + KPIMetric.all.map(\.description).joined(separator: ", "))
            }
            var group: String?? = .none
            if d.has("group") {
                guard by != nil else { throw d.error("group", "needs the report's by (the group is a warehouse, channel or region)") }
                if d.node("group")?.null != nil { group = .some(nil) } else { group = .some(try d.string("group")) }
            }
            let limit = try d.int("limit") ?? 10
            guard (1...1000).contains(limit) else { throw d.error("limit", "must be from 1 to 1000") }
            drilldowns.append(ReportDrilldown(metric: m, group: group, limit: limit))
        }
        var schedule: CronSchedule?
        if let s = try f.string("schedule") {
            schedule = try wrap("schedule") { () throws(FieldError) in try CronSchedule(s, zone: zone) }
        }
        var deliver: [ReportDelivery] = []
        for (i, n) in try f.list("deliver").enumerated() {
            var h = try YAMLFields(n, file: file, context: "deliver[\(i)]")
            let hookName = try h.requiredString("name")
            h.context = "deliver[\(i)] '\(hookName)'"
            guard hookName.range(of: "^[A-Za-z0-9_.-]+$", options: .regularExpression) != nil else {
                throw h.error("name", "must be letters, digits, '.', '-' and '_'")
            }
            try h.allow(["name", "url", "secret_env", "format", "timeout"])
            let url = try h.url("url", try h.requiredString("url"))
            let formatText = try h.string("format") ?? "html"
            guard let format = ReportDelivery.Format(rawValue: formatText) else { throw h.error("format", "'\(formatText)' is not one of html, json, slack") }
            let secretEnv = try h.string("secret_env")
            if let s = secretEnv, s.range(of: "^[A-Za-z_][A-Za-z0-9_]*$", options: .regularExpression) == nil {
                throw h.error("secret_env", "must name an environment variable (the secret itself never goes in the file)")
            }
            let timeout = try h.duration("timeout") ?? 30_000_000
            guard timeout >= 1_000_000 else { throw h.error("timeout", "must be at least 1s") }
            if deliver.contains(where: { $0.hook.name == ReportDefinition.outboxHook(report: name, hook: hookName) }) {
                throw h.error("name", "is used by another hook of this report")
            }
            let hook = HookConfig(name: ReportDefinition.outboxHook(report: name, hook: hookName), url: url, secretEnv: secretEnv, format: .waybill,
                                  sendResolved: false, timeout: timeout,
                                  contentType: format == .html ? "text/html; charset=utf-8" : "application/json")
            deliver.append(ReportDelivery(hook: hook, format: format))
        }
        if schedule != nil, deliver.isEmpty { throw f.error("schedule", "needs deliver: the hooks the scheduled report is sent to") }
        return ReportDefinition(name: name, title: title, window: window, zone: zone, by: by, step: step, kpis: kpis, split: split,
                                drilldowns: drilldowns, comparePrevious: try f.bool("compare_previous") ?? true, schedule: schedule,
                                deliver: deliver, description: try f.string("description"), file: file)
    }

    /// Parses one saved-search file (its name is the file's).
    public static func parseSearch(yaml: String, file: String) throws(SavedQueryError) -> SavedSearch {
        do { return try parseSearchFields(yaml: yaml, file: file) } catch let e as SavedQueryError { throw e } catch {
            throw SavedQueryError(file: file, field: "document", rule: "\(error)")
        }
    }

    static func parseSearchFields(yaml: String, file: String) throws -> SavedSearch {
        let name = try name(file: file)
        let f = try root(yaml, file: file)
        try f.allow(["title", "description", "filters"])
        guard let node = f.node("filters") else { throw f.error("filters", "is required: a mapping of waybill search filters, like stuck: 4h") }
        let filters = try YAMLFields(node, file: file, context: "filters")
        let known = OrderQuery.parameterNames.filter { $0 != "cursor" }
        try filters.allow(known)
        var values: [String: String] = [:]
        for (k, v) in filters.mapping {
            guard let key = k.string else { continue }
            guard let s = v.scalar?.string, v.null == nil, !s.isEmpty else { throw filters.error(key, "must be a value such as 4h, allocated or -7d") }
            values[key] = s
        }
        // Each value must be one the search accepts (relative times are read when the search runs).
        do {
            _ = try SearchRequest(parameters: values).query(now: 0)
        } catch {
            if case .badRequest(let e) = error { throw filters.error(e.field, e.rule) }
            throw filters.error("filters", error.description)
        }
        return SavedSearch(name: name, title: try f.string("title"), description: try f.string("description"), filters: values, file: file)
    }
}

extension YAMLFields {
    func requiredStringField(_ key: String) throws(FieldError) -> String {
        do { return try requiredString(key) } catch { throw FieldError(field: key, rule: (error as? AlertConfigError)?.rule ?? "\(error)") }
    }
}
