import Foundation
import WaybillModel

/// The window a saved report covers, in a closed vocabulary resolved against an instant (`--at`, or the
/// scheduled time) in the report's time zone. Calendar windows start at local midnight; weeks are ISO
/// weeks (Monday to Monday).
///
/// | text | window |
/// |---|---|
/// | `previous hour` | the last whole clock hour before `at` |
/// | `previous day`, `yesterday` | the local day before `at`'s |
/// | `today`, `day to date` | `at`'s local day, up to `at` |
/// | `previous ISO week`, `previous week` | the ISO week before `at`'s |
/// | `week to date` | `at`'s ISO week, up to `at` |
/// | `previous month` | the calendar month before `at`'s |
/// | `month to date` | `at`'s month, up to `at` |
/// | `previous quarter`, `quarter to date`, `previous year`, `year to date` | likewise |
/// | `last N(m|h|d)`, e.g. `last 7d`, `last 24h` | the N minutes, hours or days up to `at` |
public enum ReportWindow: Sendable, Hashable, CustomStringConvertible {
    public enum Unit: String, Sendable, Hashable, CaseIterable { case hour, day, week, month, quarter, year }
    /// The whole unit before the one `at` falls in.
    case previous(Unit)
    /// From the start of the unit `at` falls in, up to `at`.
    case toDate(Unit)
    /// The duration up to `at`.
    case last(Micros)

    public static let vocabulary = ["previous hour", "previous day", "yesterday", "today", "day to date", "previous ISO week", "previous week",
                                    "week to date", "previous month", "month to date", "previous quarter", "quarter to date",
                                    "previous year", "year to date", "last N (e.g. last 7d, last 24h, last 90m)"]

    public init(_ text: String) throws(FieldError) {
        let t = text.lowercased().split(separator: " ", omittingEmptySubsequences: true).joined(separator: " ")
        switch t {
        case "yesterday": self = .previous(.day)
        case "today": self = .toDate(.day)
        case "previous iso week": self = .previous(.week)
        default:
            if t.hasPrefix("previous "), let u = Unit(rawValue: String(t.dropFirst(9))) {
                self = .previous(u)
            } else if t.hasSuffix(" to date"), let u = Unit(rawValue: String(t.dropLast(8))) {
                self = .toDate(u)
            } else if t.hasPrefix("last "), let d = DurationText.parse(String(t.dropFirst(5))), d > 0,
                      t.last.map({ "mhd".contains($0) }) == true {
                self = .last(d)
            } else {
                throw FieldError(field: "window", rule: "'\(text)' is not a report window; use one of " + Self.vocabulary.joined(separator: ", "))
            }
        }
    }

    public var description: String {
        switch self {
        case .previous(.week): return "previous ISO week"
        case .previous(let u): return "previous \(u.rawValue)"
        case .toDate(let u): return "\(u.rawValue) to date"
        case .last(let d): return "last \(DurationText.format(d))"
        }
    }

    /// `[from, to)` as of `at` in `zone`. A to-date window at the very start of its unit is empty and
    /// is widened to the whole previous unit, so it is never empty.
    public func resolve(at: Micros, zone: ZonedClock) -> Range<Micros> {
        switch self {
        case .last(let d):
            return (at - d)..<at
        case .previous(let u):
            let start = Self.start(of: u, containing: at, zone: zone)
            return Self.start(of: u, before: start, zone: zone)..<start
        case .toDate(let u):
            let start = Self.start(of: u, containing: at, zone: zone)
            if start >= at { return Self.start(of: u, before: start, zone: zone)..<start }
            return start..<at
        }
    }

    /// The start of the unit that `t` falls in.
    static func start(of unit: Unit, containing t: Micros, zone: ZonedClock) -> Micros {
        let l = zone.local(t)
        switch unit {
        case .hour:
            // The local clock hour (zones such as India's are off the UTC hour).
            let s = floorDivide(t, 1_000_000)
            let off = zone.offset(atSecond: s)
            return (floorDivide(s + off, 3600) * 3600 - off) * 1_000_000
        case .day:
            return zone.instant(LocalDateTime(year: l.year, month: l.month, day: l.day))
        case .week:
            let monday = LocalDateTime(year: l.year, month: l.month, day: l.day).addingDays(1 - l.isoWeekday)
            return zone.instant(monday)
        case .month:
            return zone.instant(LocalDateTime(year: l.year, month: l.month, day: 1))
        case .quarter:
            return zone.instant(LocalDateTime(year: l.year, month: (l.month - 1) / 3 * 3 + 1, day: 1))
        case .year:
            return zone.instant(LocalDateTime(year: l.year, month: 1, day: 1))
        }
    }

    /// The start of the unit just before the one starting at `start`.
    static func start(of unit: Unit, before start: Micros, zone: ZonedClock) -> Micros {
        Self.start(of: unit, containing: start - 1, zone: zone)
    }
}
