import Foundation
import WaybillAlerts
import WaybillKPI
import WaybillModel
import WaybillQuery
import Yams

/// A bad dashboard file: the file, the line, the panel and the field at fault, and the rule it broke.
/// `waybill serve` refuses to start with it (this message and a non-zero exit).
public struct DashboardFileError: Error, CustomStringConvertible, Sendable, Equatable {
    public var file: String
    public var line: Int?
    public var context: String?
    public var error: FieldError

    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        s += ": "
        if let context { s += context + ": " }
        return s + error.description
    }
}

/// The overview page's definition, read from `overview.yaml` in the dashboards folder at start, so that
/// panels are added, removed or moved without recompiling.
///
/// ```yaml
/// title: Overview
/// refresh: 60s             # the page reloads itself (optional; 10s to 1h)
/// panels:
///   - kind: kpi_tiles      # kpi_tiles, alerts, stuck_orders, ingest, services
///     title: Business KPIs
///     window: 24h          # the window ending now; tiles compare it with the window before
///     step: 1h             # one sparkline point per step
///     kpis: [fill_rate, allocation_delay.p90_s]
/// ```
public struct Dashboard: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable {
        case kpiTiles = "kpi_tiles", alerts, stuckOrders = "stuck_orders", ingest, services
    }

    public struct Panel: Sendable, Equatable {
        public var kind: Kind
        public var title: String
        /// The window ending now that the panel covers.
        public var window: Micros
        public var step: Micros?
        public var kpis: [KPIMetric]
        /// `stuck_orders`: the stages listed (nil: `StuckRequest.defaultStages`).
        public var stages: [Stage]?
        public var limit: Int
        /// `alerts`: which alerts (firing, pending, resolved); nil is pending and firing.
        public var state: AlertState?
        /// Spans the whole width of the page.
        public var wide: Bool
    }

    public var file: String
    public var title: String
    public var refresh: Micros?
    public var panels: [Panel]

    public static let fileName = "overview.yaml"

    /// Reads `overview.yaml` from a dashboards folder.
    public static func load(folder: String) throws(DashboardFileError) -> Dashboard {
        let path = (folder as NSString).appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw DashboardFileError(file: path, line: nil, context: nil, error: FieldError(field: "file", rule: "cannot be read (missing or not UTF-8)"))
        }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String) throws(DashboardFileError) -> Dashboard {
        do {
            return try parseFields(text, file: file)
        } catch let e as DashboardFileError {
            throw e
        } catch {
            throw DashboardFileError(file: file, line: Self.line(of: error), context: nil, error: FieldError(field: "document", rule: "is not YAML: \(error)"))
        }
    }

    static func line(of error: Error) -> Int? {
        if let e = error as? YamlError {
            switch e {
            case .scanner(_, _, let mark, _), .parser(_, _, let mark, _), .composer(_, _, let mark, _): return mark.line
            default: return nil
            }
        }
        return nil
    }

    static func parseFields(_ text: String, file: String) throws -> Dashboard {
        guard let root = try Yams.compose(yaml: text) else {
            throw DashboardFileError(file: file, line: 1, context: nil, error: FieldError(field: "document", rule: "is empty; it needs panels"))
        }
        let f = try DashboardFields(root, file: file, context: nil)
        try f.allow(["title", "refresh", "panels"])
        var d = Dashboard(file: file, title: try f.string("title") ?? "Overview", refresh: try f.duration("refresh"), panels: [])
        if let r = d.refresh, !(10_000_000...3_600_000_000).contains(r) { throw f.error("refresh", "must be from 10s to 1h") }
        guard f.has("panels") else { throw f.error("panels", "is required: a list of panels") }
        let panels = try f.list("panels")
        if panels.isEmpty { throw f.error("panels", "must list at least one panel") }
        for (i, node) in panels.enumerated() {
            d.panels.append(try panel(node, file: file, index: i))
        }
        return d
    }

    static let fieldsByKind: [Kind: [String]] = [
        .kpiTiles: ["window", "step", "kpis"],
        .alerts: ["state", "limit"],
        .stuckOrders: ["stages", "limit"],
        .ingest: [],
        .services: ["window", "limit"],
    ]

    static func panel(_ node: Node, file: String, index: Int) throws -> Panel {
        var f = try DashboardFields(node, file: file, context: "panels[\(index)]")
        let kindText = try f.requiredString("kind")
        guard let kind = Kind(rawValue: kindText) else {
            throw f.error("kind", "'\(kindText)' is not a panel kind; use one of " + Kind.allCases.map(\.rawValue).joined(separator: ", "))
        }
        f.context = "panels[\(index)] (\(kindText))"
        try f.allow(["kind", "title", "wide"] + (fieldsByKind[kind] ?? []))
        let defaults: (window: Micros, limit: Int) = switch kind {
        case .kpiTiles: (86_400_000_000, 0)
        case .alerts: (0, 10)
        case .stuckOrders: (0, 5)
        case .ingest: (300_000_000, 0)
        case .services: (3_600_000_000, 12)
        }
        var p = Panel(kind: kind, title: try f.string("title") ?? kindText.replacingOccurrences(of: "_", with: " ").capitalized,
                      window: try f.duration("window") ?? defaults.window, step: try f.duration("step"), kpis: [], stages: nil,
                      limit: try f.int("limit") ?? defaults.limit, state: nil, wide: try f.bool("wide") ?? false)
        if f.has("window"), !(60_000_000...(90 * 86_400_000_000)).contains(p.window) { throw f.error("window", "must be from 1m to 90d") }
        if f.has("limit"), !(1...100).contains(p.limit) { throw f.error("limit", "must be an integer from 1 to 100") }
        if kind == .kpiTiles {
            let step = p.step ?? max(p.window / 24, 60_000_000)
            guard step >= 60_000_000, step <= p.window, p.window / step <= 200 else {
                throw f.error("step", "must be at least 1m, at most the window, and give at most 200 points in it")
            }
            p.step = step
            let names = try f.list("kpis")
            if names.isEmpty { throw f.error("kpis", "is required: a list of KPI names such as fill_rate, allocation_delay.p90_s") }
            for n in names {
                guard let s = n.string, let m = KPIMetric(s) else {
                    throw DashboardFileError(file: file, line: n.mark?.line, context: f.context, error: FieldError(field: "kpis",
                        rule: "'\(n.string ?? "?")' is not a KPI; use one of " + KPIMetric.all.map(\.description).joined(separator: ", ")))
                }
                p.kpis.append(m)
            }
        }
        if f.has("stages") {
            let names = try f.list("stages").map { $0.string ?? "?" }
            do { p.stages = try StuckRequest.stages(names.joined(separator: ",")) } catch {
                throw f.error("stages", error.description.replacingOccurrences(of: "stages: ", with: ""))
            }
        }
        if let s = try f.string("state") {
            guard let st = AlertState(rawValue: s) else { throw f.error("state", "must be pending, firing or resolved") }
            p.state = st
        }
        return p
    }
}

extension Dashboard {
    /// The shipped overview (`dashboards/overview.yaml`, compiled into the binary), parsed once.
    static let shipped: Result<Dashboard, DashboardFileError> = {
        let file = "dashboards/" + fileName
        guard let text = ShippedResources.file(file) else {
            return .failure(DashboardFileError(file: file, line: nil, context: nil,
                                               error: FieldError(field: "file", rule: "is not compiled into this binary; pass --dashboards DIR")))
        }
        return Result { () throws(DashboardFileError) -> Dashboard in try parse(text, file: file) }
    }()

    /// `serve --dashboards DIR`: the folder given, else `./dashboards` when it has an overview, else the shipped copy.
    public static func forServe(folder: String?) throws(DashboardFileError) -> Dashboard {
        if let folder { return try load(folder: folder) }
        if FileManager.default.fileExists(atPath: "dashboards/" + fileName) { return try load(folder: "dashboards") }
        return try shipped.get()
    }
}

/// Typed access to one YAML mapping of a dashboard file, with errors naming file, line, panel and field.
struct DashboardFields {
    let mapping: Node.Mapping
    let file: String
    let line: Int?
    var context: String?

    init(_ node: Node, file: String, context: String?) throws(DashboardFileError) {
        self.file = file
        line = node.mark?.line
        self.context = context
        guard let m = node.mapping else {
            throw DashboardFileError(file: file, line: node.mark?.line, context: context,
                                     error: FieldError(field: context == nil ? "document" : "entry", rule: "must be a mapping of field: value"))
        }
        mapping = m
    }

    func error(_ field: String, _ rule: String) -> DashboardFileError {
        DashboardFileError(file: file, line: mapping[field]?.mark?.line ?? line, context: context, error: FieldError(field: field, rule: rule))
    }

    func has(_ key: String) -> Bool { mapping[key] != nil }

    func allow(_ keys: [String]) throws(DashboardFileError) {
        for (k, _) in mapping {
            guard let s = k.string else { throw error("?", "keys must be strings") }
            if !keys.contains(s) {
                throw DashboardFileError(file: file, line: k.mark?.line ?? line, context: context,
                                         error: FieldError(field: s, rule: "is not a known field here; known: " + keys.joined(separator: ", ")))
            }
        }
    }

    func string(_ key: String) throws(DashboardFileError) -> String? {
        guard let n = mapping[key] else { return nil }
        guard let s = n.scalar?.string, n.null == nil else { throw error(key, "must be a string") }
        return s
    }

    func requiredString(_ key: String) throws(DashboardFileError) -> String {
        guard let s = try string(key), !s.isEmpty else { throw error(key, "is required: a non-empty string") }
        return s
    }

    func int(_ key: String) throws(DashboardFileError) -> Int? {
        guard let n = mapping[key] else { return nil }
        guard let v = n.int else { throw error(key, "must be an integer") }
        return v
    }

    func bool(_ key: String) throws(DashboardFileError) -> Bool? {
        guard let n = mapping[key] else { return nil }
        guard let v = n.bool else { throw error(key, "must be true or false") }
        return v
    }

    func duration(_ key: String) throws(DashboardFileError) -> Micros? {
        guard let s = try string(key) else { return nil }
        guard let v = DurationText.parse(s), v >= 0 else { throw error(key, "'\(s)' is not a duration like 30s, 15m, 1h or 2d") }
        return v
    }

    func list(_ key: String) throws(DashboardFileError) -> [Node] {
        guard let n = mapping[key] else { return [] }
        if n.null != nil { return [] }
        guard let seq = n.sequence else { throw error(key, "must be a list") }
        return Array(seq)
    }
}
