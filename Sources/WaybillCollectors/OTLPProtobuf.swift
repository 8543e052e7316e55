import Foundation
import SwiftProtobuf
import WaybillModel
import WaybillOTLPProto

/// OTLP/HTTP traces in the protobuf encoding: `ExportTraceServiceRequest` of opentelemetry-proto
/// `collector/trace/v1`, read with the swift-protobuf types generated from the official definitions
/// (target WaybillOTLPProto, scripts/generate-otlp-proto.sh), then mapped to Waybill's `Span`.
/// Truncated or malformed input is a `BodyError` (400), never a crash; a span that breaks a rule is
/// rejected on its own, named by its path, and the others are kept.
public enum OTLPProtobuf {
    public typealias Request = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
    public typealias Response = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse
    typealias KeyValue = Opentelemetry_Proto_Common_V1_KeyValue
    typealias AnyValue = Opentelemetry_Proto_Common_V1_AnyValue

    /// Attribute values nested deeper than this (arrays and key-value lists) are refused.
    static let maxAttributeDepth = 16

    public static func decode(_ bytes: [UInt8]) throws(BodyError) -> DecodedSpans {
        let request: Request
        do {
            var options = BinaryDecodingOptions()
            options.discardUnknownFields = true
            request = try Request(serializedBytes: bytes, options: options)
        } catch {
            throw .unreadable("protobuf: \(reason(error))")
        }
        var out = DecodedSpans()
        for (ri, rs) in request.resourceSpans.enumerated() {
            var resource: [String: JSONValue] = [:]
            try attributes(rs.resource.attributes, into: &resource)
            let service = resource["service.name"]?.stringValue ?? "unknown_service"
            for (si, scope) in rs.scopeSpans.enumerated() {
                for (pi, s) in scope.spans.enumerated() {
                    do {
                        out.spans.append(try span(s, service: service, resource: resource))
                    } catch {
                        out.rejected.append(RejectedSpan(path: "resourceSpans[\(ri)].scopeSpans[\(si)].spans[\(pi)]", error: error.description))
                    }
                }
            }
        }
        return out
    }

    static func reason(_ error: any Error) -> String {
        switch error as? BinaryDecodingError {
        case .truncated?: "truncated message"
        case .malformedProtobuf?: "malformed message (bad tag, wire type or length)"
        case .invalidUTF8?: "a string field is not valid UTF-8"
        case .messageDepthLimit?: "messages nested too deeply"
        case .trailingGarbage?: "trailing bytes after the message"
        default: "\(error)"
        }
    }

    static func span(_ s: Opentelemetry_Proto_Trace_V1_Span, service: String, resource: [String: JSONValue]) throws(FieldError) -> Span {
        // Checked in the order the fields are on the wire; an absent id is the same as an empty one.
        if !s.traceID.isEmpty && s.traceID.count != 16 { throw FieldError(field: "trace_id", rule: "must be 16 bytes") }
        if !s.spanID.isEmpty && s.spanID.count != 8 { throw FieldError(field: "span_id", rule: "must be 8 bytes") }
        var parent: String?
        if s.parentSpanID.count == 8 { parent = hex(s.parentSpanID) } else if !s.parentSpanID.isEmpty {
            throw FieldError(field: "parent_span_id", rule: "must be 8 bytes or empty")
        }
        var attrs: [String: JSONValue] = [:]
        var events: [JSONValue] = []
        var links: [JSONValue] = []
        do {
            try attributes(s.attributes, into: &attrs)
            events.reserveCapacity(s.events.count)
            for e in s.events {
                var o: [String: JSONValue] = [:]
                if e.timeUnixNano != 0 { o["time"] = .string(RFC3339.format(Micros(e.timeUnixNano / 1000))) }
                if !e.name.isEmpty { o["name"] = .string(e.name) }
                var ea: [String: JSONValue] = [:]
                try attributes(e.attributes, into: &ea)
                o["attributes"] = .object(ea)
                events.append(.object(o))
            }
            links.reserveCapacity(s.links.count)
            for l in s.links {
                var o: [String: JSONValue] = [:]
                if !l.traceID.isEmpty { o["trace_id"] = .string(hex(l.traceID)) }
                if !l.spanID.isEmpty { o["span_id"] = .string(hex(l.spanID)) }
                var la: [String: JSONValue] = [:]
                try attributes(l.attributes, into: &la)
                o["attributes"] = .object(la)
                links.append(.object(o))
            }
        } catch {
            throw FieldError(field: "span", rule: error.description)
        }
        guard s.traceID.contains(where: { $0 != 0 }) else { throw FieldError(field: "trace_id", rule: "required, not all zero") }
        guard s.spanID.contains(where: { $0 != 0 }) else { throw FieldError(field: "span_id", rule: "required, not all zero") }
        let start = s.startTimeUnixNano, end = s.endTimeUnixNano
        guard end >= start, start < UInt64(Int64.max) else { throw FieldError(field: "end_time_unix_nano", rule: "must not be before start_time_unix_nano") }
        let status: Span.Status
        switch s.status.code {
        case .ok: status = .ok
        case .error: status = .error
        default: status = .unset
        }
        let message = s.status.message
        return Span(traceID: hex(s.traceID), spanID: hex(s.spanID), parentSpanID: parent, service: service, name: s.name,
                    start: Micros(start / 1000), end: Micros(end / 1000), status: status, statusMessage: message.isEmpty ? nil : message,
                    attributes: attrs, resourceAttributes: resource, events: events, links: links)
    }

    /// OTLP `KeyValue` list into a plain JSON object; a later repeat of a key wins.
    static func attributes(_ list: [KeyValue], into out: inout [String: JSONValue], depth: Int = 0) throws(BodyError) {
        for kv in list where !kv.key.isEmpty {
            out[kv.key] = kv.hasValue ? try anyValue(kv.value, depth: depth) : .null
        }
    }

    static func anyValue(_ v: AnyValue, depth: Int) throws(BodyError) -> JSONValue {
        guard depth < maxAttributeDepth else { throw .unreadable("protobuf: attribute values nested deeper than \(maxAttributeDepth)") }
        switch v.value {
        case .stringValue(let s)?: return .string(s)
        case .boolValue(let b)?: return .bool(b)
        case .intValue(let i)?: return .number(Double(i))
        case .doubleValue(let d)?: return d.isFinite ? .number(d) : .null
        case .arrayValue(let a)?:
            var items: [JSONValue] = []
            items.reserveCapacity(a.values.count)
            for item in a.values { items.append(try anyValue(item, depth: depth + 1)) }
            return .array(items)
        case .kvlistValue(let kv)?:
            var obj: [String: JSONValue] = [:]
            try attributes(kv.values, into: &obj, depth: depth + 1)
            return .object(obj)
        case .bytesValue(let b)?: return .string(hex(b))
        case .stringValueStrindex(_)?, nil: return .null
        }
    }

    static func hex(_ d: Data) -> String {
        d.withUnsafeBytes { raw in
            String(unsafeUninitializedCapacity: raw.count * 2) { out in
                var i = 0
                for c in raw {
                    out[i] = hexDigit(c >> 4)
                    out[i + 1] = hexDigit(c & 15)
                    i += 2
                }
                return i
            }
        }
    }

    @inline(__always) static func hexDigit(_ n: UInt8) -> UInt8 { n < 10 ? 0x30 + n : 0x57 + n }

    /// `ExportTraceServiceResponse` in protobuf: empty, or `partial_success` with the rejected count and a message.
    public static func response(rejected: Int, message: String) -> [UInt8] {
        guard rejected > 0 else { return [] }
        var r = Response()
        r.partialSuccess.rejectedSpans = Int64(rejected)
        r.partialSuccess.errorMessage = message
        // A proto3 message without required fields, far below 2 GiB: serializing cannot fail.
        return try! r.serializedBytes()
    }
}
