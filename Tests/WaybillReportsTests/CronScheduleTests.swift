import Foundation
import Testing
import WaybillModel
@testable import WaybillReports

func utc(_ s: String) -> Micros { RFC3339.parse(s)! }
func zone(_ id: String) -> ZonedClock { ZonedClock(identifier: id)! }
func times(_ cron: String, _ tz: String, after: String, count: Int) throws -> [String] {
    let s = try CronSchedule(cron, zone: zone(tz))
    var out: [String] = []
    var at = utc(after)
    for _ in 0..<count {
        guard let n = s.next(after: at) else { break }
        out.append(RFC3339.format(n))
        at = n
    }
    return out
}

@Suite("Cron schedule")
struct CronScheduleTests {
    @Test("Monday 08:00 in Berlin is 07:00 UTC in winter and 06:00 UTC in summer")
    func weeklyInZone() throws {
        #expect(try times("0 8 * * mon", "Europe/Berlin", after: "2026-03-20T00:00:00Z", count: 3) == [
            "2026-03-23T07:00:00Z", "2026-03-30T06:00:00Z", "2026-04-06T06:00:00Z",
        ])
        #expect(try times("0 8 * * 1", "America/New_York", after: "2026-10-26T00:00:00Z", count: 2) == [
            "2026-10-26T12:00:00Z", "2026-11-02T13:00:00Z",
        ])
        // UTC and a zone with a half-hour offset.
        #expect(try times("30 9 * * *", "UTC", after: "2026-01-01T09:30:00Z", count: 1) == ["2026-01-02T09:30:00Z"])
        #expect(try times("0 9 * * *", "Asia/Kolkata", after: "2026-01-01T00:00:00Z", count: 1) == ["2026-01-01T03:30:00Z"])
    }

    @Test("A time skipped by spring-forward runs once, when the gap ends")
    func springForwardGap() throws {
        // Europe/Berlin jumps from 02:00 to 03:00 local (01:00 UTC) on 2026-03-29.
        #expect(try times("30 2 * * *", "Europe/Berlin", after: "2026-03-28T00:00:00Z", count: 3) == [
            "2026-03-28T01:30:00Z", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z",
        ])
        // Every 15 minutes: the four gap times collapse into the one instant 03:00, which is also a real time.
        let quarter = try times("*/15 * * * *", "Europe/Berlin", after: "2026-03-29T00:30:00Z", count: 4)
        #expect(quarter == ["2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z", "2026-03-29T01:30:00Z"])
        // America/New_York: 02:00 -> 03:00 on 2026-03-08 (07:00 UTC).
        #expect(try times("0 2 * * *", "America/New_York", after: "2026-03-07T12:00:00Z", count: 2) == [
            "2026-03-08T07:00:00Z", "2026-03-09T06:00:00Z",
        ])
    }

    @Test("A time that happens twice at fall-back runs once, at its first instant")
    func fallBackRepeat() throws {
        // Europe/Berlin: 03:00 CEST -> 02:00 CET on 2026-10-25 at 01:00 UTC; 02:30 happens at 00:30 and 01:30 UTC.
        #expect(try times("30 2 * * *", "Europe/Berlin", after: "2026-10-24T12:00:00Z", count: 2) == [
            "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z",
        ])
        // Hourly: the repeated hour's minute 0 fires once; the next is 03:00 CET.
        #expect(try times("0 * * * *", "Europe/Berlin", after: "2026-10-24T23:30:00Z", count: 3) == [
            "2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z",
        ])
    }

    @Test("Day-of-month and day-of-week: either when both are restricted, names, ranges, steps, 7 is Sunday")
    func dayRules() throws {
        // 13th of the month or any Friday (cron's OR), from Feb 2026: Fri 6, Fri 13 (both), Fri 20, Fri 27, Fri Mar 6, Fri Mar 13.
        #expect(try times("0 0 13 * fri", "UTC", after: "2026-02-01T00:00:00Z", count: 6) == [
            "2026-02-06T00:00:00Z", "2026-02-13T00:00:00Z", "2026-02-20T00:00:00Z", "2026-02-27T00:00:00Z",
            "2026-03-06T00:00:00Z", "2026-03-13T00:00:00Z",
        ])
        // Last days: the 31st only in months that have one.
        #expect(try times("0 12 31 * *", "UTC", after: "2026-01-31T12:00:00Z", count: 2) == ["2026-03-31T12:00:00Z", "2026-05-31T12:00:00Z"])
        // 29 February: the next leap year.
        #expect(try times("0 0 29 feb *", "UTC", after: "2026-01-01T00:00:00Z", count: 1) == ["2028-02-29T00:00:00Z"])
        // Weekdays 9-17 every 4 hours from 9 (9, 13, 17); Sunday as 7 and as 0.
        #expect(try times("0 9-17/4 * * mon-fri", "UTC", after: "2026-11-27T12:00:00Z", count: 4) == [
            "2026-11-27T13:00:00Z", "2026-11-27T17:00:00Z", "2026-11-30T09:00:00Z", "2026-11-30T13:00:00Z",
        ])
        #expect(try times("0 6 * * 7", "UTC", after: "2026-11-23T00:00:00Z", count: 1) == (try times("0 6 * * sun", "UTC", after: "2026-11-23T00:00:00Z", count: 1)))
        #expect(try times("0 6 * * 0", "UTC", after: "2026-11-23T00:00:00Z", count: 1) == ["2026-11-29T06:00:00Z"])
        // First of each quarter, a list of months by name.
        #expect(try times("15 7 1 jan,apr,jul,oct *", "UTC", after: "2026-02-01T00:00:00Z", count: 2) == [
            "2026-04-01T07:15:00Z", "2026-07-01T07:15:00Z",
        ])
        #expect(try times("@weekly", "UTC", after: "2026-11-23T00:00:00Z", count: 1) == ["2026-11-29T00:00:00Z"])
    }

    @Test("Bad expressions are refused naming the field and the rule")
    func refused() {
        func rule(_ s: String) -> String? {
            do { _ = try CronSchedule(s); return nil } catch { return error.rule }
        }
        #expect(rule("0 8 * *")?.contains("5 fields") == true)
        #expect(rule("60 8 * * *")?.contains("minute field '60': 60 is outside 0-59") == true)
        #expect(rule("0 8 * * funday")?.contains("day-of-week") == true)
        #expect(rule("0 8 5-1 * *")?.contains("goes backwards") == true)
        #expect(rule("*/0 * * * *")?.contains("step") == true)
        #expect(rule("0 0 30 feb *")?.contains("never matches") == true)
        #expect(rule("0 8 ,1 * *")?.contains("empty") == true)
    }

    @Test("The latest time in a range, for a run missed while the server was down")
    func latestMissed() throws {
        let s = try CronSchedule("0 8 * * mon", zone: zone("Europe/Berlin"))
        // Down from Sunday to the Wednesday after: Monday 08:00 is the one missed.
        #expect(s.latest(after: utc("2026-11-22T12:00:00Z"), through: utc("2026-11-25T12:00:00Z")) == utc("2026-11-23T07:00:00Z"))
        // Down three weeks: only the last Monday.
        #expect(s.latest(after: utc("2026-11-01T12:00:00Z"), through: utc("2026-11-25T12:00:00Z")) == utc("2026-11-23T07:00:00Z"))
        // Exactly at the time counts; just after a send nothing is due.
        #expect(s.latest(after: utc("2026-11-20T00:00:00Z"), through: utc("2026-11-23T07:00:00Z")) == utc("2026-11-23T07:00:00Z"))
        #expect(s.latest(after: utc("2026-11-23T07:00:00Z"), through: utc("2026-11-29T07:00:00Z")) == nil)
        // Agrees with stepping next() over a month of an every-5-minutes schedule across a DST change.
        let five = try CronSchedule("*/5 1-3 * * *", zone: zone("Europe/Berlin"))
        // From 2026-10-20 00:00 to 2026-10-30 00:00 in Berlin (CEST, then CET).
        let all = five.times(after: utc("2026-10-19T22:00:00Z"), through: utc("2026-10-29T23:00:00Z"))
        #expect(five.latest(after: utc("2026-10-19T22:00:00Z"), through: utc("2026-10-29T23:00:00Z")) == all.last)
        #expect(all == all.sorted() && Set(all).count == all.count)
        // 10 days of 36 a day: on the 25th the hour 02:xx happens twice and runs once, so that day has 36 too.
        #expect(all.count == 360)
    }
}

@Suite("Report window")
struct ReportWindowTests {
    func range(_ w: String, at: String, _ tz: String = "UTC") throws -> [String] {
        let r = try ReportWindow(w).resolve(at: utc(at), zone: zone(tz))
        return [RFC3339.format(r.lowerBound), RFC3339.format(r.upperBound)]
    }

    @Test("Calendar windows resolve against the instant in the report's time zone")
    func calendar() throws {
        // Wednesday 2026-11-25 10:00 UTC.
        #expect(try range("previous ISO week", at: "2026-11-25T10:00:00Z") == ["2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z"])
        #expect(try range("previous ISO week", at: "2026-11-25T10:00:00Z", "Europe/Berlin") == ["2026-11-15T23:00:00Z", "2026-11-22T23:00:00Z"])
        #expect(try range("previous day", at: "2026-11-25T10:00:00Z", "America/New_York") == ["2026-11-24T05:00:00Z", "2026-11-25T05:00:00Z"])
        #expect(try range("yesterday", at: "2026-11-25T00:30:00Z", "Europe/Berlin") == ["2026-11-23T23:00:00Z", "2026-11-24T23:00:00Z"])
        #expect(try range("month to date", at: "2026-11-25T10:00:00Z") == ["2026-11-01T00:00:00Z", "2026-11-25T10:00:00Z"])
        #expect(try range("previous month", at: "2026-03-05T10:00:00Z") == ["2026-02-01T00:00:00Z", "2026-03-01T00:00:00Z"])
        #expect(try range("previous quarter", at: "2026-11-25T10:00:00Z") == ["2026-07-01T00:00:00Z", "2026-10-01T00:00:00Z"])
        #expect(try range("year to date", at: "2026-11-25T10:00:00Z") == ["2026-01-01T00:00:00Z", "2026-11-25T10:00:00Z"])
        // 10:20 UTC is 15:50 in India: the previous hour is 14:00-15:00 there.
        #expect(try range("previous hour", at: "2026-11-25T10:20:00Z", "Asia/Kolkata") == ["2026-11-25T08:30:00Z", "2026-11-25T09:30:00Z"])
        #expect(try range("last 7d", at: "2026-11-25T10:00:00Z") == ["2026-11-18T10:00:00Z", "2026-11-25T10:00:00Z"])
        #expect(try range("Last  24h", at: "2026-11-25T10:00:00Z") == ["2026-11-24T10:00:00Z", "2026-11-25T10:00:00Z"])
    }

    @Test("A day across a DST change is 23 or 25 hours long; a to-date window at its unit's start is the whole previous unit")
    func dstAndEdges() throws {
        #expect(try range("previous day", at: "2026-03-30T08:00:00Z", "Europe/Berlin") == ["2026-03-28T23:00:00Z", "2026-03-29T22:00:00Z"])
        #expect(try range("previous day", at: "2026-10-26T08:00:00Z", "Europe/Berlin") == ["2026-10-24T22:00:00Z", "2026-10-25T23:00:00Z"])
        // Monday 00:00 Berlin, exactly: week to date would be empty.
        #expect(try range("week to date", at: "2026-11-22T23:00:00Z", "Europe/Berlin") == ["2026-11-15T23:00:00Z", "2026-11-22T23:00:00Z"])
        // The ISO week of 2027-01-01 (a Friday) starts on Monday 2026-12-28.
        #expect(try range("week to date", at: "2027-01-01T12:00:00Z") == ["2026-12-28T00:00:00Z", "2027-01-01T12:00:00Z"])
    }

    @Test("Words outside the vocabulary are refused, listing it")
    func refused() {
        for bad in ["last week-ish", "previous fortnight", "last 7", "last -1d", "last 2w", ""] {
            #expect(throws: FieldError.self) { try ReportWindow(bad) }
        }
        do { _ = try ReportWindow("previous fortnight") } catch { #expect(error.field == "window" && error.rule.contains("previous ISO week")) }
        #expect(ReportWindow.previous(.week).description == "previous ISO week")
    }
}
