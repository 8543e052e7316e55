import WaybillModel

/// Per service over a window: span rate, error rate, latency percentiles, and the calls seen
/// between services (a child span in another service than its parent is an edge parent → child).
public struct ServiceReport: Sendable, Equatable {
    public struct Row: Sendable, Equatable {
        public var service: String
        public var spans: Int
        public var errors: Int
        public var perSecond: Double
        public var errorRate: Double
        /// Milliseconds; kpis.md's quantile (smallest value with at least X% at or below), exact.
        public var p50: Double
        public var p90: Double
        public var p99: Double
        public var max: Double
    }

    public struct Edge: Sendable, Equatable {
        public var from: String
        public var to: String
        public var calls: Int
        public var errors: Int
    }

    public var from: Micros
    public var to: Micros
    public var services: [Row]
    public var edges: [Edge]
    /// True when the span limit cut the window short.
    public var truncated: Bool

    public init<S: Sequence>(spans: S, from: Micros, to: Micros, truncated: Bool = false) where S.Element == Span {
        self.from = from
        self.to = to
        self.truncated = truncated
        var durations: [String: [Double]] = [:]
        var errors: [String: Int] = [:]
        var byID: [String: Span] = [:]
        var all: [Span] = []
        for s in spans {
            durations[s.service, default: []].append(s.durationMillis)
            if s.status == .error { errors[s.service, default: 0] += 1 }
            byID[s.traceID + s.spanID] = s
            all.append(s)
        }
        let seconds = Swift.max(Double(to - from) / 1e6, 1e-6)
        services = durations.keys.sorted().map { name in
            let d = durations[name]!.sorted()
            func q(_ p: Double) -> Double { d[Int(QuantileRank.rank(percent: p, count: d.count)) - 1] }
            let e = errors[name] ?? 0
            return Row(service: name, spans: d.count, errors: e, perSecond: Double(d.count) / seconds, errorRate: Double(e) / Double(d.count),
                       p50: q(50), p90: q(90), p99: q(99), max: d.last ?? 0)
        }
        var edgeCounts: [String: Edge] = [:]
        for s in all {
            guard let p = s.parentSpanID, let parent = byID[s.traceID + p], parent.service != s.service else { continue }
            let k = parent.service + "\u{0}" + s.service
            var e = edgeCounts[k] ?? Edge(from: parent.service, to: s.service, calls: 0, errors: 0)
            e.calls += 1
            if s.status == .error { e.errors += 1 }
            edgeCounts[k] = e
        }
        edges = edgeCounts.values.sorted { ($0.from, $0.to) < ($1.from, $1.to) }
    }

    public var json: JSONValue {
        .object([
            "from": .string(RFC3339.format(from)), "to": .string(RFC3339.format(to)), "truncated": .bool(truncated),
            "services": .array(services.map { r in
                .object(["service": .string(r.service), "spans": .number(Double(r.spans)), "errors": .number(Double(r.errors)),
                         "per_second": .number(r.perSecond), "error_rate": .number(r.errorRate),
                         "latency_ms": .object(["p50": .number(r.p50), "p90": .number(r.p90), "p99": .number(r.p99), "max": .number(r.max)])])
            }),
            "edges": .array(edges.map { .object(["from": .string($0.from), "to": .string($0.to), "calls": .number(Double($0.calls)),
                                                "errors": .number(Double($0.errors))]) }),
        ])
    }
}
