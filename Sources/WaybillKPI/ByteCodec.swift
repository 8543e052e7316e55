/// Why stored KPI bytes could not be read back.
public struct KPIDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "invalid KPI rollup bytes: \(message)" }
}

/// LEB128 varints with zig-zag signs: small counts take one byte, which keeps rollup rows compact.
struct ByteSink {
    var bytes: [UInt8] = []

    mutating func unsigned(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    mutating func signed(_ v: Int64) {
        unsigned(UInt64(bitPattern: (v << 1) ^ (v >> 63)))
    }

    mutating func byte(_ b: UInt8) { bytes.append(b) }

    mutating func block(_ b: [UInt8]) {
        unsigned(UInt64(b.count))
        bytes.append(contentsOf: b)
    }
}

struct ByteSource {
    let bytes: [UInt8]
    var pos = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    var atEnd: Bool { pos == bytes.count }

    mutating func byte() throws(KPIDecodingError) -> UInt8 {
        guard pos < bytes.count else { throw KPIDecodingError("truncated at byte \(pos)") }
        defer { pos += 1 }
        return bytes[pos]
    }

    mutating func unsigned() throws(KPIDecodingError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            guard shift < 64 else { throw KPIDecodingError("varint longer than 64 bits at byte \(pos)") }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    mutating func signed() throws(KPIDecodingError) -> Int64 {
        let u = try unsigned()
        return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    mutating func count() throws(KPIDecodingError) -> Int {
        let u = try unsigned()
        guard u <= UInt64(Int.max) else { throw KPIDecodingError("count out of range at byte \(pos)") }
        return Int(u)
    }

    mutating func block() throws(KPIDecodingError) -> [UInt8] {
        let n = try count()
        guard n <= bytes.count - pos else { throw KPIDecodingError("block of \(n) bytes overruns the input at byte \(pos)") }
        defer { pos += n }
        return Array(bytes[pos..<(pos + n)])
    }
}
