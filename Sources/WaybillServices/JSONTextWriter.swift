import WaybillModel

/// Writes compact JSON straight into a reusable byte buffer, for the simulator's hot path.
/// Callers write object keys in sorted order, so the text is byte-identical to `JSONWriter`'s.
///
/// The buffer is a raw allocation owned by `storage`; a copy of the writer shares it, so a writer is
/// used by one owner only.
struct JSONTextWriter {
    final class Storage {
        var base: UnsafeMutablePointer<UInt8>
        var capacity: Int
        init(capacity: Int) {
            self.capacity = max(64, capacity)
            base = .allocate(capacity: self.capacity)
        }
        deinit { base.deallocate() }
    }

    private let storage: Storage
    private var base: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private(set) var count = 0
    private var first = true
    /// Day number and text (`YYYY-MM-DDT`) of the last time written.
    private var cachedDay = Int64.min
    private var cachedDayText: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
        (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)

    init(capacity: Int = 1024) {
        storage = Storage(capacity: capacity)
        base = storage.base
        self.capacity = storage.capacity
    }

    mutating func reset() {
        count = 0
        first = true
    }

    /// A copy of the text written since the last `reset`.
    var bytes: [UInt8] { Array(UnsafeBufferPointer(start: base, count: count)) }

    /// The text written since the last `reset`, valid during `body` only.
    func withBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: base, count: count))
    }

    @inline(__always) private mutating func reserve(_ n: Int) {
        if count + n > capacity { grow(count + n) }
    }

    private mutating func grow(_ needed: Int) {
        var c = capacity * 2
        while c < needed { c *= 2 }
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: c)
        p.update(from: base, count: count)
        storage.base.deallocate()
        storage.base = p
        storage.capacity = c
        base = p
        capacity = c
    }

    @inline(__always) private mutating func put(_ b: UInt8) {
        reserve(1)
        base[count] = b
        count += 1
    }

    @inline(__always) private mutating func put(_ p: UnsafePointer<UInt8>, _ n: Int) {
        reserve(n)
        (base + count).update(from: p, count: n)
        count += n
    }

    @inline(__always) private mutating func put(_ s: StaticString) {
        put(s.utf8Start, s.utf8CodeUnitCount)
    }

    @inline(__always) private mutating func separate() {
        if !first { put(UInt8(ascii: ",")) }
        first = false
    }

    mutating func openObject() { separate(); put(UInt8(ascii: "{")); first = true }
    mutating func closeObject() { put(UInt8(ascii: "}")); first = false }
    mutating func openArray() { separate(); put(UInt8(ascii: "[")); first = true }
    mutating func closeArray() { put(UInt8(ascii: "]")); first = false }

    /// Writes `"name":`; the value that follows must not separate again.
    mutating func key(_ name: StaticString) {
        separate()
        put(UInt8(ascii: "\""))
        put(name)
        put(UInt8(ascii: "\""))
        put(UInt8(ascii: ":"))
        first = true
    }

    mutating func rawValue(_ s: StaticString) {
        separate()
        put(s)
    }

    mutating func string(_ s: String) {
        separate()
        put(0x22)
        appendEscaped(s)
        put(0x22)
    }

    /// A string made of a prefix and a string, such as `shipment:` + tracking.
    mutating func string(_ prefix: StaticString, _ s: String) {
        separate()
        put(0x22)
        put(prefix)
        appendEscaped(s)
        put(0x22)
    }

    /// `"<base>-<seq>"`.
    mutating func string(_ base: String, dash seq: Int) {
        separate()
        put(0x22)
        appendEscaped(base)
        put(UInt8(ascii: "-"))
        appendInt(seq)
        put(0x22)
    }

    mutating func appendEscaped(_ s: String) {
        var s = s
        s.withUTF8 { u in
            var clean = true
            for c in u where c < 0x20 || c == 0x22 || c == 0x5C { clean = false; break }
            if clean { if let p = u.baseAddress { put(p, u.count) }; return }
            for c in u {
                switch c {
                case 0x22: put(0x5C); put(0x22)
                case 0x5C: put(0x5C); put(0x5C)
                case 0x0A: put(0x5C); put(UInt8(ascii: "n"))
                case 0x0D: put(0x5C); put(UInt8(ascii: "r"))
                case 0x09: put(0x5C); put(UInt8(ascii: "t"))
                case 0..<0x20:
                    let hex: StaticString = "0123456789abcdef"
                    put("\\u00")
                    put(hex.utf8Start[Int(c >> 4)])
                    put(hex.utf8Start[Int(c & 0xF)])
                default: put(c)
                }
            }
        }
    }

    mutating func int(_ v: Int) {
        separate()
        appendInt(v)
    }

    mutating func appendInt(_ v: Int) {
        if v < 0 { put(UInt8(ascii: "-")) }
        var m = v.magnitude
        if m < 10 { put(UInt8(ascii: "0") + UInt8(m)); return }
        var tmp: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                  UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &tmp) { t in
            while m > 0 { t[n] = UInt8(ascii: "0") + UInt8(m % 10); m /= 10; n += 1 }
            for i in stride(from: n - 1, through: 0, by: -1) { put(t[i]) }
        }
    }

    /// A number exactly as `JSONWriter.number` writes it.
    mutating func double(_ d: Double) {
        guard d.isFinite else { rawValue("null"); return }
        if d == d.rounded(), abs(d) < 1e15 {
            int(Int(d))
        } else {
            separate()
            var text = "\(d)"
            text.withUTF8 { if let p = $0.baseAddress { put(p, $0.count) } }
        }
    }

    mutating func bool(_ b: Bool) { rawValue(b ? "true" : "false") }

    /// An RFC 3339 UTC string exactly as `RFC3339.format` writes it.
    mutating func time(_ t: Micros) {
        separate()
        put(0x22)
        let secs = t >= 0 ? t / 1_000_000 : (t - 999_999) / 1_000_000
        let us = Int(t - secs * 1_000_000)
        let days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400
        let rem = Int(secs - days * 86400)
        if days != cachedDay {
            cachedDay = days
            let (y, m, d) = RFC3339.civilFromDays(Int(days))
            let yy = min(max(y, 0), 9999)
            cachedDayText = (digit(yy / 1000), digit(yy / 100 % 10), digit(yy / 10 % 10), digit(yy % 10), UInt8(ascii: "-"),
                             digit(m / 10), digit(m % 10), UInt8(ascii: "-"), digit(d / 10), digit(d % 10), UInt8(ascii: "T"))
        }
        withUnsafeBytes(of: cachedDayText) { put($0.baseAddress!.assumingMemoryBound(to: UInt8.self), 11) }
        let h = rem / 3600, mi = rem / 60 % 60, s = rem % 60
        put(digit(h / 10)); put(digit(h % 10)); put(UInt8(ascii: ":"))
        put(digit(mi / 10)); put(digit(mi % 10)); put(UInt8(ascii: ":"))
        put(digit(s / 10)); put(digit(s % 10))
        if us != 0 {
            put(UInt8(ascii: "."))
            if us % 1000 == 0 {
                let ms = us / 1000
                put(digit(ms / 100)); put(digit(ms / 10 % 10)); put(digit(ms % 10))
            } else {
                var div = 100_000
                while div > 0 { put(digit(us / div % 10)); div /= 10 }
            }
        }
        put(UInt8(ascii: "Z"))
        put(0x22)
    }

    /// `00-<trace>-<span>-01`.
    mutating func traceparent(_ trace: TraceContext) {
        separate()
        put(0x22)
        put(UInt8(ascii: "0")); put(UInt8(ascii: "0")); put(UInt8(ascii: "-"))
        appendHex(trace.traceHi); appendHex(trace.traceLo)
        put(UInt8(ascii: "-"))
        appendHex(trace.spanID)
        put(UInt8(ascii: "-")); put(UInt8(ascii: "0")); put(UInt8(ascii: "1"))
        put(0x22)
    }

    mutating func appendHex(_ v: UInt64) {
        let hex: StaticString = "0123456789abcdef"
        var shift: UInt64 = 60
        while true {
            put(hex.utf8Start[Int((v >> shift) & 0xF)])
            if shift == 0 { break }
            shift -= 4
        }
    }

    @inline(__always) private func digit(_ v: Int) -> UInt8 { UInt8(ascii: "0") + UInt8(truncatingIfNeeded: v) }
}
