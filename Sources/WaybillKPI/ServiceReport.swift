import WaybillModel
import WaybillStore

/// Per service over a window: span rate, error rate, latency percentiles, and the calls seen
/// between services (a child span in another service than its parent is an edge parent → child).
public struct ServiceReport: Sendable, Equatable {
    public struct Row: Sendable, Equatable, Codable {
        public var service: String
        public var spans: Int
        public var errors: Int
        public var perSecond: Double
        public var errorRate: Double
        public var latency: Latency

        enum CodingKeys: String, CodingKey { case service, spans, errors, perSecond = "per_second", errorRate = "error_rate", latency = "latency_ms" }
    }

    /// Milliseconds. A percentile is the KPI definitions' quantile (the smallest value with at least X% at
    /// or below it), read from a duration histogram: within 0.5% of the exact value. `max` is exact.
    public struct Latency: Sendable, Equatable, Codable {
        public var p50: Double
        public var p90: Double
        public var p95: Double
        public var p99: Double
        public var max: Double

        public init(p50: Double, p90: Double, p95: Double, p99: Double, max: Double) {
            self.p50 = p50
            self.p90 = p90
            self.p95 = p95
            self.p99 = p99
            self.max = max
        }
    }

    public struct Edge: Sendable, Equatable, Codable {
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

    /// The report of these spans alone (a call counts when its parent span is among them).
    public init<S: Sequence>(spans: S, from: Micros, to: Micros, truncated: Bool = false) where S.Element == Span {
        var a = ServiceAggregates(spans: spans)
        a.truncated = truncated
        self.init(a, from: from, to: to)
    }

    public init(_ a: ServiceAggregates, from: Micros, to: Micros) {
        self.from = from
        self.to = to
        truncated = a.truncated
        let seconds = Swift.max(Double(to - from) / 1e6, 1e-6)
        services = a.services.keys.sorted().compactMap { name in
            let s = a.services[name]!
            guard s.spans > 0 else { return nil }
            let h = s.durations
            func q(_ p: Double) -> Double { (h.value(atRank: QuantileRank.rank(percent: p, count: Int(h.count))) ?? 0) / 1000 }
            return Row(service: name, spans: s.spans, errors: s.errors, perSecond: Double(s.spans) / seconds,
                       errorRate: Double(s.errors) / Double(s.spans),
                       latency: Latency(p50: q(50), p90: q(90), p95: q(95), p99: q(99), max: Double(h.max ?? 0) / 1000))
        }
        edges = a.calls.keys.sorted().map { k in
            let c = a.calls[k]!
            return Edge(from: k.from, to: k.to, calls: c.calls, errors: c.errors)
        }
    }
}

/// The service view document (`GET /api/v1/services`, `waybill services --format json`).
extension ServiceReport: Codable {
    enum CodingKeys: String, CodingKey { case from, to, truncated, services, edges }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func time(_ k: CodingKeys) throws -> Micros {
            guard let t = RFC3339.parse(try c.decode(String.self, forKey: k)) else {
                throw DecodingError.dataCorruptedError(forKey: k, in: c, debugDescription: "must be an RFC 3339 time")
            }
            return t
        }
        from = try time(.from)
        to = try time(.to)
        truncated = try c.decode(Bool.self, forKey: .truncated)
        services = try c.decode([Row].self, forKey: .services)
        edges = try c.decode([Edge].self, forKey: .edges)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(RFC3339.format(from), forKey: .from)
        try c.encode(RFC3339.format(to), forKey: .to)
        try c.encode(truncated, forKey: .truncated)
        try c.encode(services, forKey: .services)
        try c.encode(edges, forKey: .edges)
    }
}
