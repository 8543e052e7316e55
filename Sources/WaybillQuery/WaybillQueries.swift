import WaybillAlerts
import WaybillKPI
import WaybillModel
import WaybillStore

/// Every question a front-end asks Waybill: the CLI, the HTTP API and the pages all go through this one
/// protocol, over a store (`LocalQueries`) or over a running server's HTTP API (`RemoteQueries`), and
/// get the same documents back. Front-ends only parse their input, call, and render.
///
/// Contract (every implementation):
/// - Requests carry parameters as people type them (CLI flags and HTTP query parameters share names);
///   relative times (`-7d`, `now`) are resolved by the answering side's clock.
/// - A bad parameter throws `QueryFailure.badRequest` naming the field and the rule, with the same
///   text from every implementation.
/// - `trace(key:)` returns nil for a key no event or link names; any key the collector accepted can be
///   asked for (spaces, quotes, `;`, `%`, `/`, non-ASCII).
public protocol WaybillQueries: Sendable {
    func trace(key: String) async throws -> TraceDocument?
    /// Orders by their facts (`waybill search`, `GET /api/v1/traces`), most recent first, one page.
    func search(_ request: SearchRequest) async throws -> OrderPage
    /// The KPI document; with `split`, split by each order's trace telemetry.
    func kpis(_ request: KPIRequest) async throws -> KPIDocument
    /// The orders behind one figure (`request.explain` must be set).
    func explain(_ request: KPIRequest) async throws -> KPIExplainDocument
    func services(_ request: ServicesRequest) async throws -> ServiceReport
    /// Live alerts, or with `at` a replay of every rule as of that instant.
    func alerts(_ request: AlertsRequest) async throws -> AlertsDocument
    func rules() async throws -> RulesDocument
    /// The newest administrative actions first (token created or revoked, retention run), at most `limit`.
    func audit(limit: Int) async throws -> AuditDocument
}

/// `GET /api/v1/audit` and `waybill audit --format json`.
public struct AuditDocument: Codable, Sendable, Equatable {
    public struct Entry: Codable, Sendable, Equatable {
        public var at: String
        /// The token's name, `local:USER` for the CLI on the store, or `waybill` for the server itself.
        public var actor: String
        public var action: String
        public var detail: String
    }

    public var entries: [Entry]

    public init(_ entries: [AuditEntry]) {
        self.entries = entries.map { Entry(at: RFC3339.format($0.at), actor: $0.actor, action: $0.action, detail: $0.detail) }
    }

    public static func limit(_ text: String?) throws(QueryFailure) -> Int {
        guard let text else { return 100 }
        guard let n = Int(text), (1...10_000).contains(n) else { throw .badRequest(FieldError(field: "limit", rule: "must be an integer from 1 to 10000")) }
        return n
    }
}

/// Why a query was not answered.
public enum QueryFailure: Error, Sendable, Equatable, CustomStringConvertible {
    /// A parameter breaks its rule (HTTP 400).
    case badRequest(FieldError)
    /// The answering side cannot answer this kind of query (for example alerts without rules).
    case notAvailable(String)
    /// A server answered with an error status.
    case server(status: Int, message: String)
    /// The server could not be reached or answered something that is not the document.
    case transport(String)

    public var description: String {
        switch self {
        case .badRequest(let e): return e.description
        case .notAvailable(let m): return m
        case .server(let status, let m): return "server answered \(status): \(m)"
        case .transport(let m): return m
        }
    }
}

/// Parameters shared by requests: unknown names are refused, empty values count as absent.
struct Parameters {
    var values: [String: String]

    init(_ values: [String: String], known: [String]) throws(QueryFailure) {
        for k in values.keys.sorted() where !known.contains(k) {
            throw .badRequest(FieldError(field: k, rule: "unknown parameter; known: \(known.joined(separator: ", "))"))
        }
        self.values = values.filter { !$0.value.isEmpty }
    }

    subscript(_ k: String) -> String? { values[k] }
}

/// `waybill search` flags and `GET /api/v1/traces` parameters (see `OrderQuery.parameterNames`).
public struct SearchRequest: Sendable, Equatable {
    public var parameters: [String: String]

    public init(parameters: [String: String]) throws(QueryFailure) {
        self.parameters = try Parameters(parameters, known: OrderQuery.parameterNames).values
    }

    public func query(now: Micros) throws(QueryFailure) -> OrderQuery {
        do { return try OrderQuery(parameters: parameters, now: now) } catch { throw .badRequest(error) }
    }
}

/// `waybill kpi` and `GET /api/v1/kpis`: window, grouping and step, and either a split or a drill-down.
public struct KPIRequest: Sendable, Equatable {
    public static let parameterNames = ["from", "to", "by", "step", "split", "explain", "group", "limit", "format"]

    public var from: String?
    public var to: String?
    public var by: String?
    public var step: String?
    public var split: TelemetrySplit?
    public var explain: KPIMetric?
    /// With `explain` and `by`: one group; `.some(nil)` is the group of orders without a value (written `null`).
    public var group: String??
    /// With `explain`: how many orders (1-10000, default 20).
    public var limit: Int

    public static let defaultExplainLimit = 20

    public init(from: String? = nil, to: String? = nil, by: String? = nil, step: String? = nil, split: TelemetrySplit? = nil,
                explain: KPIMetric? = nil, group: String?? = .none, limit: Int = defaultExplainLimit)
    {
        self.from = from
        self.to = to
        self.by = by
        self.step = step
        self.split = split
        self.explain = explain
        self.group = group
        self.limit = limit
    }

    /// From parameters as typed; `format` is the front-end's and is ignored here.
    public init(parameters: [String: String]) throws(QueryFailure) {
        let p = try Parameters(parameters, known: Self.parameterNames)
        self.init(from: p["from"], to: p["to"], by: p["by"], step: p["step"])
        do {
            if let s = p["split"] { split = try TelemetrySplit.parse(s) }
        } catch { throw .badRequest(error) }
        if let m = p["explain"] {
            do { explain = try KPIMetric.parse(m) } catch { throw .badRequest(FieldError(field: "explain", rule: error.rule)) }
        }
        if let g = p["group"] { group = g == "null" ? .some(nil) : .some(g) }
        if let l = p["limit"] {
            guard let n = Int(l), (1...10_000).contains(n) else { throw .badRequest(FieldError(field: "limit", rule: "must be an integer from 1 to 10000")) }
            limit = n
        }
        if split != nil, explain != nil { throw .badRequest(FieldError(field: "split", rule: "cannot be combined with explain")) }
    }

    /// The parameters that give this request back through `init(parameters:)`.
    public var parameters: [String: String] {
        var p: [String: String] = [:]
        for (k, v) in [("from", from), ("to", to), ("by", by), ("step", step), ("split", split?.parameter), ("explain", explain?.description)] {
            if let v { p[k] = v }
        }
        if case .some(let g) = group { p["group"] = g ?? "null" }
        if explain != nil { p["limit"] = String(limit) }
        return p
    }

    public func query(now: Micros) throws(QueryFailure) -> KPIQuery {
        do { return try KPIQuery.parse(from: from, to: to, by: by, step: step, now: now) } catch { throw .badRequest(error) }
    }

    /// The window of the same length just before `doc`'s, same grouping and step (for comparisons).
    public func previous(of doc: KPIDocument) -> KPIRequest {
        let q = doc.query.previous
        return KPIRequest(from: RFC3339.format(q.from), to: RFC3339.format(q.to), by: by, step: step)
    }
}

/// `waybill services` and `GET /api/v1/services`: a window, by default the hour before `to` (default now).
public struct ServicesRequest: Sendable, Equatable {
    public var from: String?
    public var to: String?

    public static let defaultWindow: Micros = 3_600_000_000

    public init(from: String? = nil, to: String? = nil) {
        self.from = from
        self.to = to
    }

    public init(parameters: [String: String]) throws(QueryFailure) {
        let p = try Parameters(parameters, known: ["from", "to"])
        self.init(from: p["from"], to: p["to"])
    }

    public var parameters: [String: String] { [("from", from), ("to", to)].reduce(into: [:]) { if let v = $1.1 { $0[$1.0] = v } } }

    public func window(now: Micros) throws(QueryFailure) -> Range<Micros> {
        var end = now
        if let to {
            guard let t = TimeText.parse(to, now: now) else { throw .badRequest(FieldError(field: "to", rule: "must be RFC 3339 or relative like -1h")) }
            end = t
        }
        var start = end - Self.defaultWindow
        if let from {
            guard let f = TimeText.parse(from, now: now) else { throw .badRequest(FieldError(field: "from", rule: "must be RFC 3339 or relative like -1h")) }
            start = f
        }
        guard start < end else { throw .badRequest(FieldError(field: "to", rule: "must be after from")) }
        return start..<end
    }
}

/// `waybill alerts` and `GET /api/v1/alerts`: `at` replays every rule as of that instant; `state` filters.
public struct AlertsRequest: Sendable, Equatable {
    public var at: String?
    public var state: AlertState?

    public init(at: String? = nil, state: AlertState? = nil) {
        self.at = at
        self.state = state
    }

    public init(parameters: [String: String]) throws(QueryFailure) {
        let p = try Parameters(parameters, known: ["at", "state"])
        at = p["at"]
        if let s = p["state"] {
            guard let st = AlertState(rawValue: s) else { throw .badRequest(FieldError(field: "state", rule: "must be pending, firing or resolved")) }
            state = st
        }
    }

    public var parameters: [String: String] {
        var p: [String: String] = [:]
        if let at { p["at"] = at }
        if let state { p["state"] = state.rawValue }
        return p
    }

    /// The instant to replay at, nil for the live state.
    public func instant(now: Micros) throws(QueryFailure) -> Micros? {
        guard let at else { return nil }
        guard let t = TimeText.parse(at, now: now) else {
            throw .badRequest(FieldError(field: "at", rule: "'\(at)' is not an RFC 3339 time or relative like -1h"))
        }
        return t
    }
}
