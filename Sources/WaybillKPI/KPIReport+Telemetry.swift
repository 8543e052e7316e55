import WaybillModel

/// The technical telemetry of one order's trace (kpis.md "Technical telemetry linked to KPIs").
public struct OrderTelemetry: Hashable, Sendable {
    public var spans: Int = 0
    public var errorSpans: Int = 0
    public var errorSpansByService: [String: Int] = [:]
    /// Summed span time per service (overlapping spans add up).
    public var spanTimeByService: [String: Micros] = [:]

    public init() {}

    public init<S: Sequence>(spans: S) where S.Element == Span {
        for s in spans {
            self.spans += 1
            if s.status == .error {
                errorSpans += 1
                errorSpansByService[s.service, default: 0] += 1
            }
            spanTimeByService[s.service, default: 0] += Swift.max(0, s.end - s.start)
        }
    }
}

/// A split of a KPI report by telemetry, e.g. orders whose trace holds an error span in `erp`
/// against those without. Orders without telemetry (no trace spans known) fall in the null group.
public enum TelemetrySplit: Hashable, Sendable {
    /// `with_error` / `without_error`.
    case errorSpans
    /// `with_error` / `without_error`, counting only the service's spans.
    case errorSpansIn(service: String)
    /// `above` / `at_or_below`: the service's summed span time against a threshold.
    case spanTime(service: String, above: Micros)

    /// The key name the document's groups use: `error_spans`, `error_spans:erp`, `span_time:erp>2s`.
    public var name: String {
        switch self {
        case .errorSpans: return "error_spans"
        case .errorSpansIn(let s): return "error_spans:" + s
        case .spanTime(let s, let t): return "span_time:" + s + ">" + DurationText.format(t)
        }
    }

    public func label(_ t: OrderTelemetry?) -> String? {
        guard let t else { return nil }
        switch self {
        case .errorSpans: return t.errorSpans > 0 ? "with_error" : "without_error"
        case .errorSpansIn(let s): return (t.errorSpansByService[s] ?? 0) > 0 ? "with_error" : "without_error"
        case .spanTime(let s, let limit): return (t.spanTimeByService[s] ?? 0) > limit ? "above" : "at_or_below"
        }
    }
}

extension KPIReport {
    /// The KPI document split by telemetry instead of a dimension (`query.by` is ignored). Exact quantiles.
    public static func compute<S: Sequence>(facts: S, query: KPIQuery, split: TelemetrySplit,
                                            telemetry: (OrderFacts) -> OrderTelemetry?) -> KPIDocument
    where S.Element == OrderFacts {
        compute(facts: facts, query: query, splitName: split.name) { split.label(telemetry($0)) }
    }

    /// The KPI document with groups given by a label per order (both its allocation and shipment
    /// parts fall in the order's group; nil is the null group). Exact quantiles.
    public static func compute<S: Sequence>(facts: S, query: KPIQuery, splitName: String,
                                            label: (OrderFacts) -> String?) -> KPIDocument
    where S.Element == OrderFacts {
        let q = query.ungrouped
        var b = DocumentBuilder<ExactKPICollector>(query: q, splitName: splitName)
        for f in facts {
            let c = OrderContribution(f)
            guard !c.isEmpty else { continue }
            let g = label(f)
            if let a = c.allocation { b.add(a, group: g) }
            if let s = c.shipment { b.add(s, group: g) }
        }
        return b.document
    }
}
