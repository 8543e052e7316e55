import WaybillModel

/// A bad query parameter or flag.
public typealias QueryError = FieldError

extension OrderQuery {
    /// The filter names shared by `waybill search` flags and `GET /api/v1/traces` query parameters.
    public static let parameterNames = ["state", "type", "source", "warehouse", "channel", "region", "from", "to", "stuck", "limit", "cursor", "at"]

    /// Builds a query from parameters (`stuck` is a duration such as `2h`; `from`/`to`/`at` are RFC 3339 or relative like `-7d`).
    public init(parameters p: [String: String], now: Micros) throws(QueryError) {
        let at: Micros
        if let a = p["at"] {
            guard let t = TimeText.parse(a, now: now) else { throw QueryError(field: "at", rule: "must be RFC 3339 or relative like -2h") }
            at = t
        } else {
            at = now
        }
        self.init(now: at)
        for key in p.keys where !Self.parameterNames.contains(key) {
            throw QueryError(field: key, rule: "unknown filter; known: \(Self.parameterNames.joined(separator: ", "))")
        }
        if let s = p["state"] {
            guard let st = Stage(name: s) else {
                throw QueryError(field: "state", rule: "must be one of \(Stage.allCases.map(\.name).joined(separator: ", "))")
            }
            state = st
        }
        type = p["type"]
        source = p["source"]
        warehouse = p["warehouse"]
        channel = p["channel"]
        region = p["region"]
        if let f = p["from"] {
            guard let t = TimeText.parse(f, now: at) else { throw QueryError(field: "from", rule: "must be RFC 3339 or relative like -7d") }
            from = t
        }
        if let f = p["to"] {
            guard let t = TimeText.parse(f, now: at) else { throw QueryError(field: "to", rule: "must be RFC 3339 or relative like -1h") }
            to = t
        }
        if let f = from, let t = to, t <= f { throw QueryError(field: "to", rule: "must be after from") }
        if let s = p["stuck"] {
            guard let d = DurationText.parse(s), d >= 0 else { throw QueryError(field: "stuck", rule: "must be a duration such as 30m, 2h, 1d") }
            stuckFor = d
        }
        if let l = p["limit"] {
            guard let n = Int(l), n >= 1, n <= 10_000 else { throw QueryError(field: "limit", rule: "must be an integer from 1 to 10000") }
            limit = n
        }
        cursor = p["cursor"]
    }
}

/// The search document (`GET /api/v1/traces`, `waybill search --format json`):
/// `{"orders": [...], "next_cursor": "..." | null}`, times in RFC 3339 UTC.
extension OrderSummary: Codable {
    enum CodingKeys: String, CodingKey {
        case correlationID = "correlation_id", state, stateSince = "state_since", firstEventAt = "first_event", lastEventAt = "last_event"
        case eventCount = "event_count", channel, warehouse
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func time(_ k: CodingKeys) throws -> Micros? {
            guard let s = try c.decodeIfPresent(String.self, forKey: k) else { return nil }
            guard let t = RFC3339.parse(s) else {
                throw DecodingError.dataCorruptedError(forKey: k, in: c, debugDescription: "must be an RFC 3339 time")
            }
            return t
        }
        let stateName = try c.decodeIfPresent(String.self, forKey: .state)
        guard let first = try time(.firstEventAt), let last = try time(.lastEventAt) else {
            throw DecodingError.dataCorruptedError(forKey: .firstEventAt, in: c, debugDescription: "first_event and last_event are required")
        }
        self.init(correlationID: try c.decode(String.self, forKey: .correlationID), state: stateName.flatMap(Stage.init(name:)),
                  stateSince: try time(.stateSince), firstEventAt: first, lastEventAt: last,
                  eventCount: try c.decode(Int.self, forKey: .eventCount), channel: try c.decodeIfPresent(String.self, forKey: .channel),
                  warehouse: try c.decodeIfPresent(String.self, forKey: .warehouse))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(correlationID, forKey: .correlationID)
        try c.encodeIfPresent(state?.name, forKey: .state)
        try c.encodeIfPresent(stateSince.map(RFC3339.format), forKey: .stateSince)
        try c.encode(RFC3339.format(firstEventAt), forKey: .firstEventAt)
        try c.encode(RFC3339.format(lastEventAt), forKey: .lastEventAt)
        try c.encode(eventCount, forKey: .eventCount)
        try c.encodeIfPresent(channel, forKey: .channel)
        try c.encodeIfPresent(warehouse, forKey: .warehouse)
    }
}

extension OrderPage: Codable {
    enum CodingKeys: String, CodingKey { case orders, nextCursor = "next_cursor" }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(orders: try c.decode([OrderSummary].self, forKey: .orders), nextCursor: try c.decodeIfPresent(String.self, forKey: .nextCursor))
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(orders, forKey: .orders)
        try c.encodeIfPresent(nextCursor, forKey: .nextCursor)
    }

    /// The search document as JSON.
    public var documentJSON: JSONValue { (try? JSONCoding.encode(self)) ?? .null }
}
