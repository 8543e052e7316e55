import Foundation
import SwiftProtobuf
import Testing
import WaybillModel
import WaybillOTLPProto
@testable import WaybillCollectors

typealias PBRequest = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceRequest
typealias PBResponse = Opentelemetry_Proto_Collector_Trace_V1_ExportTraceServiceResponse
typealias PBResourceSpans = Opentelemetry_Proto_Trace_V1_ResourceSpans
typealias PBSpan = Opentelemetry_Proto_Trace_V1_Span
typealias PBAnyValue = Opentelemetry_Proto_Common_V1_AnyValue
typealias PBKeyValue = Opentelemetry_Proto_Common_V1_KeyValue

/// Random `ExportTraceServiceRequest`s built with the generated swift-protobuf types, each with the
/// spans and rejections Waybill must make of it, worked out here from what was put in (not by the
/// decoder's own mapping).
struct RandomOTLP {
    var rng: SplitMix64

    mutating func int(_ r: ClosedRange<Int>) -> Int { Int.random(in: r, using: &rng) }
    mutating func chance(_ p: Double) -> Bool { Double.random(in: 0..<1, using: &rng) < p }
    mutating func bytes(_ n: Int) -> [UInt8] { (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) } }
    mutating func nonZeroBytes(_ n: Int) -> [UInt8] {
        var b = bytes(n)
        b[int(0...(n - 1))] |= 1
        return b
    }

    mutating func string(maxLength: Int = 12) -> String {
        let alphabet: [String] = ["a", "b", "z", "0", "9", ".", "_", " ", "-", "é", "漢", "🚚", "\"", "\\", "\n"]
        return (0..<int(0...maxLength)).map { _ in alphabet[int(0...(alphabet.count - 1))] }.joined()
    }

    /// A non-empty key (an empty key is not on the wire at all in proto3).
    mutating func key() -> String { "k" + string(maxLength: 6) }

    static func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    /// Every `AnyValue` kind, nested arrays and key-value lists included, and the JSON value Waybill keeps.
    mutating func anyValue(depth: Int) -> (PBAnyValue, JSONValue) {
        var v = PBAnyValue()
        switch int(0...(depth < 3 ? 8 : 6)) {
        case 0: return (v, .null)  // no value set
        case 1: let s = string(); v.stringValue = s; return (v, .string(s))
        case 2: let b = chance(0.5); v.boolValue = b; return (v, .bool(b))
        case 3:
            let i = chance(0.2) ? [Int64.min, Int64.max, 0, -1][int(0...3)] : Int64.random(in: -1_000_000...1_000_000, using: &rng)
            v.intValue = i
            return (v, .number(Double(i)))
        case 4:
            if chance(0.1) {
                v.doubleValue = [Double.nan, .infinity, -.infinity][int(0...2)]
                return (v, .null)  // JSON has no NaN or infinity
            }
            let d = chance(0.2) ? [0.0, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude][int(0...3)] : Double.random(in: -1e9...1e9, using: &rng)
            v.doubleValue = d
            return (v, .number(d))
        case 5, 6:
            let b = bytes(int(0...9))
            v.bytesValue = Data(b)
            return (v, .string(Self.hex(b)))
        case 7:
            var items: [JSONValue] = []
            for _ in 0..<int(0...4) {
                let (p, j) = anyValue(depth: depth + 1)
                v.arrayValue.values.append(p)
                items.append(j)
            }
            if items.isEmpty { v.arrayValue = .init() }  // set, but empty
            return (v, .array(items))
        default:
            let (list, obj) = keyValues(depth: depth + 1)
            v.kvlistValue.values = list
            return (v, .object(obj))
        }
    }

    /// A `KeyValue` list, sometimes with a repeated key (the last one wins) or a key without a value.
    mutating func keyValues(depth: Int, max: Int = 4) -> ([PBKeyValue], [String: JSONValue]) {
        var list: [PBKeyValue] = []
        var obj: [String: JSONValue] = [:]
        for _ in 0..<int(0...max) {
            var kv = PBKeyValue()
            kv.key = !list.isEmpty && chance(0.1) ? list[int(0...(list.count - 1))].key : key()
            if chance(0.1) {
                obj[kv.key] = .null  // KeyValue without a value
            } else {
                let (p, j) = anyValue(depth: depth)
                kv.value = p
                obj[kv.key] = j
            }
            list.append(kv)
        }
        return (list, obj)
    }

    enum Defect: CaseIterable { case zeroTrace, shortTrace, noSpanID, longSpanID, badParent, endBeforeStart, tooDeep }

    /// A span, valid or with one defect, and what Waybill makes of it: the span, or the rejection's error.
    mutating func span(service: String, resource: [String: JSONValue]) -> (PBSpan, Result<Span, FieldError>) {
        var s = PBSpan()
        let trace = nonZeroBytes(16), id = nonZeroBytes(8)
        s.traceID = Data(trace)
        s.spanID = Data(id)
        var parent: String?
        if chance(0.6) {
            let p = bytes(8)
            s.parentSpanID = Data(p)
            parent = Self.hex(p)
        }
        if chance(0.3) { s.traceState = "rojo=00f067aa0ba902b7" }
        if chance(0.5) { s.flags = UInt32.random(in: 0...UInt32.max, using: &rng) }
        s.name = string()
        s.kind = PBSpan.SpanKind(rawValue: int(0...6)) ?? .unspecified
        let start = UInt64.random(in: 0...(1 << 62), using: &rng)
        s.startTimeUnixNano = start
        s.endTimeUnixNano = start + UInt64.random(in: 0...5_000_000_000, using: &rng)
        let (attrs, attributes) = keyValues(depth: 0)
        s.attributes = attrs
        s.droppedAttributesCount = UInt32(int(0...3))
        var events: [JSONValue] = []
        for _ in 0..<int(0...3) {
            var e = PBSpan.Event()
            var o: [String: JSONValue] = [:]
            if chance(0.8) {
                e.timeUnixNano = UInt64.random(in: 1...(1 << 62), using: &rng)
                o["time"] = .string(RFC3339.format(Micros(e.timeUnixNano / 1000)))
            }
            e.name = string()
            if !e.name.isEmpty { o["name"] = .string(e.name) }
            let (ea, eo) = keyValues(depth: 0, max: 2)
            e.attributes = ea
            o["attributes"] = .object(eo)
            e.droppedAttributesCount = UInt32(int(0...2))
            s.events.append(e)
            events.append(.object(o))
        }
        s.droppedEventsCount = UInt32(int(0...2))
        var links: [JSONValue] = []
        for _ in 0..<int(0...2) {
            var l = PBSpan.Link()
            let lt = bytes(16), ls = bytes(8)
            l.traceID = Data(lt)
            l.spanID = Data(ls)
            if chance(0.3) { l.traceState = "congo=t61rcWkgMzE" }
            if chance(0.5) { l.flags = UInt32.random(in: 0...UInt32.max, using: &rng) }
            let (la, lo) = keyValues(depth: 0, max: 2)
            l.attributes = la
            l.droppedAttributesCount = UInt32(int(0...2))
            s.links.append(l)
            links.append(.object(["trace_id": .string(Self.hex(lt)), "span_id": .string(Self.hex(ls)), "attributes": .object(lo)]))
        }
        s.droppedLinksCount = UInt32(int(0...2))
        var status = Span.Status.unset
        var message: String?
        if chance(0.7) {
            let code = int(0...3)
            s.status.code = code == 3 ? .UNRECOGNIZED(9) : Opentelemetry_Proto_Trace_V1_Status.StatusCode(rawValue: code)!
            status = [0: .unset, 1: .ok, 2: .error][code] ?? .unset
            s.status.message = string()
            message = s.status.message.isEmpty ? nil : s.status.message
        }
        var error: FieldError?
        if chance(0.15) {
            switch Defect.allCases[int(0...(Defect.allCases.count - 1))] {
            case .zeroTrace: s.traceID = Data(count: 16); error = FieldError(field: "trace_id", rule: "required, not all zero")
            case .shortTrace: s.traceID = Data(trace.prefix(15)); error = FieldError(field: "trace_id", rule: "must be 16 bytes")
            case .noSpanID: s.spanID = Data(); error = FieldError(field: "span_id", rule: "required, not all zero")
            case .longSpanID: s.spanID = Data(trace); error = FieldError(field: "span_id", rule: "must be 8 bytes")
            case .badParent: s.parentSpanID = Data(bytes(4)); error = FieldError(field: "parent_span_id", rule: "must be 8 bytes or empty")
            case .endBeforeStart:
                s.startTimeUnixNano = 2_000
                s.endTimeUnixNano = 1_000
                error = FieldError(field: "end_time_unix_nano", rule: "must not be before start_time_unix_nano")
            case .tooDeep:
                var kv = PBKeyValue()
                kv.key = "deep"
                kv.value = Self.nested(16)
                s.attributes.append(kv)
                error = FieldError(field: "span", rule: "protobuf: attribute values nested deeper than 16")
            }
        }
        if let error { return (s, .failure(error)) }
        return (s, .success(Span(traceID: Self.hex(trace), spanID: Self.hex(id), parentSpanID: parent, service: service, name: s.name,
                                 start: Micros(start / 1000), end: Micros(s.endTimeUnixNano / 1000), status: status, statusMessage: message,
                                 attributes: attributes, resourceAttributes: resource, events: events, links: links)))
    }

    /// A string inside `levels` arrays: deeper than 16 levels is refused.
    static func nested(_ levels: Int) -> PBAnyValue {
        var v = PBAnyValue()
        v.stringValue = "bottom"
        for _ in 0..<levels {
            var a = PBAnyValue()
            a.arrayValue.values = [v]
            v = a
        }
        return v
    }

    /// A whole request and what Waybill must decode from it.
    mutating func request() -> (PBRequest, DecodedSpans) {
        var req = PBRequest()
        var expected = DecodedSpans()
        for ri in 0..<int(0...3) {
            var rs = PBResourceSpans()
            var (resAttrs, resource) = keyValues(depth: 0, max: 3)
            var service = "unknown_service"
            switch int(0...3) {
            case 0: break  // no service.name
            case 1:  // not a string: ignored
                var kv = PBKeyValue()
                kv.key = "service.name"
                kv.value.intValue = 7
                resAttrs.append(kv)
                resource["service.name"] = 7
            default:
                service = "svc-" + string(maxLength: 5)
                var kv = PBKeyValue()
                kv.key = "service.name"
                kv.value.stringValue = service
                resAttrs.append(kv)
                resource["service.name"] = .string(service)
            }
            rs.resource.attributes = resAttrs
            rs.resource.droppedAttributesCount = UInt32(int(0...2))
            if chance(0.3) { rs.schemaURL = "https://opentelemetry.io/schemas/1.26.0" }
            for si in 0..<int(0...2) {
                var ss = Opentelemetry_Proto_Trace_V1_ScopeSpans()
                ss.scope.name = "scope-" + string(maxLength: 4)
                ss.scope.version = "1.2.3"
                ss.scope.attributes = keyValues(depth: 0, max: 2).0
                for pi in 0..<int(0...4) {
                    let (s, outcome) = span(service: service, resource: resource)
                    ss.spans.append(s)
                    switch outcome {
                    case .success(let span): expected.spans.append(span)
                    case .failure(let e): expected.rejected.append(RejectedSpan(path: "resourceSpans[\(ri)].scopeSpans[\(si)].spans[\(pi)]", error: e.description))
                    }
                }
                rs.scopeSpans.append(ss)
            }
            req.resourceSpans.append(rs)
        }
        return (req, expected)
    }
}

@Suite struct OTLPGeneratedTypesTests {
    @Test func randomRequestsFromTheGeneratedTypesDecodeToWhatWasPutIn() throws {
        var gen = RandomOTLP(rng: SplitMix64(seed: 0x07_1F))
        var spans = 0, rejected = 0
        for round in 0..<300 {
            let (req, expected) = gen.request()
            let bytes: [UInt8] = try req.serializedBytes()
            let d = try OTLPProtobuf.decode(bytes)
            #expect(d.spans == expected.spans, "round \(round)")
            #expect(d.rejected == expected.rejected, "round \(round)")
            spans += d.spans.count
            rejected += d.rejected.count
        }
        // The generator reaches what it is meant to.
        #expect(spans > 500 && rejected > 50)
    }

    @Test func everyTruncatedPrefixIsACleanErrorOrTheWholeResourceSpansBeforeIt() throws {
        var gen = RandomOTLP(rng: SplitMix64(seed: 42))
        var (req, _) = gen.request()
        while req.resourceSpans.count < 2 || req.resourceSpans.allSatisfy({ $0.scopeSpans.isEmpty }) { (req, _) = gen.request() }
        let full: [UInt8] = try req.serializedBytes()
        // Where one top-level ResourceSpans ends, a prefix is itself a valid, shorter request.
        var boundaries: [Int: Int] = [0: 0]
        var offset = 0
        for (i, rs) in req.resourceSpans.enumerated() {
            var one = PBRequest()
            one.resourceSpans = [rs]
            offset += try (one.serializedBytes() as [UInt8]).count
            boundaries[offset] = i + 1
        }
        #expect(offset == full.count)
        var errors = 0
        for cut in 0..<full.count {
            if let n = boundaries[cut] {
                var prefix = PBRequest()
                prefix.resourceSpans = Array(req.resourceSpans.prefix(n))
                let expectedSpans = try OTLPProtobuf.decode(prefix.serializedBytes()).spans
                #expect(try OTLPProtobuf.decode(Array(full[0..<cut])).spans == expectedSpans, "cut \(cut)")
                continue
            }
            do {
                let d = try OTLPProtobuf.decode(Array(full[0..<cut]))
                Issue.record("cut \(cut) of \(full.count) decoded to \(d.spans.count) spans")
            } catch {
                errors += 1
                #expect(String(describing: error).hasPrefix("protobuf:"), "cut \(cut): \(error)")
            }
        }
        #expect(errors == full.count - (boundaries.count - 1))
    }

    @Test func attributeNestingLimitRejectsTheSpanOrTheRequest() throws {
        var deepSpan = PBSpan()
        deepSpan.traceID = Data(repeating: 1, count: 16)
        deepSpan.spanID = Data(repeating: 2, count: 8)
        var ok = PBKeyValue()
        ok.key = "ok"
        ok.value = RandomOTLP.nested(15)
        deepSpan.attributes = [ok]
        var req = PBRequest()
        req.resourceSpans = [PBResourceSpans()]
        req.resourceSpans[0].scopeSpans = [.init()]
        req.resourceSpans[0].scopeSpans[0].spans = [deepSpan]
        var d = try OTLPProtobuf.decode(req.serializedBytes())
        #expect(d.spans.count == 1 && d.rejected.isEmpty)
        var bottom: JSONValue = "bottom"
        for _ in 0..<15 { bottom = .array([bottom]) }
        #expect(d.spans.first?.attributes["ok"] == bottom)

        req.resourceSpans[0].scopeSpans[0].spans[0].attributes[0].value = RandomOTLP.nested(16)
        d = try OTLPProtobuf.decode(req.serializedBytes())
        #expect(d.spans.isEmpty)
        #expect(d.rejected == [RejectedSpan(path: "resourceSpans[0].scopeSpans[0].spans[0]", error: "span: protobuf: attribute values nested deeper than 16")])

        // In the resource, it refuses the whole request.
        var kv = PBKeyValue()
        kv.key = "deep"
        kv.value = RandomOTLP.nested(16)
        req.resourceSpans[0].resource.attributes = [kv]
        #expect(throws: BodyError.unreadable("protobuf: attribute values nested deeper than 16")) { try OTLPProtobuf.decode(req.serializedBytes()) }
    }

    /// A request holding one span whose serialized bytes are `span`, framed by hand.
    static func request(span: [UInt8]) -> [UInt8] {
        func field(_ number: UInt8, _ payload: [UInt8]) -> [UInt8] {
            var len = UInt64(payload.count), out: [UInt8] = [number << 3 | 2]
            while len >= 0x80 { out.append(UInt8(len & 0x7F) | 0x80); len >>= 7 }
            return out + [UInt8(len)] + payload
        }
        return field(1, field(2, field(2, span)))  // request.resource_spans.scope_spans.spans
    }

    @Test func unknownFieldsAreSkippedButBadWireDataOrUTF8InASpanFailsTheRequest() throws {
        var s = PBSpan()
        s.traceID = Data(repeating: 0xAB, count: 16)
        s.spanID = Data(repeating: 0xCD, count: 8)
        s.name = "AB"
        let span: [UInt8] = try s.serializedBytes()
        #expect(try OTLPProtobuf.decode(Self.request(span: span)).spans.map(\.name) == ["AB"])
        // Field 99 (varint), unknown to opentelemetry-proto: skipped.
        #expect(try OTLPProtobuf.decode(Self.request(span: span + [0x98, 0x06, 0x01])).spans.map(\.name) == ["AB"])
        // Field number 0 is not valid protobuf: the whole request is refused, not just the span.
        #expect(throws: BodyError.unreadable("protobuf: malformed message (bad tag, wire type or length)")) {
            try OTLPProtobuf.decode(Self.request(span: span + [0x00]))
        }
        // A string that is not UTF-8.
        let name = try #require(span.firstRange(of: Array("AB".utf8)))
        var badName = span
        badName.replaceSubrange(name, with: [0xFF, 0xFE])
        #expect(throws: BodyError.unreadable("protobuf: a string field is not valid UTF-8")) {
            try OTLPProtobuf.decode(Self.request(span: badName))
        }
    }

    @Test func partialSuccessResponseReadsBackWithTheGeneratedType() throws {
        let bytes = OTLPProtobuf.response(rejected: 3, message: "resourceSpans[0].scopeSpans[0].spans[2]: trace_id: required, not all zero")
        let r = try PBResponse(serializedBytes: bytes)
        #expect(r.hasPartialSuccess)
        #expect(r.partialSuccess.rejectedSpans == 3)
        #expect(r.partialSuccess.errorMessage == "resourceSpans[0].scopeSpans[0].spans[2]: trace_id: required, not all zero")
        #expect(try PBResponse(serializedBytes: OTLPProtobuf.response(rejected: 0, message: "")) == PBResponse())
    }
}
