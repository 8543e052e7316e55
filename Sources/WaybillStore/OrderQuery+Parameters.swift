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

extension OrderSummary {
    public var documentJSON: JSONValue {
        .object([
            "correlation_id": .string(correlationID),
            "state": state.map { .string($0.name) } ?? .null,
            "state_since": stateSince.map { .string(RFC3339.format($0)) } ?? .null,
            "first_event": .string(RFC3339.format(firstEventAt)),
            "last_event": .string(RFC3339.format(lastEventAt)),
            "event_count": .number(Double(eventCount)),
            "channel": channel.map(JSONValue.string) ?? .null,
            "warehouse": warehouse.map(JSONValue.string) ?? .null,
        ])
    }
}

extension OrderPage {
    /// The search document: `{"orders": [...], "next_cursor": "..." | null}`.
    public var documentJSON: JSONValue {
        .object(["orders": .array(orders.map(\.documentJSON)), "next_cursor": nextCursor.map(JSONValue.string) ?? .null])
    }

    public init?(documentJSON j: JSONValue) {
        guard let arr = j["orders"]?.arrayValue else { return nil }
        self.init(orders: arr.compactMap { o in
            guard let id = o["correlation_id"]?.stringValue,
                  let first = o["first_event"]?.stringValue.flatMap(RFC3339.parse),
                  let last = o["last_event"]?.stringValue.flatMap(RFC3339.parse) else { return nil }
            return OrderSummary(correlationID: id, state: o["state"]?.stringValue.flatMap(Stage.init(name:)),
                                stateSince: o["state_since"]?.stringValue.flatMap(RFC3339.parse), firstEventAt: first, lastEventAt: last,
                                eventCount: Int(o["event_count"]?.doubleValue ?? 0), channel: o["channel"]?.stringValue,
                                warehouse: o["warehouse"]?.stringValue)
        }, nextCursor: j["next_cursor"]?.stringValue)
    }
}
