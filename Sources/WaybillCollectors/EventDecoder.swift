import Foundation
import WaybillModel

/// One event that could not be taken, with its position in the body: the array index for a batch,
/// the 0-based line index for NDJSON (blank lines count), 0 for a single event.
public struct RejectedEvent: Sendable, Equatable {
    public var index: Int
    public var error: String
    /// The event's `source` when it is a string (`/metrics` counts rejections by source).
    public var source: String?
    /// The field whose rule the event broke (`json` when it could not be parsed), for `/metrics`.
    public var reason: String?
    public init(index: Int, error: String, source: String? = nil, reason: String? = nil) {
        self.index = index
        self.error = error
        self.source = source
        self.reason = reason
    }
}

public struct DecodedEvents: Sendable {
    public var events: [CloudEvent] = []
    public var rejected: [RejectedEvent] = []
    public init() {}
}

/// Why a whole body was refused; maps to an HTTP status.
public enum BodyError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Nothing in the body could be read (400).
    case unreadable(String)
    /// Larger than the limit, before or after decompression (413).
    case tooLarge(limit: Int)
    /// Content type or encoding Waybill does not take (415).
    case unsupportedMediaType(String)

    public var description: String {
        switch self {
        case .unreadable(let m): return m
        case .tooLarge(let limit): return "request body larger than \(limit) bytes (after decompression)"
        case .unsupportedMediaType(let m): return m
        }
    }

    public var httpStatus: Int {
        switch self {
        case .unreadable: return 400
        case .tooLarge: return 413
        case .unsupportedMediaType: return 415
        }
    }
}

/// Turns request bodies and files into CloudEvents, event by event: a bad event is reported with its
/// index and never costs its neighbours their place.
public enum EventDecoder {
    public enum Framing: Sendable, Equatable {
        /// One event object (an array is taken as a batch).
        case single
        /// A JSON array of events.
        case batch
        /// One event per line.
        case ndjson
        /// A JSON object or array, whichever the body holds.
        case json
    }

    public static let defaultBodyLimit = 16 << 20

    /// The framing for an HTTP `Content-Type`; nil when Waybill does not take that type.
    public static func framing(contentType: String?) -> Framing? {
        guard let ct = contentType else { return nil }
        let base = ct.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        switch base {
        case "application/cloudevents+json": return .single
        case "application/cloudevents-batch+json": return .batch
        case "application/json": return .json
        case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines", "application/jsonlines":
            return .ndjson
        default: return nil
        }
    }

    /// Decodes an HTTP body given its headers.
    public static func decode(body: [UInt8], contentType: String?, contentEncoding: String?, limit: Int = defaultBodyLimit)
        throws(BodyError) -> DecodedEvents
    {
        guard let framing = framing(contentType: contentType) else {
            throw .unsupportedMediaType(
                "Content-Type \(contentType.map { "'\($0)'" } ?? "missing"): send application/cloudevents+json, "
                    + "application/cloudevents-batch+json, application/json or application/x-ndjson")
        }
        var bytes = body
        if bytes.count > limit { throw .tooLarge(limit: limit) }
        let encoding = contentEncoding?.trimmingCharacters(in: .whitespaces).lowercased() ?? "identity"
        switch encoding {
        case "identity", "": break
        case "gzip", "x-gzip": bytes = try inflate(bytes, limit: limit)
        default: throw .unsupportedMediaType("Content-Encoding '\(encoding)': only gzip is supported")
        }
        return try decode(bytes, framing: framing)
    }

    public static func inflate(_ bytes: [UInt8], limit: Int) throws(BodyError) -> [UInt8] {
        let result: Result<[UInt8], InflateError> = Result { () throws(InflateError) -> [UInt8] in try Gzip.inflate(bytes, limit: limit) }
        switch result {
        case .success(let b): return b
        case .failure(.tooLarge(let l)): throw .tooLarge(limit: l)
        case .failure(.corrupt(let m)): throw .unreadable("gzip body could not be decompressed: \(m)")
        }
    }

    public static func decode(_ bytes: [UInt8], framing: Framing) throws(BodyError) -> DecodedEvents {
        if framing == .ndjson { return try decodeLines(bytes) }
        var ranges: [Range<Int>] = []
        let value: JSONValue
        do {
            value = try bytes.withUnsafeBufferPointer { (b) throws(JSONParseError) -> JSONValue in
                try withUnsafeMutablePointer(to: &ranges) { (r) throws(JSONParseError) -> JSONValue in
                    try JSONParser.parse(b, elementRanges: r)
                }
            }
        } catch {
            throw .unreadable(error.description)
        }
        var out = DecodedEvents()
        switch value {
        case .array(let items):
            if framing == .single && items.isEmpty { throw .unreadable("expected one CloudEvent object, got an empty array") }
            out.events.reserveCapacity(items.count)
            for (i, item) in items.enumerated() {
                take(item, raw: Array(bytes[ranges[i]]), index: i, into: &out)
            }
        case .object:
            if framing == .batch { throw .unreadable("application/cloudevents-batch+json expects a JSON array of events") }
            take(value, raw: trimmed(bytes), index: 0, into: &out)
        default:
            throw .unreadable("expected a CloudEvent object or an array of them, got \(value.typeName)")
        }
        return out
    }

    /// NDJSON: every line on its own; a line that is not JSON is rejected, the others are kept.
    /// Throws only when the body has no readable line at all.
    public static func decodeLines(_ bytes: [UInt8]) throws(BodyError) -> DecodedEvents {
        try bytes.withUnsafeBufferPointer { (b) throws(BodyError) -> DecodedEvents in try decodeLines(b, firstLine: 0) }
    }

    /// Decodes a run of NDJSON lines; `firstLine` is the index of its first line in the whole input.
    public static func decodeLines(_ b: UnsafeBufferPointer<UInt8>, firstLine: Int) throws(BodyError) -> DecodedEvents {
        let (out, sawAnything, sawJSON, firstError) = decodeLinesLeniently(b, firstLine: firstLine)
        if !sawAnything { throw .unreadable("the body holds no events") }
        if !sawJSON { throw .unreadable("no line of the NDJSON body is JSON; first: \(firstError ?? "")") }
        return out
    }

    /// Like `decodeLines`, but never throws: lines that are not JSON are only listed as rejected.
    public static func decodeLinesLeniently(_ b: UnsafeBufferPointer<UInt8>, firstLine: Int)
        -> (events: DecodedEvents, sawAnything: Bool, sawJSON: Bool, firstError: String?)
    {
        var out = DecodedEvents()
        var sawJSON = false
        var sawAnything = false
        var firstError: String?
        do {
            var start = 0
            var line = firstLine
            while start < b.count {
                var end = start
                while end < b.count && b[end] != 0x0A { end += 1 }
                var e = end
                if e > start && b[e - 1] == 0x0D { e -= 1 }
                let slice = UnsafeBufferPointer(rebasing: b[start..<e])
                if !isBlank(slice) {
                    sawAnything = true
                    // One pass from the line's bytes to the event (no dictionary of its members); the same
                    // event or error as parsing the line and then validating it (`take`).
                    switch treeDecoding ? treeDecode(slice) : CloudEvent.decode(slice) {
                    case .event(let e):
                        sawJSON = true
                        out.events.append(e)
                    case .invalid(let error, let source):
                        sawJSON = true
                        out.rejected.append(RejectedEvent(index: line, error: error.description, source: source, reason: error.field))
                    case .notJSON(let error):
                        firstError = firstError ?? "line \(line + 1): \(error.description)"
                        out.rejected.append(RejectedEvent(index: line, error: error.description, reason: "json"))
                    }
                }
                line += 1
                start = end + 1
            }
        }
        return (out, sawAnything, sawJSON, firstError)
    }

    /// `WAYBILL_DECODE_TREE=1`: NDJSON lines go through a `JSONValue` tree, then `CloudEvent.validate`
    /// (the path before the one-pass decode), for A/B benchmarks.
    static let treeDecoding = ProcessInfo.processInfo.environment["WAYBILL_DECODE_TREE"] != nil

    static func treeDecode(_ slice: UnsafeBufferPointer<UInt8>) -> EventDecoding {
        let v: JSONValue
        do { v = try JSONParser.parse(slice) } catch { return .notJSON(error) }
        do throws(EventValidationError) {
            return .event(try CloudEvent.validate(v, raw: Array(slice)))
        } catch {
            if case .object(let o) = v, case .string(let s)? = o["source"] { return .invalid(error, source: s) }
            return .invalid(error, source: nil)
        }
    }

    static func take(_ v: JSONValue, raw: [UInt8], index: Int, into out: inout DecodedEvents) {
        do {
            out.events.append(try CloudEvent.validate(v, raw: raw))
        } catch {
            var source: String?
            if case .object(let o) = v, case .string(let s)? = o["source"] { source = s }
            out.rejected.append(RejectedEvent(index: index, error: error.description, source: source, reason: error.field))
        }
    }

    /// Whether a line holds only spaces, tabs and carriage returns (skipped, but counted as a line).
    public static func isBlank(_ b: UnsafeBufferPointer<UInt8>) -> Bool {
        b.allSatisfy { $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }
    }

    static func trimmed(_ b: [UInt8]) -> [UInt8] {
        var s = 0, e = b.count
        while s < e, b[s] == 0x20 || b[s] == 0x0A || b[s] == 0x0D || b[s] == 0x09 { s += 1 }
        while e > s, b[e - 1] == 0x20 || b[e - 1] == 0x0A || b[e - 1] == 0x0D || b[e - 1] == 0x09 { e -= 1 }
        return Array(b[s..<e])
    }
}
