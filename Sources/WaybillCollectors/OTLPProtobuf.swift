import WaybillModel

/// OTLP/HTTP traces in the protobuf encoding (`ExportTraceServiceRequest` of
/// opentelemetry-proto `collector/trace/v1`), decoded straight from the wire format for the fields
/// Waybill keeps. Unknown fields are skipped as protobuf requires; truncated or malformed input is
/// an error, never a crash.
public enum OTLPProtobuf {
    struct Reader {
        let b: [UInt8]
        var pos: Int
        let end: Int

        init(_ b: [UInt8], _ range: Range<Int>) {
            self.b = b
            pos = range.lowerBound
            end = range.upperBound
        }

        var atEnd: Bool { pos >= end }

        mutating func varint() throws(BodyError) -> UInt64 {
            var v: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard pos < end, shift < 64 else { throw .unreadable("protobuf: truncated or overlong varint at byte \(pos)") }
                let c = b[pos]
                pos += 1
                v |= UInt64(c & 0x7F) << shift
                if c & 0x80 == 0 { return v }
                shift += 7
            }
        }

        /// (field number, wire type)
        mutating func tag() throws(BodyError) -> (Int, Int) {
            let t = try varint()
            guard t >> 3 > 0, t >> 3 < 1 << 29 else { throw .unreadable("protobuf: invalid field number at byte \(pos)") }
            return (Int(t >> 3), Int(t & 7))
        }

        mutating func fixed64() throws(BodyError) -> UInt64 {
            guard pos + 8 <= end else { throw .unreadable("protobuf: truncated fixed64 at byte \(pos)") }
            var v: UInt64 = 0
            for i in 0..<8 { v |= UInt64(b[pos + i]) << (8 * UInt64(i)) }
            pos += 8
            return v
        }

        mutating func bytes() throws(BodyError) -> Range<Int> {
            let n = try varint()
            guard n <= UInt64(end - pos) else { throw .unreadable("protobuf: length \(n) runs past the end at byte \(pos)") }
            let r = pos..<(pos + Int(n))
            pos += Int(n)
            return r
        }

        mutating func skip(_ wire: Int) throws(BodyError) {
            switch wire {
            case 0: _ = try varint()
            case 1: guard pos + 8 <= end else { throw .unreadable("protobuf: truncated at byte \(pos)") }; pos += 8
            case 2: _ = try bytes()
            case 5: guard pos + 4 <= end else { throw .unreadable("protobuf: truncated at byte \(pos)") }; pos += 4
            default: throw .unreadable("protobuf: unsupported wire type \(wire) at byte \(pos)")
            }
        }

        func string(_ r: Range<Int>) -> String { String(decoding: b[r], as: UTF8.self) }
        func hex(_ r: Range<Int>) -> String {
            let digits = Array("0123456789abcdef".utf8)
            var out: [UInt8] = []
            out.reserveCapacity(r.count * 2)
            for c in b[r] { out.append(digits[Int(c >> 4)]); out.append(digits[Int(c & 15)]) }
            return String(decoding: out, as: UTF8.self)
        }
        func sub(_ r: Range<Int>) -> Reader { Reader(b, r) }
    }

    public static func decode(_ bytes: [UInt8]) throws(BodyError) -> DecodedSpans {
        var out = DecodedSpans()
        var r = Reader(bytes, 0..<bytes.count)
        var ri = 0
        while !r.atEnd {
            let (field, wire) = try r.tag()
            if field == 1 && wire == 2 {
                try resourceSpans(r.sub(try r.bytes()), index: ri, into: &out)
                ri += 1
            } else {
                try r.skip(wire)
            }
        }
        return out
    }

    static func resourceSpans(_ r0: Reader, index ri: Int, into out: inout DecodedSpans) throws(BodyError) {
        var r = r0
        var resource: [String: JSONValue] = [:]
        var scopes: [Range<Int>] = []
        while !r.atEnd {
            let (field, wire) = try r.tag()
            switch (field, wire) {
            case (1, 2):
                var res = r.sub(try r.bytes())
                while !res.atEnd {
                    let (f, w) = try res.tag()
                    if f == 1 && w == 2 { try keyValue(res.sub(try res.bytes()), into: &resource) } else { try res.skip(w) }
                }
            case (2, 2): scopes.append(try r.bytes())
            default: try r.skip(wire)
            }
        }
        let service = resource["service.name"]?.stringValue ?? "unknown_service"
        for (si, scope) in scopes.enumerated() {
            var s = r.sub(scope)
            var pi = 0
            while !s.atEnd {
                let (f, w) = try s.tag()
                guard f == 2 && w == 2 else { try s.skip(w); continue }
                let range = try s.bytes()
                do {
                    out.spans.append(try span(s.sub(range), service: service, resource: resource))
                } catch {
                    out.rejected.append(RejectedSpan(path: "resourceSpans[\(ri)].scopeSpans[\(si)].spans[\(pi)]", error: error.description))
                }
                pi += 1
            }
        }
    }

    static func span(_ r0: Reader, service: String, resource: [String: JSONValue]) throws(FieldError) -> Span {
        var r = r0
        var trace: String?, id: String?, parent: String?, name = ""
        var start: UInt64 = 0, end: UInt64 = 0
        var attributes: [String: JSONValue] = [:]
        var status = Span.Status.unset
        var message: String?
        var events: [JSONValue] = []
        var links: [JSONValue] = []
        do {
            while !r.atEnd {
                let (field, wire) = try r.tag()
                switch (field, wire) {
                case (1, 2): let b = try r.bytes(); if b.count == 16 { trace = r.hex(b) } else { throw FieldError(field: "trace_id", rule: "must be 16 bytes") }
                case (2, 2): let b = try r.bytes(); if b.count == 8 { id = r.hex(b) } else { throw FieldError(field: "span_id", rule: "must be 8 bytes") }
                case (4, 2):
                    let b = try r.bytes()
                    if b.count == 8 { parent = r.hex(b) } else if !b.isEmpty { throw FieldError(field: "parent_span_id", rule: "must be 8 bytes or empty") }
                case (5, 2): name = r.string(try r.bytes())
                case (7, 1): start = try r.fixed64()
                case (8, 1): end = try r.fixed64()
                case (9, 2): try keyValue(r.sub(try r.bytes()), into: &attributes)
                case (11, 2):
                    // Event { fixed64 time_unix_nano = 1; string name = 2; repeated KeyValue attributes = 3; }
                    var e = r.sub(try r.bytes())
                    var o: [String: JSONValue] = [:]
                    var attrs: [String: JSONValue] = [:]
                    while !e.atEnd {
                        let (f, w) = try e.tag()
                        switch (f, w) {
                        case (1, 1): o["time"] = .string(RFC3339.format(Micros(try e.fixed64() / 1000)))
                        case (2, 2): o["name"] = .string(e.string(try e.bytes()))
                        case (3, 2): try keyValue(e.sub(try e.bytes()), into: &attrs)
                        default: try e.skip(w)
                        }
                    }
                    o["attributes"] = .object(attrs)
                    events.append(.object(o))
                case (13, 2):
                    // Link { bytes trace_id = 1; bytes span_id = 2; string trace_state = 3; repeated KeyValue attributes = 4; }
                    var l = r.sub(try r.bytes())
                    var o: [String: JSONValue] = [:]
                    var attrs: [String: JSONValue] = [:]
                    while !l.atEnd {
                        let (f, w) = try l.tag()
                        switch (f, w) {
                        case (1, 2): o["trace_id"] = .string(l.hex(try l.bytes()))
                        case (2, 2): o["span_id"] = .string(l.hex(try l.bytes()))
                        case (4, 2): try keyValue(l.sub(try l.bytes()), into: &attrs)
                        default: try l.skip(w)
                        }
                    }
                    o["attributes"] = .object(attrs)
                    links.append(.object(o))
                case (15, 2):
                    var st = r.sub(try r.bytes())
                    while !st.atEnd {
                        let (f, w) = try st.tag()
                        switch (f, w) {
                        case (2, 2): message = st.string(try st.bytes())
                        case (3, 0): status = [0: .unset, 1: .ok, 2: .error][try st.varint()] ?? .unset
                        default: try st.skip(w)
                        }
                    }
                default: try r.skip(wire)
                }
            }
        } catch let e as BodyError {
            throw FieldError(field: "span", rule: e.description)
        } catch let e as FieldError {
            throw e
        } catch {
            throw FieldError(field: "span", rule: "\(error)")
        }
        guard let t = trace, t.contains(where: { $0 != "0" }) else { throw FieldError(field: "trace_id", rule: "required, not all zero") }
        guard let s = id, s.contains(where: { $0 != "0" }) else { throw FieldError(field: "span_id", rule: "required, not all zero") }
        guard end >= start, start < UInt64(Int64.max) else { throw FieldError(field: "end_time_unix_nano", rule: "must not be before start_time_unix_nano") }
        return Span(traceID: t, spanID: s, parentSpanID: parent, service: service, name: name, start: Micros(start / 1000), end: Micros(end / 1000),
                    status: status, statusMessage: message, attributes: attributes, resourceAttributes: resource,
                    events: events, links: links)
    }

    static func keyValue(_ r0: Reader, into out: inout [String: JSONValue], depth: Int = 0) throws(BodyError) {
        var r = r0
        var key: String?
        var value: JSONValue = .null
        while !r.atEnd {
            let (f, w) = try r.tag()
            switch (f, w) {
            case (1, 2): key = r.string(try r.bytes())
            case (2, 2): value = try anyValue(r.sub(try r.bytes()), depth: depth)
            default: try r.skip(w)
            }
        }
        if let key { out[key] = value }
    }

    static func anyValue(_ r0: Reader, depth: Int) throws(BodyError) -> JSONValue {
        guard depth < 16 else { throw .unreadable("protobuf: attribute values nested deeper than 16") }
        var r = r0
        var v: JSONValue = .null
        while !r.atEnd {
            let (f, w) = try r.tag()
            switch (f, w) {
            case (1, 2): v = .string(r.string(try r.bytes()))
            case (2, 0): v = .bool(try r.varint() != 0)
            case (3, 0): v = .number(Double(Int64(bitPattern: try r.varint())))
            case (4, 1): v = .number(Double(bitPattern: try r.fixed64()))
            case (5, 2):
                var a = r.sub(try r.bytes())
                var items: [JSONValue] = []
                while !a.atEnd {
                    let (af, aw) = try a.tag()
                    if af == 1 && aw == 2 { items.append(try anyValue(a.sub(try a.bytes()), depth: depth + 1)) } else { try a.skip(aw) }
                }
                v = .array(items)
            case (6, 2):
                var kv = r.sub(try r.bytes())
                var obj: [String: JSONValue] = [:]
                while !kv.atEnd {
                    let (kf, kw) = try kv.tag()
                    if kf == 1 && kw == 2 { try keyValue(kv.sub(try kv.bytes()), into: &obj, depth: depth + 1) } else { try kv.skip(kw) }
                }
                v = .object(obj)
            case (7, 2): v = .string(r.hex(try r.bytes()))
            default: try r.skip(w)
            }
        }
        if case .number(let d) = v, !d.isFinite { return .null }
        return v
    }

    /// `ExportTraceServiceResponse` in protobuf: empty, or `partial_success` with the rejected count and a message.
    public static func response(rejected: Int, message: String) -> [UInt8] {
        guard rejected > 0 else { return [] }
        func varint(_ x: UInt64) -> [UInt8] {
            var x = x, out: [UInt8] = []
            while x >= 0x80 { out.append(UInt8(x & 0x7F) | 0x80); x >>= 7 }
            out.append(UInt8(x))
            return out
        }
        let msg = Array(message.utf8)
        let inner = [0x08] + varint(UInt64(rejected)) + [0x12] + varint(UInt64(msg.count)) + msg
        return [0x0A] + varint(UInt64(inner.count)) + inner
    }
}
