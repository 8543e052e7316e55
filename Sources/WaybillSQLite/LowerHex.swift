/// Bytes written as lower-case hex, two digits a byte, as W3C Trace Context writes trace and span ids
/// and traceparents: how span blocks store ids and event blocks (format 4) store traceparents in binary.
/// Any other text (upper case, an odd length) does not decode, so the caller keeps it as text.
enum LowerHex {
    static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    /// Appends the bytes `text` writes to `out`; false (with `out` partly appended) when `text` is not
    /// lower-case hex of an even length.
    static func decode<C: Collection<UInt8>>(_ text: C, into out: inout [UInt8]) -> Bool {
        guard text.count & 1 == 0 else { return false }
        var hi: UInt8 = 0
        var odd = false
        for c in text {
            let v: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
            default: return false
            }
            if odd { out.append(hi << 4 | v) } else { hi = v }
            odd.toggle()
        }
        return true
    }

    /// Appends the lower-case hex of `bytes` to `out`.
    static func encode<C: Collection<UInt8>>(_ bytes: C, into out: inout [UInt8]) {
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
    }
}
