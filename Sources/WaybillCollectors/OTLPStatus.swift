/// The error body of OTLP/HTTP: `google.rpc.Status` (`code`, `message`; no `details`). OTLP requires
/// every 4xx and 5xx response to a protobuf request to carry it protobuf-encoded, and to a JSON request
/// JSON-encoded, so an exporter can log why its spans were refused. `code` is the gRPC status code
/// that corresponds to the HTTP status (OTLP/gRPC and OTLP/HTTP share these meanings).
public struct OTLPStatus: Equatable, Sendable {
    public var code: Int32
    public var message: String

    public init(code: Int32, message: String) {
        self.code = code
        self.message = message
    }

    /// gRPC's code for an HTTP error status: 400 INVALID_ARGUMENT (3), 401 UNAUTHENTICATED (16),
    /// 403 PERMISSION_DENIED (7), 404 NOT_FOUND (5), 413/429 RESOURCE_EXHAUSTED (8),
    /// 415 INVALID_ARGUMENT (3), 503 UNAVAILABLE (14), other 5xx INTERNAL (13), else UNKNOWN (2).
    public init(httpStatus: Int, message: String) {
        let code: Int32
        switch httpStatus {
        case 400, 415, 422: code = 3
        case 401: code = 16
        case 403: code = 7
        case 404: code = 5
        case 405: code = 12
        case 413, 429: code = 8
        case 503: code = 14
        case 500...599: code = 13
        default: code = 2
        }
        self.init(code: code, message: message)
    }

    /// Protobuf wire format: field 1 `int32 code` (varint), field 2 `string message`.
    public var protobufBytes: [UInt8] {
        var out: [UInt8] = []
        if code != 0 {
            out.append(0x08)
            Self.varint(UInt64(bitPattern: Int64(code)), into: &out)
        }
        if !message.isEmpty {
            let utf8 = Array(message.utf8)
            out.append(0x12)
            Self.varint(UInt64(utf8.count), into: &out)
            out += utf8
        }
        return out
    }

    /// Reads a `google.rpc.Status` (unknown fields, such as `details`, are skipped); nil when the
    /// bytes are not one.
    public init?(protobuf bytes: [UInt8]) {
        var code: Int32 = 0
        var message = ""
        var i = 0
        func readVarint() -> UInt64? {
            var v: UInt64 = 0
            var shift: UInt64 = 0
            while i < bytes.count, shift < 64 {
                let b = bytes[i]
                i += 1
                v |= UInt64(b & 0x7f) << shift
                if b & 0x80 == 0 { return v }
                shift += 7
            }
            return nil
        }
        while i < bytes.count {
            guard let key = readVarint() else { return nil }
            switch (key >> 3, key & 7) {
            case (1, 0):
                guard let v = readVarint() else { return nil }
                code = Int32(truncatingIfNeeded: v)
            case (_, 0):
                guard readVarint() != nil else { return nil }
            case (let field, 2):
                guard let n = readVarint(), n <= UInt64(bytes.count - i) else { return nil }
                if field == 2 {
                    guard let s = String(validating: bytes[i..<i + Int(n)], as: UTF8.self) else { return nil }
                    message = s
                }
                i += Int(n)
            case (_, 1): guard i + 8 <= bytes.count else { return nil }; i += 8
            case (_, 5): guard i + 4 <= bytes.count else { return nil }; i += 4
            default: return nil
            }
        }
        self.init(code: code, message: message)
    }

    static func varint(_ value: UInt64, into out: inout [UInt8]) {
        var v = value
        while v >= 0x80 {
            out.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
    }
}
