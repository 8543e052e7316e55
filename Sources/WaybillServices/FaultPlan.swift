import Foundation
import WaybillModel

/// When a fault is active: always, every day between two UTC times, or one absolute interval.
public enum TimeWindow: Codable, Hashable, Sendable {
    case always
    /// Seconds after midnight UTC; `start > end` wraps past midnight.
    case daily(start: Int, end: Int)
    case interval(start: Micros, end: Micros)

    public func contains(_ t: Micros) -> Bool { end(containing: t) != nil }

    /// The start of the occurrence that contains `t`, or nil when `t` is outside the window.
    public func start(containing t: Micros) -> Micros? {
        guard let e = end(containing: t) else { return nil }
        switch self {
        case .always: return Micros.min
        case .interval(let s, _): return s
        case .daily(let s, let en):
            let length = Micros(s < en ? en - s : 86_400 - s + en) * 1_000_000
            return e - length
        }
    }

    /// The end of the occurrence that contains `t`, or nil when `t` is outside the window.
    public func end(containing t: Micros) -> Micros? {
        switch self {
        case .always:
            return Micros.max
        case .interval(let s, let e):
            return t >= s && t < e ? e : nil
        case .daily(let s, let e):
            let day = t >= 0 ? t / 86_400_000_000 : (t - 86_399_999_999) / 86_400_000_000
            let midnight = day * 86_400_000_000
            let sec = Int((t - midnight) / 1_000_000)
            if s <= e {
                return sec >= s && sec < e ? midnight + Micros(e) * 1_000_000 : nil
            }
            if sec >= s { return midnight + 86_400_000_000 + Micros(e) * 1_000_000 }
            if sec < e { return midnight + Micros(e) * 1_000_000 }
            return nil
        }
    }
}

public struct ERPLatencyFault: Codable, Hashable, Sendable {
    /// Extra latency per ERP call (each call gets 0.5x to 1.5x of it).
    public var extra: Micros
    public var window: TimeWindow
}

public struct WarehouseOutage: Codable, Hashable, Sendable {
    public var warehouse: String
    public var window: TimeWindow
}

/// A bad item of a fault spec: the item as written and the rule it broke.
public struct FaultSpecError: Error, Hashable, Sendable, CustomStringConvertible {
    public var item: String
    public var reason: String
    public var description: String { "invalid fault \"\(item)\": \(reason)" }
}

/// Faults injected into a simulation, parsed from a spec such as
/// `erp-latency=2s@10:00-11:00,warehouse-outage=DC-EAST@2026-11-20T08:00/4h,short-pick=0.05,duplicate=0.03,reorder=0.1,late-arrival=0.02,erp-errors=0.1`.
///
/// Windows: `@HH:MM-HH:MM` (every day, UTC) or `@<time>/<duration>` (once; the time is RFC 3339,
/// seconds and offset optional, UTC when absent); no window means always.
public struct FaultPlan: Codable, Hashable, Sendable {
    public var erpLatency: [ERPLatencyFault] = []
    /// Share of ERP calls that fail (HTTP 503).
    public var erpErrorRate = 0.0
    public var outages: [WarehouseOutage] = []
    /// Share of order lines picked short.
    public var shortPickRate = 0.0
    /// Share of events delivered twice (same id and bytes).
    public var duplicateRate = 0.0
    /// Share of events delivered after some later ones (seconds to minutes).
    public var reorderRate = 0.0
    /// Share of events delivered hours after they happened.
    public var lateArrivalRate = 0.0

    public init() {}
    public static let none = FaultPlan()

    public static let knownFaults = ["erp-latency", "erp-errors", "warehouse-outage", "short-pick", "duplicate", "reorder", "late-arrival"]

    /// Parses a spec; `warehouses`, when given, are the ids an outage may name.
    public static func parse(_ spec: String, warehouses: [String]? = nil) throws(FaultSpecError) -> FaultPlan {
        var plan = FaultPlan()
        for rawItem in spec.split(separator: ",", omittingEmptySubsequences: false) {
            let item = rawItem.trimmingCharacters(in: .whitespaces)
            if item.isEmpty {
                if spec.trimmingCharacters(in: .whitespaces).isEmpty { break }
                throw FaultSpecError(item: item, reason: "empty item (stray comma?)")
            }
            guard let eq = item.firstIndex(of: "=") else {
                throw FaultSpecError(item: item, reason: "expected name=value")
            }
            let name = String(item[..<eq]).trimmingCharacters(in: .whitespaces)
            let value = String(item[item.index(after: eq)...]).trimmingCharacters(in: .whitespaces)
            if value.isEmpty { throw FaultSpecError(item: item, reason: "missing value after '='") }
            func rate() throws(FaultSpecError) -> Double {
                guard let p = Double(value), p.isFinite else { throw FaultSpecError(item: item, reason: "\(name) must be a number between 0 and 1, got \"\(value)\"") }
                guard p >= 0, p <= 1 else { throw FaultSpecError(item: item, reason: "\(name) must be between 0 and 1, got \(value)") }
                return p
            }
            let (head, window) = try splitWindow(value, item: item)
            switch name {
            case "erp-latency":
                guard let d = DurationText.parse(head), d > 0 else {
                    throw FaultSpecError(item: item, reason: "erp-latency must be a positive duration such as 2s or 500ms, got \"\(head)\"")
                }
                plan.erpLatency.append(ERPLatencyFault(extra: d, window: window))
            case "warehouse-outage":
                if let known = warehouses, !known.contains(head) {
                    throw FaultSpecError(item: item, reason: "unknown warehouse \"\(head)\"; known: \(known.joined(separator: ", "))")
                }
                plan.outages.append(WarehouseOutage(warehouse: head, window: window))
            case "erp-errors", "short-pick", "duplicate", "reorder", "late-arrival":
                if window != .always { throw FaultSpecError(item: item, reason: "\(name) takes no @window") }
                let p = try rate()
                switch name {
                case "erp-errors": plan.erpErrorRate = p
                case "short-pick": plan.shortPickRate = p
                case "duplicate": plan.duplicateRate = p
                case "reorder": plan.reorderRate = p
                default: plan.lateArrivalRate = p
                }
            default:
                throw FaultSpecError(item: item, reason: "unknown fault \"\(name)\"; known: \(knownFaults.joined(separator: ", "))")
            }
        }
        return plan
    }

    private static func splitWindow(_ value: String, item: String) throws(FaultSpecError) -> (String, TimeWindow) {
        guard let at = value.firstIndex(of: "@") else { return (value, .always) }
        let head = String(value[..<at])
        let w = String(value[value.index(after: at)...])
        if head.isEmpty { throw FaultSpecError(item: item, reason: "missing value before '@'") }
        if let slash = w.firstIndex(of: "/") {
            let startText = String(w[..<slash]), durText = String(w[w.index(after: slash)...])
            guard let start = lenientTime(startText) else {
                throw FaultSpecError(item: item, reason: "window start must be a time such as 2026-11-20T08:00, got \"\(startText)\"")
            }
            guard let d = DurationText.parse(durText), d > 0 else {
                throw FaultSpecError(item: item, reason: "window length must be a positive duration such as 4h, got \"\(durText)\"")
            }
            return (head, .interval(start: start, end: start + d))
        }
        let parts = w.split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let s = clock(String(parts[0])), let e = clock(String(parts[1])) else {
            throw FaultSpecError(item: item, reason: "window must be HH:MM-HH:MM (daily, UTC) or <time>/<duration>, got \"\(w)\"")
        }
        if s == e { throw FaultSpecError(item: item, reason: "daily window \"\(w)\" is empty") }
        return (head, .daily(start: s, end: e))
    }

    /// `HH:MM` as seconds after midnight.
    private static func clock(_ s: String) -> Int? {
        let p = s.split(separator: ":", omittingEmptySubsequences: false)
        guard p.count == 2, p[0].count == 2, p[1].count == 2, let h = Int(p[0]), let m = Int(p[1]),
              (0...24).contains(h), (0...59).contains(m), h * 60 + m <= 24 * 60 else { return nil }
        return h * 3600 + m * 60
    }

    /// RFC 3339 with optional seconds and offset (UTC when absent), or a bare date.
    static func lenientTime(_ s: String) -> Micros? {
        if let t = RFC3339.parse(s) { return t }
        if s.count == 10, let t = RFC3339.parse(s + "T00:00:00Z") { return t }
        let hasOffset = s.hasSuffix("Z") || s.hasSuffix("z") || (s.count > 19 && (s.dropFirst(19).contains("+") || s.dropFirst(19).contains("-")))
        let base = hasOffset ? s : s + "Z"
        if let t = RFC3339.parse(base) { return t }
        if s.count == 16 {
            return RFC3339.parse(String(s) + ":00Z")
        }
        if s.count >= 16 {
            let i = s.index(s.startIndex, offsetBy: 16)
            return RFC3339.parse(String(s[..<i]) + ":00" + String(s[i...]))
        }
        return nil
    }

    // MARK: Queries used by the simulator

    /// Extra ERP latency at `t` (the sum of the active latency faults).
    public func erpExtraLatency(at t: Micros) -> Micros {
        var total: Micros = 0
        for f in erpLatency where f.window.contains(t) { total += f.extra }
        return total
    }

    /// When `warehouse` is down at `t`, the end of that outage.
    public func outageEnd(_ warehouse: String, at t: Micros) -> Micros? {
        var end: Micros?
        for o in outages where o.warehouse == warehouse {
            if let e = o.window.end(containing: t) { end = max(end ?? e, e) }
        }
        return end
    }

    /// When `warehouse` is down at `t`, the start of that outage (the earliest, if outages overlap).
    public func outageStart(_ warehouse: String, at t: Micros) -> Micros? {
        var start: Micros?
        for o in outages where o.warehouse == warehouse {
            if let s = o.window.start(containing: t) { start = min(start ?? s, s) }
        }
        return start
    }

    public var isEmpty: Bool { self == .none }
}
