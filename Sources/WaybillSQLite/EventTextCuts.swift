import WaybillModel

/// The `time` and `traceparent` values that an event block of format 4 cuts out of an event's JSON text
/// and keeps in binary (`EventBlocks`): a time as its microseconds and the shape of its text (fraction
/// digits, `Z` or an offset), a traceparent as its 26 bytes. A value is cut only when the text made back
/// from the binary form is byte for byte the text that was sent, so the event reads back exactly as sent.
enum EventTextCuts {
    /// The shape of a time's text: `digits` fraction digits (0 to 6), and `Z` (`offsetMinutes` nil) or a
    /// `±HH:MM` offset.
    struct TimeShape: Equatable {
        var digits: Int
        var offsetMinutes: Int?

        /// Stored as one byte (digits, and 8 for an offset) and the offset's minutes as a zigzag varint.
        func write(_ out: inout ByteSink) {
            out.byte(UInt8(digits) | (offsetMinutes == nil ? 0 : 8))
            if let m = offsetMinutes { out.signed(Int64(m)) }
        }

        static func read(_ s: inout ByteSource) throws -> TimeShape {
            let b = try s.byte()
            guard b & 7 <= 6, b & ~15 == 0 else { throw ByteDecodingError("event block: time shape \(b)") }
            guard b & 8 != 0 else { return TimeShape(digits: Int(b & 7), offsetMinutes: nil) }
            let m = try s.signed()
            guard abs(m) < 24 * 60 else { throw ByteDecodingError("event block: time offset \(m)") }
            return TimeShape(digits: Int(b & 7), offsetMinutes: Int(m))
        }
    }

    /// The shape that gives back `text` for `time`, or nil when none does (nanoseconds, a lower-case `t`
    /// or `z`, `-00:00`, a leap second, a year outside 0000-9999, ...).
    static func timeShape(_ text: UnsafeBufferPointer<UInt8>, time: Micros) -> TimeShape? {
        let n = text.count
        guard n >= 20 else { return nil }
        var digits = 0
        if text[19] == UInt8(ascii: ".") {
            var i = 20
            while i < n, text[i] >= 0x30, text[i] <= 0x39 { i += 1 }
            digits = i - 20
        }
        var shape = TimeShape(digits: digits, offsetMinutes: nil)
        if text[n - 1] != UInt8(ascii: "Z") {
            guard n >= 25, text[n - 6] == UInt8(ascii: "+") || text[n - 6] == UInt8(ascii: "-") else { return nil }
            func d(_ i: Int) -> Int { Int(text[i]) - 0x30 }
            let m = (d(n - 5) * 10 + d(n - 4)) * 60 + d(n - 2) * 10 + d(n - 1)
            shape.offsetMinutes = text[n - 6] == UInt8(ascii: "-") ? -m : m
        }
        guard (0...6).contains(digits), shape.offsetMinutes.map({ abs($0) < 24 * 60 }) ?? true,
              let made = format(time, shape), made.count == n else { return nil }
        for i in 0..<n where made[i] != text[i] { return nil }
        return shape
    }

    /// The text of `time` in `shape`, or nil when the shape cannot hold it (a fraction finer than its
    /// digits, a year outside 0000-9999).
    static func format(_ time: Micros, _ shape: TimeShape) -> [UInt8]? {
        let (local, o) = time.addingReportingOverflow(Int64(shape.offsetMinutes ?? 0) * 60_000_000)
        guard !o else { return nil }
        let secs = local >= 0 ? local / 1_000_000 : (local - 999_999) / 1_000_000
        let us = Int(local - secs * 1_000_000)
        var scale = 1
        for _ in shape.digits..<6 { scale *= 10 }
        guard us % scale == 0 else { return nil }
        let days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400
        guard days > Int64(Int32.min), days < Int64(Int32.max) else { return nil }
        let rem = Int(secs - days * 86400)
        let (y, m, d) = RFC3339.civilFromDays(Int(days))
        guard (0...9999).contains(y) else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(32)
        func put(_ v: Int, _ width: Int) {
            var div = 1
            for _ in 1..<width { div *= 10 }
            var v = v
            while div > 0 {
                out.append(UInt8(0x30 + v / div))
                v %= div
                div /= 10
            }
        }
        put(y, 4); out.append(UInt8(ascii: "-")); put(m, 2); out.append(UInt8(ascii: "-")); put(d, 2)
        out.append(UInt8(ascii: "T"))
        put(rem / 3600, 2); out.append(UInt8(ascii: ":")); put(rem / 60 % 60, 2); out.append(UInt8(ascii: ":")); put(rem % 60, 2)
        if shape.digits > 0 {
            out.append(UInt8(ascii: "."))
            put(us / scale, shape.digits)
        }
        if let m = shape.offsetMinutes {
            out.append(m < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+"))
            put(abs(m) / 60, 2); out.append(UInt8(ascii: ":")); put(abs(m) % 60, 2)
        } else {
            out.append(UInt8(ascii: "Z"))
        }
        return out
    }

    /// Bytes of a traceparent in binary: version, trace id, parent id, flags.
    static let traceparentBytes = 26

    /// The 26 bytes of a traceparent written `vv-<32 hex>-<16 hex>-ff` in lower-case hex, or nil for any
    /// other text (upper case, another length, a later version's extra fields).
    static func traceparent(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8]? {
        guard text.count == 55, text[2] == 0x2D, text[35] == 0x2D, text[52] == 0x2D else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(traceparentBytes)
        for r in [0..<2, 3..<35, 36..<52, 53..<55] {
            guard LowerHex.decode(text[r], into: &out) else { return nil }
        }
        return out
    }

    /// The text of a traceparent's 26 bytes.
    static func traceparentText(_ b: ArraySlice<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(55)
        let at = b.startIndex
        for (k, r) in [0..<1, 1..<17, 17..<25, 25..<26].enumerated() {
            if k > 0 { out.append(0x2D) }
            LowerHex.encode(b[(at + r.lowerBound)..<(at + r.upperBound)], into: &out)
        }
        return out
    }
}
