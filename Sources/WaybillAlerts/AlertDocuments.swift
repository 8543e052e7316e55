import WaybillModel

/// `GET /api/v1/alerts` and `waybill alerts --format json`: the alerts as of `at`.
public struct AlertsDocument: Codable, Sendable, Equatable {
    public var at: String
    public var alerts: [AlertDocument]

    public init(_ records: [AlertRecord], at: Micros, base: String) {
        self.at = RFC3339.format(at)
        alerts = records.map { AlertDocument($0, base: base) }
    }
}

/// One alert in the alerts document. Times are RFC 3339 UTC.
public struct AlertDocument: Codable, Sendable, Equatable {
    public var rule: String
    /// `pending`, `firing` or `resolved`.
    public var state: String
    public var labels: [String: String]
    public var annotations: [String: String]
    public var severity: String
    public var fingerprint: String
    public var value: Double
    public var since: String
    public var firingAt: String?
    public var resolvedAt: String?
    /// The first orders behind the alert (at most 100); `ordersTotal` counts them all.
    public var orders: [String]
    public var ordersTotal: Int
    /// A trace link per order in `orders`.
    public var traces: [String]
    public var evaluatedAt: String
    public var notified: String?
    public var notifiedAt: String?

    enum CodingKeys: String, CodingKey {
        case rule, state, labels, annotations, severity, fingerprint, value, since, firingAt = "firing_at", resolvedAt = "resolved_at"
        case orders, ordersTotal = "orders_total", traces, evaluatedAt = "evaluated_at", notified, notifiedAt = "notified_at"
    }

    public init(_ r: AlertRecord, base: String) {
        func t(_ v: Micros?) -> String? { v.map(RFC3339.format) }
        rule = r.rule
        state = r.state.rawValue
        labels = r.labels
        annotations = r.annotations
        severity = r.severity
        fingerprint = r.fingerprint
        value = r.value
        since = RFC3339.format(r.since)
        firingAt = t(r.firingAt)
        resolvedAt = t(r.resolvedAt)
        orders = r.orders
        ordersTotal = r.ordersTotal
        traces = AlertPayloads.traceLinks(r.orders, base: base)
        evaluatedAt = RFC3339.format(r.evaluatedAt)
        notified = r.notifiedState?.rawValue
        notifiedAt = t(r.notifiedAt)
    }
}

/// `GET /api/v1/rules` and `waybill alerts rules --format json`: the loaded rules, hooks (never their
/// secrets) and, from a server, each rule's last evaluation.
public struct RulesDocument: Codable, Sendable, Equatable {
    public var evaluationInterval: String
    public var groupWait: String
    public var groupInterval: String
    public var repeatInterval: String
    public var alertmanager: String?
    public var rules: [RuleDocument]
    public var hooks: [HookDocument]

    enum CodingKeys: String, CodingKey {
        case evaluationInterval = "evaluation_interval", groupWait = "group_wait", groupInterval = "group_interval"
        case repeatInterval = "repeat_interval", alertmanager, rules, hooks
    }

    public init(_ config: AlertConfig, status: [RuleStatus]) {
        let byName = Dictionary(status.map { ($0.rule.name, $0) }, uniquingKeysWith: { a, _ in a })
        evaluationInterval = DurationText.format(config.evaluationInterval)
        groupWait = DurationText.format(config.groupWait)
        groupInterval = DurationText.format(config.groupInterval)
        repeatInterval = DurationText.format(config.repeatInterval)
        alertmanager = config.alertmanager
        rules = config.rules.map { RuleDocument($0, status: byName[$0.name]) }
        hooks = config.hooks.map(HookDocument.init)
    }
}

public struct HookDocument: Codable, Sendable, Equatable {
    public var name: String
    public var url: String
    public var format: String
    public var sendResolved: Bool
    /// Whether deliveries carry `X-Waybill-Signature` (the secret itself is never shown).
    public var signed: Bool

    enum CodingKeys: String, CodingKey { case name, url, format, sendResolved = "send_resolved", signed }

    public init(_ h: HookConfig) {
        name = h.name
        url = h.url
        format = h.format.rawValue
        sendResolved = h.sendResolved
        signed = h.secretEnv != nil
    }
}

/// A rule as the rules document shows it. Fields of the other kinds are null.
public struct RuleDocument: Codable, Sendable, Equatable {
    public struct SpanSelector: Codable, Sendable, Equatable {
        public var service: String?
        public var name: String?
    }

    public var name: String
    /// `kpi`, `sla` or `spans`.
    public var kind: String
    public var severity: String
    public var holdFor: String
    public var file: String
    public var annotations: [String: String]
    public var labels: [String: String]
    public var by: String?
    public var window: String?
    // kpi
    public var kpi: String?
    public var op: String?
    public var threshold: Double?
    // sla
    public var after: String?
    public var expect: String?
    public var within: String?
    // spans
    public var spans: SpanSelector?
    /// Operator and threshold, e.g. `> 0.05`.
    public var errorRate: String?
    public var minSpans: Int?
    // last evaluation (from a server)
    public var evaluatedAt: String?
    public var evaluationMillis: Double?
    public var error: String?
    public var active: Int

    enum CodingKeys: String, CodingKey {
        case name, kind, severity, holdFor = "for", file, annotations, labels, by, window, kpi, op, threshold, after, expect, within, spans
        case errorRate = "error_rate", minSpans = "min_spans", evaluatedAt = "evaluated_at", evaluationMillis = "evaluation_ms", error, active
    }

    public init(_ r: AlertRule, status: RuleStatus?) {
        name = r.name
        kind = r.condition.kind
        severity = r.severity
        holdFor = r.holdFor == 0 ? "0s" : DurationText.format(r.holdFor)
        file = r.file
        annotations = r.annotations
        labels = r.labels
        switch r.condition {
        case .kpi(let k):
            kpi = k.metric.description
            op = k.op.rawValue
            threshold = k.threshold
            window = DurationText.format(k.window)
            by = k.by?.rawValue
        case .sla(let s):
            after = "order." + s.after.name
            expect = "order." + s.expect.name
            within = DurationText.format(s.within)
            by = s.by?.rawValue
        case .spans(let s):
            spans = SpanSelector(service: s.service, name: s.name)
            errorRate = "\(s.op.rawValue) \(AlertTransitions.formatValue(s.threshold))"
            window = DurationText.format(s.window)
            minSpans = s.minSpans
        }
        evaluatedAt = status?.evaluatedAt.map(RFC3339.format)
        evaluationMillis = status?.durationMillis
        error = status?.error
        active = status?.active ?? 0
    }

    /// The condition in words, e.g. `allocation_delay.p95_s > 600 over 1h` or `order.accepted → order.allocated within 2h`.
    public var conditionText: String {
        let group = by.map { " by \($0)" } ?? ""
        switch kind {
        case "kpi": return "\(kpi ?? "") \(op ?? "") \(AlertTransitions.formatValue(threshold ?? 0)) over \(window ?? "")" + group
        case "sla": return "\(after ?? "") → \(expect ?? "") within \(within ?? "")" + group
        default: return "error_rate \(errorRate ?? "") over \(window ?? "")" + group
        }
    }
}
