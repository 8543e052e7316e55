/// Why stored bytes (KPI rollups, span blocks) could not be read back.
public struct ByteDecodingError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { "invalid stored bytes: \(message)" }
}

/// LEB128 varints with zig-zag signs: small counts take one byte, which keeps stored rows compact.
@frozen public struct ByteSink {
    public var bytes: [UInt8] = []

    @inlinable public init() {}

    @inlinable public mutating func unsigned(_ v: UInt64) {
        var v = v
        while v >= 0x80 {
            bytes.append(UInt8(truncatingIfNeeded: v) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }

    @inlinable public mutating func signed(_ v: Int64) {
        unsigned(UInt64(bitPattern: (v << 1) ^ (v >> 63)))
    }

    @inlinable public mutating func byte(_ b: UInt8) { bytes.append(b) }

    @inlinable public mutating func block(_ b: [UInt8]) {
        unsigned(UInt64(b.count))
        bytes.append(contentsOf: b)
    }

    @inlinable public mutating func block(_ b: ArraySlice<UInt8>) {
        unsigned(UInt64(b.count))
        bytes.append(contentsOf: b)
    }
}

@frozen public struct ByteSource {
    public let bytes: [UInt8]
    public var pos = 0

    @inlinable public init(_ bytes: [UInt8]) { self.bytes = bytes }

    @inlinable public var atEnd: Bool { pos == bytes.count }

    @inlinable public mutating func byte() throws(ByteDecodingError) -> UInt8 {
        guard pos < bytes.count else { throw ByteDecodingError("truncated at byte \(pos)") }
        defer { pos += 1 }
        return bytes[pos]
    }

    @inlinable public mutating func unsigned() throws(ByteDecodingError) -> UInt64 {
        var result: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            let b = try byte()
            guard shift < 64 else { throw ByteDecodingError("varint longer than 64 bits at byte \(pos)") }
            result |= UInt64(b & 0x7F) << shift
            if b & 0x80 == 0 { return result }
            shift += 7
        }
    }

    @inlinable public mutating func signed() throws(ByteDecodingError) -> Int64 {
        let u = try unsigned()
        return Int64(bitPattern: (u >> 1) ^ (0 &- (u & 1)))
    }

    @inlinable public mutating func count() throws(ByteDecodingError) -> Int {
        let u = try unsigned()
        guard u <= UInt64(Int.max) else { throw ByteDecodingError("count out of range at byte \(pos)") }
        return Int(u)
    }

    /// `n` raw bytes.
    @inlinable public mutating func raw(_ n: Int) throws(ByteDecodingError) -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - pos else { throw ByteDecodingError("\(n) bytes overrun the input at byte \(pos)") }
        defer { pos += n }
        return bytes[pos..<(pos + n)]
    }

    @inlinable public mutating func block() throws(ByteDecodingError) -> [UInt8] {
        Array(try raw(try count()))
    }
}
