import WaybillModel

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

    /// Milliseconds; the KPI definitions' quantile (smallest value with at least X% at or below), exact.
    public struct Latency: Sendable, Equatable, Codable {
        public var p50: Double
        public var p90: Double
        public var p99: Double
        public var max: Double
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
                       latency: Latency(p50: q(50), p90: q(90), p99: q(99), max: d.last ?? 0))
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
