import WaybillModel

/// The KPI document of interfaces.md (`waybill kpi --format json`, `GET /api/v1/kpis`).
///
/// Ordering is part of the contract so that equal inputs give byte-equal JSON: groups (and series)
/// by group value ascending with the null group last; points by time.
public struct KPIDocument: Hashable, Sendable {
    public struct Group: Hashable, Sendable {
        /// nil is the null group (the order lacks the field).
        public var value: String?
        public var kpis: KPIs
        public init(value: String?, kpis: KPIs) {
            self.value = value
            self.kpis = kpis
        }
    }

    public struct Point: Hashable, Sendable {
        /// The step `[start, end)`, aligned to multiples of the step since the epoch. Its KPIs cover the
        /// part of the step inside the query window (the first and last steps may be cut by `from`/`to`).
        public var start: Micros
        public var end: Micros
        public var kpis: KPIs
        public init(start: Micros, end: Micros, kpis: KPIs) {
            self.start = start
            self.end = end
            self.kpis = kpis
        }
    }

    public struct Series: Hashable, Sendable {
        /// The group value; without `by` there is a single series over all orders, whose key is `{}`.
        public var value: String?
        public var points: [Point]
        public init(value: String?, points: [Point]) {
            self.value = value
            self.points = points
        }
    }

    public var query: KPIQuery
    public var total: KPIs
    public var groups: [Group]
    public var series: [Series]
    /// The name of a split that is not a dimension (a telemetry split such as `error_spans:erp`); the
    /// groups' key name is `query.by` or this.
    public var splitName: String?

    public init(query: KPIQuery, total: KPIs, groups: [Group], series: [Series], splitName: String? = nil) {
        self.query = query
        self.total = total
        self.groups = groups
        self.series = series
        self.splitName = splitName
    }

    /// The key name of the groups (`warehouse`, ...), nil when the document is not split.
    public var groupKeyName: String? { query.by?.rawValue ?? splitName }

    func key(_ value: String?) -> JSONValue {
        guard let name = groupKeyName else { return .object([:]) }
        return .object([name: value.map(JSONValue.string) ?? .null])
    }

    public var json: JSONValue {
        [
            "from": .string(RFC3339.format(query.from)),
            "to": .string(RFC3339.format(query.to)),
            "by": groupKeyName.map(JSONValue.string) ?? .null,
            "step_s": query.step.map { .number(Double($0) / 1e6) } ?? .null,
            "total": total.json,
            "groups": .array(groups.map { ["key": key($0.value), "kpis": $0.kpis.json] }),
            "series": .array(series.map { s in
                [
                    "key": key(s.value),
                    "points": .array(s.points.map {
                        ["start": .string(RFC3339.format($0.start)), "end": .string(RFC3339.format($0.end)), "kpis": $0.kpis.json]
                    }),
                ]
            }),
        ]
    }

    /// Reads a document back (the CLI's remote mode renders what a server returned).
    public init(json j: JSONValue) throws(KPIQueryError) {
        func time(_ field: String, _ v: JSONValue?) throws(KPIQueryError) -> Micros {
            guard let s = v?.stringValue, let t = RFC3339.parse(s) else {
                throw KPIQueryError(field: field, rule: "must be an RFC 3339 time")
            }
            return t
        }
        let from = try time("from", j["from"]), to = try time("to", j["to"])
        var by: KPIDimension?
        var split: String?
        if let b = j["by"]?.stringValue {
            if let d = KPIDimension(rawValue: b) { by = d } else { split = b }
        }
        splitName = split
        let step = j["step_s"]?.doubleValue.map { Micros(($0 * 1e6).rounded()) }
        guard from < to else { throw KPIQueryError(field: "to", rule: "must be after from") }
        guard (step ?? 1) > 0 else { throw KPIQueryError(field: "step_s", rule: "must be positive") }
        query = KPIQuery(uncheckedFrom: from, to: to, by: by, step: step)
        guard let t = j["total"].flatMap(KPIs.init(json:)) else { throw KPIQueryError(field: "total", rule: "must be a KPIS object") }
        total = t
        let keyName = by?.rawValue ?? split
        func groupValue(_ key: JSONValue?, _ field: String) throws(KPIQueryError) -> String? {
            guard let keyName, let v = key?[keyName] else { return nil }
            if v.isNull { return nil }
            guard let s = v.stringValue else { throw KPIQueryError(field: field, rule: "group value must be a string or null") }
            return s
        }
        groups = []
        for (i, g) in (j["groups"]?.arrayValue ?? []).enumerated() {
            guard let k = g["kpis"].flatMap(KPIs.init(json:)) else { throw KPIQueryError(field: "groups[\(i)].kpis", rule: "must be a KPIS object") }
            groups.append(Group(value: try groupValue(g["key"], "groups[\(i)].key"), kpis: k))
        }
        series = []
        for (i, s) in (j["series"]?.arrayValue ?? []).enumerated() {
            var points: [Point] = []
            for (n, p) in (s["points"]?.arrayValue ?? []).enumerated() {
                let field = "series[\(i)].points[\(n)]"
                let start = try time(field + ".start", p["start"])
                let end = p["end"] == nil ? start + (step ?? 0) : try time(field + ".end", p["end"])
                guard let k = p["kpis"].flatMap(KPIs.init(json:)) else { throw KPIQueryError(field: field + ".kpis", rule: "must be a KPIS object") }
                points.append(Point(start: start, end: end, kpis: k))
            }
            series.append(Series(value: try groupValue(s["key"], "series[\(i)].key"), points: points))
        }
    }

    public func group(_ value: String?) -> Group? { groups.first { $0.value == value } }
}

/// Sorts group values: ascending, the null group last.
func groupOrder(_ a: String?, _ b: String?) -> Bool {
    switch (a, b) {
    case (nil, _): return false
    case (_, nil): return true
    case let (x?, y?): return x < y
    }
}

/// The KPI document travels as the JSON of `json` and is read back by `init(json:)`, both defined above.
extension KPIDocument: Codable {
    public init(from decoder: any Decoder) throws {
        do { try self.init(json: try JSONValue(from: decoder)) } catch let e as KPIQueryError {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath + [KPIDocumentKey(e.field)], debugDescription: e.rule))
        }
    }

    public func encode(to encoder: any Encoder) throws { try json.encode(to: encoder) }
}

struct KPIDocumentKey: CodingKey {
    var stringValue: String
    var intValue: Int? { nil }
    init(_ s: String) { stringValue = s }
    init?(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) { return nil }
}
