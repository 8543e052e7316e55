import WaybillModel

/// A KPI request that cannot be answered, with the parameter at fault.
public typealias KPIQueryError = FieldError

/// `[from, to)`, an optional grouping and an optional time-series step (interfaces.md `GET /api/v1/kpis`).
public struct KPIQuery: Hashable, Sendable {
    public let from: Micros
    public let to: Micros
    public let by: KPIDimension?
    public let step: Micros?

    /// Bounds the work and the document size of one request.
    public static let maxPoints = 10_000

    public init(from: Micros, to: Micros, by: KPIDimension? = nil, step: Micros? = nil) throws(KPIQueryError) {
        guard from < to else {
            throw KPIQueryError(field: "to", rule: "must be after from (\(RFC3339.format(from)))")
        }
        if let s = step {
            guard s > 0 else { throw KPIQueryError(field: "step", rule: "must be a positive duration") }
            let points = (floorDiv(to - 1, s) - floorDiv(from, s)) + 1
            guard points <= Int64(Self.maxPoints) else {
                throw KPIQueryError(field: "step", rule: "splits the window into \(points) points, more than \(Self.maxPoints); use a larger step")
            }
        }
        self.from = from
        self.to = to
        self.by = by
        self.step = step
    }

    /// Reads the parameters as people and URLs write them: `from`/`to` as RFC 3339, `now` or relative
    /// (`-7d`), `by` as a dimension name, `step` as a duration (`1h`). Missing `to` is `now`; missing
    /// `from` is `defaultWindow` before `to`.
    public static func parse(from: String?, to: String?, by: String?, step: String?, now: Micros,
                             defaultWindow: Micros = 7 * 86_400_000_000) throws(KPIQueryError) -> KPIQuery
    {
        func nonEmpty(_ s: String?) -> String? { (s?.isEmpty ?? true) ? nil : s }
        var toTime = now
        if let t = nonEmpty(to) {
            guard let v = TimeText.parse(t, now: now) else {
                throw KPIQueryError(field: "to", rule: "'\(t)' is not an RFC 3339 time, 'now' or a relative time like -7d")
            }
            toTime = v
        }
        var fromTime = toTime - defaultWindow
        if let f = nonEmpty(from) {
            guard let v = TimeText.parse(f, now: now) else {
                throw KPIQueryError(field: "from", rule: "'\(f)' is not an RFC 3339 time, 'now' or a relative time like -7d")
            }
            fromTime = v
        }
        var dimension: KPIDimension?
        if let b = nonEmpty(by) {
            guard let d = KPIDimension(rawValue: b) else {
                throw KPIQueryError(field: "by", rule: "'\(b)' is not one of warehouse, channel, region")
            }
            dimension = d
        }
        var stepMicros: Micros?
        if let s = nonEmpty(step) {
            guard let v = DurationText.parse(s), v > 0 else {
                throw KPIQueryError(field: "step", rule: "'\(s)' is not a positive duration like 15m or 1h")
            }
            stepMicros = v
        }
        return try KPIQuery(from: fromTime, to: toTime, by: dimension, step: stepMicros)
    }

    init(uncheckedFrom from: Micros, to: Micros, by: KPIDimension?, step: Micros?) {
        self.from = from
        self.to = to
        self.by = by
        self.step = step
    }

    /// The window of the same length just before this one, for period-over-period change. Not
    /// re-validated: its step alignment may give it one point more than `maxPoints`.
    public var previous: KPIQuery {
        KPIQuery(uncheckedFrom: from - (to - from), to: from, by: by, step: step)
    }

    /// The same window and step without grouping.
    public var ungrouped: KPIQuery { KPIQuery(uncheckedFrom: from, to: to, by: nil, step: step) }

    public var window: Range<Micros> { from..<to }

    /// The pieces of `[from, to)` cut at multiples of `step` since the Unix epoch; empty without a step.
    public var steps: [Range<Micros>] {
        guard let s = step else { return [] }
        var out: [Range<Micros>] = []
        var start = floorDiv(from, s) * s
        while start < to {
            out.append(Swift.max(start, from)..<Swift.min(start + s, to))
            start += s
        }
        return out
    }

    /// Index into `steps` of a time inside the window.
    func stepIndex(_ t: Micros) -> Int? {
        guard let s = step, t >= from, t < to else { return nil }
        return Int(floorDiv(t, s) - floorDiv(from, s))
    }
}

@inline(__always) func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}
