import WaybillModel

/// A span that could not be taken, with where it was in the request.
public struct RejectedSpan: Sendable, Equatable {
    public var path: String
    public var error: String
}

public struct DecodedSpans: Sendable {
    public var spans: [Span] = []
    public var rejected: [RejectedSpan] = []
}

/// OTLP/HTTP traces in the JSON encoding (the OTLP JSON mapping of `ExportTraceServiceRequest`):
/// lowerCamelCase fields, trace and span ids as hex, 64-bit integers as strings or numbers, enums as
/// integers. Bad spans are rejected one by one (reported in `partialSuccess`); the rest are kept.
public enum OTLPJSON {
    public static func decode(_ bytes: [UInt8]) throws(BodyError) -> DecodedSpans {
        let root: JSONValue
        do { root = try JSONParser.parse(bytes) } catch { throw .unreadable(error.description) }
        guard case .object = root else { throw .unreadable("expected an ExportTraceServiceRequest object") }
        var out = DecodedSpans()
        for (ri, rs) in (root["resourceSpans"]?.arrayValue ?? []).enumerated() {
            let resource = attributes(rs["resource"]?["attributes"])
            let service = resource["service.name"]?.stringValue ?? "unknown_service"
            for (si, ss) in (rs["scopeSpans"]?.arrayValue ?? []).enumerated() {
                for (pi, s) in (ss["spans"]?.arrayValue ?? []).enumerated() {
                    let path = "resourceSpans[\(ri)].scopeSpans[\(si)].spans[\(pi)]"
                    do {
                        out.spans.append(try span(s, service: service, resource: resource))
                    } catch {
                        out.rejected.append(RejectedSpan(path: path, error: error.description))
                    }
                }
            }
        }
        return out
    }

    static func span(_ s: JSONValue, service: String, resource: [String: JSONValue]) throws(FieldError) -> Span {
        guard let trace = hexID(s["traceId"], length: 32) else { throw FieldError(field: "traceId", rule: "must be 32 hex digits, not all zero") }
        guard let id = hexID(s["spanId"], length: 16) else { throw FieldError(field: "spanId", rule: "must be 16 hex digits, not all zero") }
        var parent: String?
        if let p = s["parentSpanId"], p.stringValue != "" {
            guard let h = hexID(p, length: 16) else { throw FieldError(field: "parentSpanId", rule: "must be 16 hex digits or empty") }
            parent = h
        }
        guard let start = nanos(s["startTimeUnixNano"]) else { throw FieldError(field: "startTimeUnixNano", rule: "must be a 64-bit integer (string or number)") }
        guard let end = nanos(s["endTimeUnixNano"]) else { throw FieldError(field: "endTimeUnixNano", rule: "must be a 64-bit integer (string or number)") }
        guard end >= start else { throw FieldError(field: "endTimeUnixNano", rule: "must not be before startTimeUnixNano") }
        let code = s["status"]?["code"]
        let status: Span.Status
        switch code?.doubleValue ?? (code?.stringValue == "STATUS_CODE_ERROR" ? 2 : code?.stringValue == "STATUS_CODE_OK" ? 1 : 0) {
        case 1: status = .ok
        case 2: status = .error
        default: status = .unset
        }
        let events: [JSONValue] = (s["events"]?.arrayValue ?? []).map { e in
            .object(["time": nanos(e["timeUnixNano"]).map { .string(RFC3339.format($0 / 1000)) } ?? .null,
                     "name": e["name"] ?? .null, "attributes": .object(attributes(e["attributes"]))])
        }
        let links: [JSONValue] = (s["links"]?.arrayValue ?? []).map { l in
            .object(["trace_id": .string(l["traceId"]?.stringValue?.lowercased() ?? ""), "span_id": .string(l["spanId"]?.stringValue?.lowercased() ?? ""),
                     "attributes": .object(attributes(l["attributes"]))])
        }
        return Span(traceID: trace, spanID: id, parentSpanID: parent, service: service, name: s["name"]?.stringValue ?? "",
                    start: start / 1000, end: end / 1000, status: status, statusMessage: s["status"]?["message"]?.stringValue,
                    attributes: attributes(s["attributes"]), resourceAttributes: resource, events: events, links: links)
    }

    static func hexID(_ v: JSONValue?, length: Int) -> String? {
        guard let s = v?.stringValue, s.utf8.count == length, s.allSatisfy(\.isHexDigit), s.contains(where: { $0 != "0" }) else { return nil }
        return s.lowercased()
    }

    static func nanos(_ v: JSONValue?) -> Int64? {
        if let s = v?.stringValue { return Int64(s) }
        if let d = v?.doubleValue, d >= 0, d < 9.2e18 { return Int64(d) }
        return nil
    }

    /// OTLP `KeyValue` list to a plain JSON object.
    static func attributes(_ v: JSONValue?) -> [String: JSONValue] {
        var out: [String: JSONValue] = [:]
        for kv in v?.arrayValue ?? [] {
            guard let k = kv["key"]?.stringValue else { continue }
            out[k] = anyValue(kv["value"])
        }
        return out
    }

    static func anyValue(_ v: JSONValue?) -> JSONValue {
        guard let v else { return .null }
        if let s = v["stringValue"] { return s }
        if let b = v["boolValue"] { return b }
        if let i = v["intValue"] { return i.stringValue.flatMap(Double.init).map(JSONValue.number) ?? i }
        if let d = v["doubleValue"] { return d }
        if let a = v["arrayValue"]?["values"]?.arrayValue { return .array(a.map { anyValue($0) }) }
        if let kv = v["kvlistValue"]?["values"] { return .object(attributes(kv)) }
        if let b = v["bytesValue"] { return b }
        return .null
    }
}
