import WaybillAlerts
import WaybillKPI
import WaybillModel
import WaybillStore

/// The alert rules a `LocalQueries` answers for: a server's live engine, or rules loaded by the CLI
/// that are replayed over the store.
public struct AlertRulesView: Sendable {
    /// The rules in force: the engine's, else the ones given (both replaced by `reload`).
    public var config: AlertConfig { engine?.config ?? given.current }
    private let given: SharedValue<AlertConfig>
    public let source: any AlertSource
    /// The base of trace links in alert documents.
    public let baseURL: String
    /// The live state, when a server evaluates the rules; without it alerts are replayed at the instant asked (default now).
    public let engine: AlertEngine?

    public init(config: AlertConfig, source: any AlertSource, baseURL: String, engine: AlertEngine? = nil) {
        self.given = SharedValue(config)
        self.source = source
        self.baseURL = engine?.baseURL ?? config.externalURL ?? baseURL
        self.engine = engine
    }

    /// Puts `new` rules in force (a server's rules reload): in the engine when there is one (see
    /// `AlertEngine.reload`), else for the replays this view answers.
    public func reload(_ new: AlertConfig) async throws {
        if let engine { try await engine.reload(new) } else { given.set(new) }
    }
}


/// `WaybillQueries` over a store, with every read on the reader threads of `lanes`.
public struct LocalQueries: WaybillQueries {
    public let store: any WaybillStore
    public let lanes: ReadLanes
    public let clock: @Sendable () -> Micros
    public let alerting: AlertRulesView?
    /// Spans read for one service view at most; a busier window says `truncated`.
    public static let serviceViewSpanLimit = 500_000

    public init(store: any WaybillStore, lanes: ReadLanes, clock: @escaping @Sendable () -> Micros, alerting: AlertRulesView? = nil) {
        self.store = store
        self.lanes = lanes
        self.clock = clock
        self.alerting = alerting
    }

    public func trace(key: String) async throws -> TraceDocument? {
        try await lanes.point.run { [store] in
            guard let t = try store.trace(key: key) else { return nil }
            return TraceDocument(t, steps: try t.facts.map { try StepComparison(reader: store).steps($0) } ?? [])
        }
    }

    public func search(_ request: SearchRequest) async throws -> OrderPage {
        let query = try request.query(now: clock())
        return try await lanes.point.run { [store] in
            do { return try store.searchOrders(query) } catch let e as FieldError { throw QueryFailure.badRequest(e) }
        }
    }

    public func kpis(_ request: KPIRequest) async throws -> KPIDocument {
        let query = try request.query(now: clock())
        let service = KPIService(reader: store)
        guard let split = request.split else { return try await lanes.point.run { try service.document(query) } }
        return try await lanes.scan.run { [store] in try service.splitDocument(query, split: split, traces: store) }
    }

    public func explain(_ request: KPIRequest) async throws -> KPIExplainDocument {
        guard let metric = request.explain else { throw QueryFailure.badRequest(FieldError(field: "explain", rule: "is required")) }
        let query = try request.query(now: clock())
        let service = KPIService(reader: store)
        return try await lanes.scan.run {
            do {
                return KPIExplainDocument(metric: metric.description,
                                          orders: try service.explain(metric, query, group: request.group, limit: request.limit))
            } catch let e as FieldError {
                throw QueryFailure.badRequest(FieldError(field: "explain", rule: e.rule))
            }
        }
    }

    public func services(_ request: ServicesRequest) async throws -> ServiceReport {
        let window = try request.window(now: clock())
        let limit = Self.serviceViewSpanLimit
        // A store that keeps the service rollups answers from them (never truncated); another reads the spans.
        if let rollups = store as? any ServiceRollupReader {
            return try await lanes.scan.run { ServiceReport(try rollups.serviceAggregates(in: window), from: window.lowerBound, to: window.upperBound) }
        }
        return try await lanes.scan.run { [store] in
            let spans = try store.spans(startingIn: window, limit: limit + 1)
            return ServiceReport(spans: spans.prefix(limit), from: window.lowerBound, to: window.upperBound, truncated: spans.count > limit)
        }
    }

    public func alerts(_ request: AlertsRequest) async throws -> AlertsDocument {
        let now = clock()
        let replayAt = try request.instant(now: now)
        guard let alerting else { return AlertsDocument([], at: replayAt ?? now, base: "") }
        var records: [AlertRecord]
        if let engine = alerting.engine, replayAt == nil {
            records = await engine.alerts()
        } else {
            records = try await lanes.scan.run { try AlertReplay.evaluate(config: alerting.config, source: alerting.source, at: replayAt ?? now) }
        }
        if let state = request.state { records = records.filter { $0.state == state } }
        return AlertsDocument(records, at: replayAt ?? now, base: alerting.baseURL)
    }

    public func audit(limit: Int) async throws -> AuditDocument {
        try await lanes.point.run { [store] in AuditDocument(try store.auditEntries(limit: limit)) }
    }

    public func rules() async throws -> RulesDocument {
        guard let alerting else { return RulesDocument(AlertConfig(), status: []) }
        return RulesDocument(alerting.config, status: await alerting.engine?.rules() ?? [])
    }
}
