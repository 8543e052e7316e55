import Foundation
import WaybillModel

/// A five-field cron schedule (`minute hour day-of-month month day-of-week`) read in a time zone.
///
/// Fields take `*`, numbers, ranges `a-b`, steps `*/n` and `a-b/n`, and lists `a,b`; months also take
/// `jan`..`dec` and days of the week `sun`..`sat` (0 and 7 are Sunday). `@hourly`, `@daily`,
/// `@weekly` (Sunday 00:00, as in cron), `@monthly` and `@yearly` are the usual shorthands. As in cron, when both day fields are restricted a day matches either of them;
/// when one is `*` only the other counts.
///
/// Daylight saving (see `ZonedClock`): a time that happens twice runs once, at its first instant; a
/// time skipped by clocks going forward runs when the gap ends, once.
public struct CronSchedule: Sendable, Hashable, CustomStringConvertible {
    public let expression: String
    public let zone: ZonedClock
    let minutes: [Int]
    let hours: [Int]
    let daysOfMonth: Set<Int>
    let months: Set<Int>
    /// 0 Sunday ... 6 Saturday.
    let daysOfWeek: Set<Int>
    let domRestricted: Bool
    let dowRestricted: Bool

    public var description: String { "\(expression) (\(zone.identifier))" }

    static let shorthands = ["@hourly": "0 * * * *", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@weekly": "0 0 * * 0",
                             "@monthly": "0 0 1 * *", "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *"]
    static let monthNames = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
    static let dayNames = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]

    /// Parses `expression`; the error's rule names the field and what is wrong with it.
    public init(_ expression: String, zone: ZonedClock = .utc) throws(FieldError) {
        let text = expression.trimmingCharacters(in: .whitespaces)
        let expanded = Self.shorthands[text.lowercased()] ?? text
        let parts = expanded.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard parts.count == 5 else {
            throw FieldError(field: "schedule", rule: "'\(expression)' must have 5 fields (minute hour day-of-month month day-of-week), like \"0 8 * * mon\"")
        }
        self.expression = text
        self.zone = zone
        minutes = try Self.field(parts[0], "minute", 0...59, names: []).sorted()
        hours = try Self.field(parts[1], "hour", 0...23, names: []).sorted()
        daysOfMonth = try Self.field(parts[2], "day-of-month", 1...31, names: [])
        months = try Self.field(parts[3], "month", 1...12, names: Self.monthNames, nameBase: 1)
        var dow = try Self.field(parts[4], "day-of-week", 0...7, names: Self.dayNames)
        if dow.remove(7) != nil { dow.insert(0) }
        daysOfWeek = dow
        domRestricted = parts[2] != "*" && !parts[2].hasPrefix("*/")
        dowRestricted = parts[4] != "*" && !parts[4].hasPrefix("*/")
        // A schedule that can never fire (30 February) is refused rather than silently never sent.
        let possible = months.contains { m in daysOfMonth.contains { $0 <= [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1] } }
        if domRestricted && !dowRestricted && !possible {
            throw FieldError(field: "schedule", rule: "'\(expression)' never matches: no month has those days")
        }
    }

    static func field(_ text: String, _ name: String, _ range: ClosedRange<Int>, names: [String], nameBase: Int = 0) throws(FieldError) -> Set<Int> {
        func bad(_ why: String) -> FieldError { FieldError(field: "schedule", rule: "\(name) field '\(text)': \(why)") }
        func value(_ s: String) throws(FieldError) -> Int {
            if let i = names.firstIndex(of: s.lowercased()) { return i + nameBase }
            guard let v = Int(s) else { throw bad("'\(s)' is not a number" + (names.isEmpty ? "" : " or a name (\(names.joined(separator: ", ")))")) }
            guard range.contains(v) else { throw bad("\(v) is outside \(range.lowerBound)-\(range.upperBound)") }
            return v
        }
        var out = Set<Int>()
        for item in text.split(separator: ",", omittingEmptySubsequences: false).map(String.init) {
            guard !item.isEmpty else { throw bad("empty list item") }
            let stepParts = item.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard stepParts.count <= 2 else { throw bad("more than one /") }
            var step = 1
            if stepParts.count == 2 {
                guard let s = Int(stepParts[1]), s >= 1 else { throw bad("step '\(stepParts[1])' must be a positive number") }
                step = s
            }
            let base = stepParts[0]
            var lo: Int, hi: Int
            if base == "*" {
                lo = range.lowerBound
                hi = name == "day-of-week" ? 6 : range.upperBound
            } else if let dash = base.firstIndex(of: "-") {
                lo = try value(String(base[..<dash]))
                hi = try value(String(base[base.index(after: dash)...]))
                guard lo <= hi else { throw bad("range \(lo)-\(hi) goes backwards") }
            } else {
                lo = try value(base)
                hi = stepParts.count == 2 ? (name == "day-of-week" ? 6 : range.upperBound) : lo
            }
            out.formUnion(stride(from: lo, through: hi, by: step))
        }
        return out
    }

    func matches(day: LocalDateTime) -> Bool {
        guard months.contains(day.month) else { return false }
        let dom = daysOfMonth.contains(day.day)
        let dow = daysOfWeek.contains(day.isoWeekday % 7)
        switch (domRestricted, dowRestricted) {
        case (true, true): return dom || dow
        case (true, false): return dom
        case (false, true): return dow
        case (false, false): return dom && dow
        }
    }

    /// How far ahead (in days) `next` looks before concluding there is no next time (leap days need 8 years).
    static let horizonDays = 366 * 9

    /// The first scheduled instant strictly after `t`, nil when there is none within nine years.
    public func next(after t: Micros) -> Micros? {
        let start = zone.local(t).addingDays(-1)
        var day = LocalDateTime(year: start.year, month: start.month, day: start.day)
        for _ in 0..<Self.horizonDays {
            if matches(day: day) {
                for h in hours {
                    for m in minutes {
                        var at = day
                        at.hour = h
                        at.minute = m
                        let instant = zone.instant(at)
                        if instant > t { return instant }
                    }
                }
            }
            day = day.addingDays(1)
        }
        return nil
    }

    /// Every scheduled instant in `(after, through]`, at most `limit`, earliest first.
    public func times(after: Micros, through: Micros, limit: Int = 10_000) -> [Micros] {
        var out: [Micros] = []
        var t = after
        while out.count < limit, let n = next(after: t), n <= through {
            out.append(n)
            t = n
        }
        return out
    }

    /// The latest scheduled instant in `(after, through]`, nil when none falls there. Searches back from
    /// `through` day by day, so a server down for months does not walk every minute since.
    public func latest(after: Micros, through: Micros) -> Micros? {
        guard after < through else { return nil }
        let end = zone.local(through).addingDays(1)
        let first = zone.local(after).addingDays(-1).dayNumber
        var day = LocalDateTime(year: end.year, month: end.month, day: end.day)
        while day.dayNumber >= first {
            if matches(day: day) {
                for h in hours.reversed() {
                    for m in minutes.reversed() {
                        var at = day
                        at.hour = h
                        at.minute = m
                        let instant = zone.instant(at)
                        if instant <= through { return instant > after ? instant : nil }
                    }
                }
            }
            day = day.addingDays(-1)
        }
        return nil
    }
}
