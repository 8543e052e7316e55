import Foundation

/// A point in time as microseconds since the Unix epoch (UTC). Event times keep microsecond precision.
public typealias Micros = Int64

public enum RFC3339 {
    /// Parses an RFC 3339 date-time (`2026-11-23T14:00:00.123+01:00`, `...Z`, lower-case `t`/`z`
    /// accepted). Rejects impossible dates (Feb 30, hour 24, ...). Fractions beyond microseconds are truncated.
    public static func parse(_ s: String) -> Micros? {
        var s = s
        return s.withUTF8 { parse(bytes: $0) }
    }

    /// `parse` on the UTF-8 bytes of the text, without making a String of them.
    public static func parse(bytes b: UnsafeBufferPointer<UInt8>) -> Micros? {
        let n = b.count
        guard n >= 20 else { return nil }
        func digits(_ at: Int, _ count: Int) -> Int? {
            guard at + count <= n else { return nil }
            var v = 0
            for i in at..<(at + count) {
                let c = b[i]
                guard c >= 0x30 && c <= 0x39 else { return nil }
                v = v * 10 + Int(c - 0x30)
            }
            return v
        }
        guard let year = digits(0, 4), b[4] == UInt8(ascii: "-"),
              let month = digits(5, 2), b[7] == UInt8(ascii: "-"),
              let day = digits(8, 2),
              b[10] == UInt8(ascii: "T") || b[10] == UInt8(ascii: "t") || b[10] == UInt8(ascii: " "),
              let hour = digits(11, 2), b[13] == UInt8(ascii: ":"),
              let minute = digits(14, 2), b[16] == UInt8(ascii: ":"),
              let second = digits(17, 2)
        else { return nil }
        guard year >= 1, month >= 1, month <= 12, day >= 1, day <= daysInMonth(year, month),
              hour <= 23, minute <= 59, second <= 60 else { return nil }
        var i = 19
        var micros = 0
        if i < n, b[i] == UInt8(ascii: ".") {
            i += 1
            var count = 0
            while i < n, b[i] >= 0x30, b[i] <= 0x39 {
                if count < 6 { micros = micros * 10 + Int(b[i] - 0x30) }
                count += 1
                i += 1
            }
            guard count > 0 else { return nil }
            if count < 6 { for _ in count..<6 { micros *= 10 } }
        }
        guard i < n else { return nil }
        var offsetSeconds = 0
        if b[i] == UInt8(ascii: "Z") || b[i] == UInt8(ascii: "z") {
            i += 1
        } else if b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
            guard let oh = digits(i + 1, 2), i + 3 < n, b[i + 3] == UInt8(ascii: ":"), let om = digits(i + 4, 2),
                  oh <= 23, om <= 59 else { return nil }
            offsetSeconds = sign * (oh * 3600 + om * 60)
            i += 6
        } else {
            return nil
        }
        guard i == n else { return nil }
        let days = daysFromCivil(year, month, day)
        // A leap second (:60) is folded into the next second, as most systems do.
        let secs = Int64(days) * 86400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetSeconds)
        return secs * 1_000_000 + Int64(micros)
    }

    /// Formats as UTC with `Z`, with milliseconds when the time has them and microseconds when it has those.
    public static func format(_ t: Micros) -> String {
        let secs = t >= 0 ? t / 1_000_000 : (t - 999_999) / 1_000_000
        let us = Int(t - secs * 1_000_000)
        let days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400
        let rem = Int(secs - days * 86400)
        let (y, m, d) = civilFromDays(Int(days))
        var out = pad(y, 4) + "-" + pad(m, 2) + "-" + pad(d, 2) + "T" + pad(rem / 3600, 2) + ":" + pad(rem / 60 % 60, 2) + ":" + pad(rem % 60, 2)
        if us != 0 {
            out += us % 1000 == 0 ? "." + pad(us / 1000, 3) : "." + pad(us, 6)
        }
        return out + "Z"
    }

    private static func pad(_ v: Int, _ width: Int) -> String {
        let s = String(v)
        return s.count >= width ? s : String(repeating: "0", count: width - s.count) + s
    }

    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }
    static func daysInMonth(_ y: Int, _ m: Int) -> Int {
        switch m {
        case 2: return isLeap(y) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Howard Hinnant's days_from_civil.
    static func daysFromCivil(_ y0: Int, _ m: Int, _ d: Int) -> Int {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468
    }

    /// Howard Hinnant's civil_from_days: (year, month, day) of a day count since 1970-01-01.
    @inlinable public static func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
        let z = z0 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let y = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp + (mp < 10 ? 3 : -9)
        return (m <= 2 ? y + 1 : y, m, d)
    }
}

/// Durations as users write them: `500ms`, `30s`, `15m`, `2h`, `7d`, `1w`, and combinations like `1h30m`.
public enum DurationText {
    public static func parse(_ s: String) -> Micros? {
        let chars = Array(s.trimmingCharacters(in: .whitespaces))
        guard !chars.isEmpty else { return nil }
        var i = 0
        var total: Double = 0
        while i < chars.count {
            var num = ""
            while i < chars.count, chars[i].isNumber || chars[i] == "." { num.append(chars[i]); i += 1 }
            var unit = ""
            while i < chars.count, chars[i].isLetter { unit.append(chars[i]); i += 1 }
            guard let v = Double(num), !unit.isEmpty else { return nil }
            let scale: Double
            switch unit {
            case "us", "µs": scale = 1
            case "ms": scale = 1_000
            case "s": scale = 1_000_000
            case "m": scale = 60_000_000
            case "h": scale = 3_600_000_000
            case "d": scale = 86_400_000_000
            case "w": scale = 604_800_000_000
            default: return nil
            }
            total += v * scale
        }
        guard total.isFinite, total < 9e18 else { return nil }
        return Micros(total)
    }

    /// `1h30m`, `42s`, `1.5s`, `250ms`: compact and readable.
    public static func format(_ us: Micros) -> String {
        if us < 0 { return "-" + format(-us) }
        if us < 1_000 { return "\(us)µs" }
        if us < 1_000_000 { return trim(Double(us) / 1_000) + "ms" }
        if us < 60_000_000 { return trim(Double(us) / 1_000_000) + "s" }
        let totalSeconds = us / 1_000_000
        let d = totalSeconds / 86400, h = totalSeconds / 3600 % 24, m = totalSeconds / 60 % 60, s = totalSeconds % 60
        var out = ""
        if d > 0 { out += "\(d)d" }
        if h > 0 { out += "\(h)h" }
        if m > 0 && d == 0 { out += "\(m)m" }
        if s > 0 && d == 0 && h == 0 { out += "\(s)s" }
        return out.isEmpty ? "0s" : out
    }

    private static func trim(_ v: Double) -> String {
        let r = (v * 10).rounded() / 10
        return r == r.rounded() ? String(Int(r)) : String(r)
    }
}

/// A time given on the command line or in a query: RFC 3339, `now`, or relative to now (`-7d`, `-90m`).
public enum TimeText {
    public static func parse(_ s: String, now: Micros) -> Micros? {
        if s == "now" { return now }
        if s.hasPrefix("-"), let d = DurationText.parse(String(s.dropFirst())) { return now - d }
        if s.hasPrefix("+"), let d = DurationText.parse(String(s.dropFirst())) { return now + d }
        if let t = RFC3339.parse(s) { return t }
        // A bare date means its midnight UTC.
        if s.count == 10, let t = RFC3339.parse(s + "T00:00:00Z") { return t }
        return nil
    }
}

public func currentMicros() -> Micros {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Micros(ts.tv_sec) * 1_000_000 + Micros(ts.tv_nsec / 1000)
}
