import WaybillModel

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
