import WaybillModel

/// How reports write KPI values for people: rates in %, durations in s/min/h, counts as integers.
public enum KPIFormatting {
    public static let missing = "–"

    public static func value(_ v: Double?, _ kind: KPIMetric.Kind) -> String {
        guard let v else { return missing }
        switch kind {
        case .count: return String(Int64(v.rounded()))
        case .ratio: return fixed(v * 100, 1) + "%"
        case .seconds: return seconds(v)
        }
    }

    public static func value(_ k: KPIs, _ m: KPIMetric) -> String { value(k.value(m), m.kind) }

    /// `0.35s`, `42.0s`, `12.5min`, `3.2h`.
    public static func seconds(_ s: Double) -> String {
        if s == 0 { return "0s" }
        if s < 1 { return fixed(s, 2) + "s" }
        if s < 60 { return fixed(s, 1) + "s" }
        if s < 3600 { return fixed(s / 60, 1) + "min" }
        return fixed(s / 3600, 1) + "h"
    }

    /// A change between periods: for rates the difference in percentage points, otherwise relative.
    /// `good` tells whether the change is good news (nil when there is no change or no comparison).
    public struct Change: Sendable, Equatable {
        public var text: String
        public var good: Bool?
    }

    public static func change(_ m: KPIMetric, current: Double?, previous: Double?) -> Change {
        guard let c = current, let p = previous else { return Change(text: missing, good: nil) }
        let delta: Double
        let text: String
        switch m.kind {
        case .ratio:
            delta = (c - p) * 100
            text = signed(delta, 1) + " pp"
        case .count, .seconds:
            if p == 0 {
                return c == 0 ? Change(text: "±0%", good: nil) : Change(text: "new", good: nil)
            }
            delta = (c - p) / p * 100
            text = signed(delta, 1) + "%"
        }
        if abs(delta) < 0.05 { return Change(text: text.hasPrefix("+") || text.hasPrefix("-") ? "±" + text.dropFirst() : text, good: nil) }
        return Change(text: text, good: (delta > 0) == m.higherIsBetter)
    }

    /// Fixed-point decimal text without Foundation's locale-dependent formatting.
    public static func fixed(_ v: Double, _ decimals: Int) -> String {
        guard v.isFinite else { return missing }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let scaled = (abs(v) * scale).rounded()
        let whole = Int64(scaled / scale)
        var frac = Int64(scaled - Double(whole) * scale)
        let sign = v < 0 && scaled != 0 ? "-" : ""
        guard decimals > 0 else { return sign + String(whole) }
        var digits = ""
        for _ in 0..<decimals {
            digits = String(frac % 10) + digits
            frac /= 10
        }
        return sign + String(whole) + "." + digits
    }

    static func signed(_ v: Double, _ decimals: Int) -> String {
        let s = fixed(v, decimals)
        return s.hasPrefix("-") ? s : "+" + s
    }

    /// A window as people read it: `2026-11-01T00:00:00Z → 2026-11-08T00:00:00Z (7d)`.
    public static func window(_ q: KPIQuery) -> String {
        RFC3339.format(q.from) + " → " + RFC3339.format(q.to) + " (" + DurationText.format(q.to - q.from) + ")"
    }

    public static func groupName(_ value: String?) -> String { value ?? "(none)" }
}
