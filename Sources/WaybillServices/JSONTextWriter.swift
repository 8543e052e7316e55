import WaybillModel

/// Writes compact JSON straight into a reusable byte buffer, for the simulator's hot path.
/// Callers write object keys in sorted order, so the text is byte-identical to `JSONWriter`'s.
struct JSONTextWriter {
    var bytes: [UInt8] = []
    private var first = true
    /// Day number and text (`YYYY-MM-DDT`) of the last time written.
    private var cachedDay = Int64.min
    private var cachedDayText: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    init(capacity: Int = 1024) { bytes.reserveCapacity(capacity) }

    mutating func reset() {
        bytes.removeAll(keepingCapacity: true)
        first = true
    }

    @inline(__always) private mutating func separate() {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
    }

    mutating func openObject() { separate(); bytes.append(UInt8(ascii: "{")); first = true }
    mutating func closeObject() { bytes.append(UInt8(ascii: "}")); first = false }
    mutating func openArray() { separate(); bytes.append(UInt8(ascii: "[")); first = true }
    mutating func closeArray() { bytes.append(UInt8(ascii: "]")); first = false }

    /// Writes `"name":`; the value that follows must not separate again.
    mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        first = true
    }

    mutating func rawValue(_ s: StaticString) {
        separate()
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    mutating func string(_ s: String) {
        separate()
        bytes.append(0x22)
        appendEscaped(s)
        bytes.append(0x22)
    }

    /// A string made of a prefix and a string, such as `shipment:` + tracking.
    mutating func string(_ prefix: StaticString, _ s: String) {
        separate()
        bytes.append(0x22)
        bytes.append(contentsOf: UnsafeBufferPointer(start: prefix.utf8Start, count: prefix.utf8CodeUnitCount))
        appendEscaped(s)
        bytes.append(0x22)
    }

    /// `"<base>-<seq>"`.
    mutating func string(_ base: String, dash seq: Int) {
        separate()
        bytes.append(0x22)
        appendEscaped(base)
        bytes.append(UInt8(ascii: "-"))
        appendInt(seq)
        bytes.append(0x22)
    }

    mutating func appendEscaped(_ s: String) {
        var s = s
        s.withUTF8 { u in
            var clean = true
            for c in u where c < 0x20 || c == 0x22 || c == 0x5C { clean = false; break }
            if clean { bytes.append(contentsOf: u); return }
            for c in u {
                switch c {
                case 0x22: bytes.append(0x5C); bytes.append(0x22)
                case 0x5C: bytes.append(0x5C); bytes.append(0x5C)
                case 0x0A: bytes.append(0x5C); bytes.append(UInt8(ascii: "n"))
                case 0x0D: bytes.append(0x5C); bytes.append(UInt8(ascii: "r"))
                case 0x09: bytes.append(0x5C); bytes.append(UInt8(ascii: "t"))
                case 0..<0x20:
                    let hex: StaticString = "0123456789abcdef"
                    bytes.append(contentsOf: [0x5C, UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0")])
                    bytes.append(hex.utf8Start[Int(c >> 4)])
                    bytes.append(hex.utf8Start[Int(c & 0xF)])
                default: bytes.append(c)
                }
            }
        }
    }

    mutating func int(_ v: Int) {
        separate()
        appendInt(v)
    }

    mutating func appendInt(_ v: Int) {
        if v < 0 { bytes.append(UInt8(ascii: "-")) }
        var m = v.magnitude
        if m < 10 { bytes.append(UInt8(ascii: "0") + UInt8(m)); return }
        var tmp: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                  UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &tmp) { t in
            while m > 0 { t[n] = UInt8(ascii: "0") + UInt8(m % 10); m /= 10; n += 1 }
            for i in stride(from: n - 1, through: 0, by: -1) { bytes.append(t[i]) }
        }
    }

    /// A number exactly as `JSONWriter.number` writes it.
    mutating func double(_ d: Double) {
        guard d.isFinite else { rawValue("null"); return }
        if d == d.rounded(), abs(d) < 1e15 {
            int(Int(d))
        } else {
            separate()
            bytes.append(contentsOf: "\(d)".utf8)
        }
    }

    mutating func bool(_ b: Bool) { rawValue(b ? "true" : "false") }

    /// An RFC 3339 UTC string exactly as `RFC3339.format` writes it.
    mutating func time(_ t: Micros) {
        separate()
        bytes.append(0x22)
        let secs = t >= 0 ? t / 1_000_000 : (t - 999_999) / 1_000_000
        let us = Int(t - secs * 1_000_000)
        let days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400
        let rem = Int(secs - days * 86400)
        if days != cachedDay {
            cachedDay = days
            let (y, m, d) = civilFromDays(Int(days))
            let yy = min(max(y, 0), 9999)
            cachedDayText = (digit(yy / 1000), digit(yy / 100 % 10), digit(yy / 10 % 10), digit(yy % 10), UInt8(ascii: "-"),
                             digit(m / 10), digit(m % 10), UInt8(ascii: "-"), digit(d / 10), digit(d % 10), UInt8(ascii: "T"))
        }
        withUnsafeBytes(of: cachedDayText) { bytes.append(contentsOf: $0) }
        let h = rem / 3600, mi = rem / 60 % 60, s = rem % 60
        bytes.append(digit(h / 10)); bytes.append(digit(h % 10)); bytes.append(UInt8(ascii: ":"))
        bytes.append(digit(mi / 10)); bytes.append(digit(mi % 10)); bytes.append(UInt8(ascii: ":"))
        bytes.append(digit(s / 10)); bytes.append(digit(s % 10))
        if us != 0 {
            bytes.append(UInt8(ascii: "."))
            if us % 1000 == 0 {
                let ms = us / 1000
                bytes.append(digit(ms / 100)); bytes.append(digit(ms / 10 % 10)); bytes.append(digit(ms % 10))
            } else {
                var div = 100_000
                while div > 0 { bytes.append(digit(us / div % 10)); div /= 10 }
            }
        }
        bytes.append(UInt8(ascii: "Z"))
        bytes.append(0x22)
    }

    /// `00-<trace>-<span>-01`.
    mutating func traceparent(_ trace: TraceContext) {
        separate()
        bytes.append(0x22)
        bytes.append(UInt8(ascii: "0")); bytes.append(UInt8(ascii: "0")); bytes.append(UInt8(ascii: "-"))
        appendHex(trace.traceHi); appendHex(trace.traceLo)
        bytes.append(UInt8(ascii: "-"))
        appendHex(trace.spanID)
        bytes.append(UInt8(ascii: "-")); bytes.append(UInt8(ascii: "0")); bytes.append(UInt8(ascii: "1"))
        bytes.append(0x22)
    }

    mutating func appendHex(_ v: UInt64) {
        let hex: StaticString = "0123456789abcdef"
        var shift: UInt64 = 60
        while true {
            bytes.append(hex.utf8Start[Int((v >> shift) & 0xF)])
            if shift == 0 { break }
            shift -= 4
        }
    }

    @inline(__always) private func digit(_ v: Int) -> UInt8 { UInt8(ascii: "0") + UInt8(truncatingIfNeeded: v) }

    private func civilFromDays(_ z0: Int) -> (Int, Int, Int) {
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

/// A W3C trace context: 128-bit trace id and the 64-bit id of the span that produced something.
public struct TraceContext: Codable, Hashable, Sendable {
    public var traceHi: UInt64
    public var traceLo: UInt64
    public var spanID: UInt64
    public init(traceHi: UInt64, traceLo: UInt64, spanID: UInt64) {
        self.traceHi = traceHi
        self.traceLo = traceLo
        self.spanID = spanID
    }

    public var traceIDHex: String { Hex.of(traceHi) + Hex.of(traceLo) }
    public var spanIDHex: String { Hex.of(spanID) }
    public var traceparent: String { "00-\(traceIDHex)-\(spanIDHex)-01" }
    public func child(_ spanID: UInt64) -> TraceContext { TraceContext(traceHi: traceHi, traceLo: traceLo, spanID: spanID) }
}

public enum Hex {
    /// 16 lowercase hex digits.
    public static func of(_ v: UInt64) -> String {
        let hex = Array("0123456789abcdef".utf8)
        var out = [UInt8](repeating: 0, count: 16)
        for i in 0..<16 { out[15 - i] = hex[Int((v >> (UInt64(i) * 4)) & 0xF)] }
        return String(decoding: out, as: UTF8.self)
    }
}
