import Foundation
import WaybillModel

/// A wall-clock date and time in some time zone, and the instants it names.
public struct LocalDateTime: Hashable, Sendable, Comparable, CustomStringConvertible {
    public var year: Int, month: Int, day: Int, hour: Int, minute: Int

    public init(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0) {
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
    }

    /// Days since 1970-01-01 of this date (proleptic Gregorian).
    public var dayNumber: Int { CivilDate.days(year: year, month: month, day: day) }
    /// ISO weekday: 1 Monday ... 7 Sunday.
    public var isoWeekday: Int { CivilDate.isoWeekday(dayNumber) }
    /// Seconds since the epoch if this wall time were UTC.
    var wallSeconds: Int64 { Int64(dayNumber) * 86_400 + Int64(hour * 3600 + minute * 60) }

    public static func < (a: LocalDateTime, b: LocalDateTime) -> Bool {
        (a.year, a.month, a.day, a.hour, a.minute) < (b.year, b.month, b.day, b.hour, b.minute)
    }

    public var description: String {
        String(format: "%04d-%02d-%02dT%02d:%02d", year, month, day, hour, minute)
    }

    /// The date `n` days later (or earlier), at the same wall time.
    public func addingDays(_ n: Int) -> LocalDateTime {
        let (y, m, d) = CivilDate.date(days: dayNumber + n)
        return LocalDateTime(year: y, month: m, day: d, hour: hour, minute: minute)
    }
}

/// Pure calendar arithmetic on day numbers (days since 1970-01-01), after Howard Hinnant's algorithms.
enum CivilDate {
    static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func date(days z0: Int) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// 1 Monday ... 7 Sunday (1970-01-01 was a Thursday).
    static func isoWeekday(_ days: Int) -> Int {
        let r = ((days % 7) + 7 + 3) % 7
        return r + 1
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
        let next = month == 12 ? days(year: year + 1, month: 1, day: 1) : days(year: year, month: month + 1, day: 1)
        return next - days(year: year, month: month, day: 1)
    }
}

/// Conversions between instants and wall-clock times in one IANA time zone, with the daylight-saving
/// rules stated once:
/// - a wall time that happens twice (clocks set back) names its first instant;
/// - a wall time that does not happen (clocks set forward) names the instant the gap ends (the first
///   instant after it), so "02:30" on a spring-forward night is the moment clocks jump to 03:00.
public struct ZonedClock: Sendable, Hashable {
    public let timeZone: TimeZone

    public init(_ timeZone: TimeZone) { self.timeZone = timeZone }

    /// nil for an unknown zone name. `UTC` and `Z` are UTC.
    public init?(identifier: String) {
        if identifier == "UTC" || identifier == "Z" {
            self.timeZone = TimeZone(secondsFromGMT: 0)!
            return
        }
        guard let tz = TimeZone(identifier: identifier) else { return nil }
        self.timeZone = tz
    }

    public static let utc = ZonedClock(TimeZone(secondsFromGMT: 0)!)

    public var identifier: String { timeZone.identifier }

    func offset(atSecond s: Int64) -> Int64 {
        Int64(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: TimeInterval(s))))
    }

    /// The wall time at `t` (seconds and below dropped).
    public func local(_ t: Micros) -> LocalDateTime {
        let s = floorDivide(t, 1_000_000)
        let wall = s + offset(atSecond: s)
        let days = Int(floorDivide(wall, 86_400))
        let secOfDay = Int(wall - Int64(days) * 86_400)
        let (y, m, d) = CivilDate.date(days: days)
        return LocalDateTime(year: y, month: m, day: d, hour: secOfDay / 3600, minute: secOfDay % 3600 / 60)
    }

    /// The instant `local` names, under the rules above.
    public func instant(_ local: LocalDateTime) -> Micros {
        let wall = local.wallSeconds
        // Offsets in force within a day around: every offset the wall time could be read with.
        let offsets = Set([offset(atSecond: wall - 86_400), offset(atSecond: wall), offset(atSecond: wall + 86_400)])
        let valid = offsets.map { wall - $0 }.filter { offset(atSecond: $0) == wall - $0 }
        if let first = valid.min() { return first * 1_000_000 }
        // In a gap: the transition after the wall time read with the later (larger) offset.
        let before = wall - (offsets.max() ?? 0)
        if let next = timeZone.nextDaylightSavingTimeTransition(after: Date(timeIntervalSince1970: TimeInterval(before))) {
            return Int64(next.timeIntervalSince1970.rounded()) * 1_000_000
        }
        return (wall - offset(atSecond: wall)) * 1_000_000
    }
}

func floorDivide(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}
