import WaybillKPI
import WaybillModel
import WaybillStore

/// What rule evaluation reads. Everything it answers is a function of the stored events and the time asked.
public protocol AlertSource: Sendable {
    func kpiDocument(_ q: KPIQuery) throws -> KPIDocument
    /// The orders behind a KPI figure (worst first) in each of the groups asked (`.none`: all orders).
    func kpiOrders(_ metric: KPIMetric, _ q: KPIQuery, groups: [String??], limit: Int) throws -> [[String]]
    /// The overdue orders of an SLA rule, grouped by its `by`, each group with its first `limit` orders.
    func overdueOrders(_ rule: SLARule, at: Micros, replay: Bool, limit: Int) throws -> [OverdueGroup]
    func spans(startingIn range: Range<Micros>) throws -> [Span]
    /// The attribute keys that join a span to an order (the collectors' configuration).
    var correlationKeys: [String] { get }
    /// Readies whatever the rule reads (an SLA rule's deadline index).
    func prepare(_ rule: AlertRule) async throws
    /// The source for one replay, which evaluates KPI rules at many instants `reach` or less apart: it may
    /// keep what it read for the next evaluations (`CoveringRollupReader`). Answers must not change.
    func replaying(reach: Micros) -> any AlertSource
}

extension AlertSource {
    public func replaying(reach: Micros) -> any AlertSource { self }
}

/// The embedded store as an alert source.
public struct StoreAlertSource: AlertSource {
    public typealias Store = any WaybillStore & DeadlineReader
    let store: Store
    /// What KPI figures and their orders are read from: the store, or a replay's `CoveringRollupReader`.
    let reader: any RollupReader
    let kpi: KPIService
    /// Most spans one span-rule evaluation reads.
    public var spanLimit = 2_000_000
    public let correlationKeys: [String]

    public init(store: Store, correlationKeys: [String] = SpanCorrelation.defaultKeys) {
        self.init(store: store, reader: store, correlationKeys: correlationKeys)
    }

    init(store: Store, reader: any RollupReader, correlationKeys: [String]) {
        self.store = store
        self.reader = reader
        self.kpi = KPIService(reader: reader)
        self.correlationKeys = correlationKeys
    }

    /// KPI reads through a fresh `CoveringRollupReader`: the windows of a replay's look-back overlap all but
    /// a step, so after its first evaluations a replay reads almost nothing more from the store.
    public func replaying(reach: Micros) -> any AlertSource {
        var copy = StoreAlertSource(store: store, reader: CoveringRollupReader(store, reach: reach), correlationKeys: correlationKeys)
        copy.spanLimit = spanLimit
        return copy
    }

    public func kpiDocument(_ q: KPIQuery) throws -> KPIDocument { try kpi.document(q) }

    public func kpiOrders(_ metric: KPIMetric, _ q: KPIQuery, groups: [String??], limit: Int) throws -> [[String]] {
        guard !groups.isEmpty else { return [] }
        // The window's facts are read once for every group.
        let facts = try reader.kpiFacts(in: [q.from..<q.to])
        return try groups.map { try KPIExplain.contributors(facts: facts, metric: metric, query: q, group: $0, limit: limit).map(\.orderID) }
    }

    public func overdueOrders(_ rule: SLARule, at: Micros, replay: Bool, limit: Int) throws -> [OverdueGroup] {
        let grouping: OverdueGrouping
        switch rule.by {
        case .warehouse: grouping = .warehouse
        case .channel: grouping = .channel
        case .region: grouping = .region
        case nil: grouping = .none
        }
        return try store.overdueOrders(after: rule.after, expect: rule.expect, cutoff: at - rule.within, asOf: at, replay: replay,
                                       groupBy: grouping, limit: limit)
    }

    public func spans(startingIn range: Range<Micros>) throws -> [Span] {
        try store.spans(startingIn: range, limit: spanLimit)
    }

    public func prepare(_ rule: AlertRule) async throws {
        if case .sla(let s) = rule.condition { try await store.prepareDeadlines(after: s.after) }
    }
}

/// One group of a rule whose condition holds at an instant.
public struct AlertSample: Hashable, Sendable {
    /// The group's labels (the rule's `by` dimension, or the span rule's service); empty for a whole-rule alert.
    public var labels: [String: String]
    public var value: Double
    /// The orders behind the alert, at most `AlertEvaluator.orderLimit`, most telling first.
    public var orders: [String]
    public var ordersTotal: Int
    /// When the condition began to hold, where the data says so (an SLA alert: its oldest deadline).
    public var since: Micros?
}

/// Evaluates rules at an instant: a pure function of the source and the time.
public struct AlertEvaluator: Sendable {
    public static let orderLimit = 100
    public let source: any AlertSource

    public init(source: any AlertSource) { self.source = source }

    /// - Parameter withOrders: also find the orders behind each alert (the KPI drill-down, which reads the
    ///   window's facts); off where only the condition matters.
    public func samples(_ rule: AlertRule, at t: Micros, replay: Bool, withOrders: Bool = true) throws -> [AlertSample] {
        switch rule.condition {
        case .kpi(let k): return try kpiSamples(k, at: t, withOrders: withOrders)
        case .sla(let s): return try slaSamples(s, at: t, replay: replay)
        case .spans(let s): return try spanSamples(s, at: t)
        }
    }

    /// The label value of orders that lack the `by` field (kpis.md's null group).
    public static let noValue = "(none)"

    func kpiSamples(_ rule: KPIRule, at t: Micros, withOrders: Bool) throws -> [AlertSample] {
        let q = try KPIQuery(from: t - rule.window, to: t, by: rule.by)
        let doc = try source.kpiDocument(q)
        var candidates: [(labels: [String: String], group: String??, kpis: KPIs)] = []
        if let by = rule.by {
            for g in doc.groups {
                candidates.append(([by.rawValue: g.value ?? Self.noValue], .some(g.value), g.kpis))
            }
        } else {
            candidates.append(([:], .none, doc.total))
        }
        var out: [AlertSample] = []
        var groups: [String??] = []
        for c in candidates {
            guard let v = c.kpis.value(rule.metric), rule.op.holds(v, rule.threshold) else { continue }
            out.append(AlertSample(labels: c.labels, value: v, orders: [], ordersTotal: 0, since: nil))
            groups.append(c.group)
        }
        if withOrders {
            for (i, orders) in try source.kpiOrders(rule.metric, q, groups: groups, limit: Self.orderLimit).enumerated() {
                out[i].orders = orders
                out[i].ordersTotal = orders.count
            }
        }
        return out.sorted { $0.labels.sorted(by: <).lexicographicallyPrecedes($1.labels.sorted(by: <)) { $0 < $1 } }
    }

    func slaSamples(_ rule: SLARule, at t: Micros, replay: Bool) throws -> [AlertSample] {
        try source.overdueOrders(rule, at: t, replay: replay, limit: Self.orderLimit).map { g in
            var labels: [String: String] = [:]
            if let by = rule.by { labels[by.rawValue] = g.value ?? Self.noValue }
            // The listed orders are the longest overdue; `since` is the oldest deadline.
            return AlertSample(labels: labels, value: Double(g.count), orders: g.orders, ordersTotal: g.count, since: g.oldest + rule.within)
        }
    }

    func spanSamples(_ rule: SpanRule, at t: Micros) throws -> [AlertSample] {
        var total = 0
        var errors = 0
        var orders: [String] = []
        var seen = Set<String>()
        let keys = source.correlationKeys
        for s in try source.spans(startingIn: (t - rule.window)..<t) {
            if let svc = rule.service, s.service != svc { continue }
            if let n = rule.name, s.name != n { continue }
            total += 1
            guard s.status == .error else { continue }
            errors += 1
            if let k = SpanCorrelation.key(of: s, keys: keys), seen.insert(k).inserted { orders.append(k) }
        }
        guard total >= rule.minSpans else { return [] }
        let rate = Double(errors) / Double(total)
        guard rule.op.holds(rate, rule.threshold) else { return [] }
        var labels: [String: String] = [:]
        if let svc = rule.service { labels["service"] = svc }
        return [AlertSample(labels: labels, value: rate, orders: Array(orders.prefix(Self.orderLimit)), ordersTotal: orders.count, since: nil)]
    }
}
