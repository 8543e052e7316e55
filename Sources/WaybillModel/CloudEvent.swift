import Foundation

/// A business event: a CloudEvents 1.0 event in structured JSON mode (spec events.md section 1).
/// `raw` is the producer's original JSON text of the event, stored as received.
public struct CloudEvent: Sendable, Hashable {
    public var id: String
    public var source: String
    public var type: String
    public var time: Micros
    public var subject: String
    /// Trace id (32 lowercase hex) from the `traceparent` extension, when present.
    public var traceID: String?
    public var data: JSONValue?
    public var raw: [UInt8]

    public init(id: String, source: String, type: String, time: Micros, subject: String,
                traceID: String? = nil, data: JSONValue? = nil, raw: [UInt8])
    {
        self.id = id
        self.source = source
        self.type = type
        self.time = time
        self.subject = subject
        self.traceID = traceID
        self.data = data
        self.raw = raw
    }

    /// Builds an event and its raw JSON, as a producer would send it.
    public init(id: String, source: String, type: String, time: Micros, subject: String,
                traceparent: String? = nil, data: JSONValue? = nil)
    {
        var o: [String: JSONValue] = [
            "specversion": "1.0", "id": .string(id), "source": .string(source), "type": .string(type),
            "time": .string(RFC3339.format(time)), "subject": .string(subject),
        ]
        if let tp = traceparent { o["traceparent"] = .string(tp) }
        if let d = data { o["data"] = d; o["datacontenttype"] = "application/json" }
        self.init(id: id, source: source, type: type, time: time, subject: subject,
                  traceID: traceparent.flatMap(Traceparent.traceID), data: data, raw: JSONValue.object(o).jsonBytes)
    }

    /// Keys this event links its subject to (`data.links`, events.md section 3).
    public var links: [String] {
        data?["links"]?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    /// Whether this is an order-lifecycle event (`order.*`) whose subject is an order id.
    public var isOrderEvent: Bool { type.hasPrefix("order.") }
}

public enum Traceparent {
    /// The trace id of a W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`), or nil when malformed or all zero.
    /// Works on bytes: it runs for every ingested event.
    public static func traceID(_ s: String) -> String? {
        var s = s
        return s.withUTF8 { b -> String? in
            // version "-" trace-id "-" parent-id "-" flags; future versions may append "-..." fields.
            guard b.count >= 55, b[2] == 0x2D, b[35] == 0x2D, b[52] == 0x2D, b.count == 55 || b[55] == 0x2D else { return nil }
            func hex(_ r: Range<Int>) -> Bool {
                for i in r {
                    let c = b[i]
                    guard (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46) else { return false }
                }
                return true
            }
            func zero(_ r: Range<Int>) -> Bool { r.allSatisfy { b[$0] == 0x30 } }
            guard hex(0..<2), hex(3..<35), hex(36..<52), hex(53..<55), !(b[0] == 0x66 && b[1] == 0x66),
                  !zero(3..<35), !zero(36..<52) else { return nil }
            var out = [UInt8](b[3..<35])
            for i in out.indices where out[i] >= 0x41 && out[i] <= 0x46 { out[i] += 0x20 }
            return String(decoding: out, as: UTF8.self)
        }
    }
}


public enum EventLimits {
    /// Largest key (`id`, `source`, `type`, `subject`, each link) accepted.
    public static let maxKeyBytes = 1024
    /// Largest single event accepted.
    public static let maxEventBytes = 1 << 20
}

extension CloudEvent {
    /// Validates a parsed CloudEvent against events.md and builds it. `raw` is its original JSON text.
    public static func validate(_ value: JSONValue, raw: [UInt8]) throws(EventValidationError) -> CloudEvent {
        if raw.count > EventLimits.maxEventBytes {
            throw EventValidationError(field: "event", rule: "larger than \(EventLimits.maxEventBytes) bytes")
        }
        guard case .object(let o) = value else {
            throw EventValidationError(field: "event", rule: "must be a JSON object, got \(value.typeName)")
        }
        return try validate(EventAttributes(o), raw: raw)
    }

    /// Parses and validates one event's JSON text in one pass, without building the top-level object:
    /// the same event, or the same error (`JSONParseError` text, or the `EventValidationError` with the
    /// event's `source` when that is a string), as `JSONParser.parse` followed by `validate`.
    public static func decode(_ bytes: UnsafeBufferPointer<UInt8>) -> EventDecoding {
        let attributes: EventAttributes
        do {
            switch try JSONParser.parseEvent(bytes) {
            case .attributes(let a): attributes = a
            case .other(let v):
                let rule = bytes.count > EventLimits.maxEventBytes
                    ? "larger than \(EventLimits.maxEventBytes) bytes" : "must be a JSON object, got \(v.typeName)"
                return .invalid(EventValidationError(field: "event", rule: rule), source: nil)
            }
        } catch {
            return .notJSON(error)
        }
        do throws(EventValidationError) {
            if bytes.count > EventLimits.maxEventBytes {
                throw EventValidationError(field: "event", rule: "larger than \(EventLimits.maxEventBytes) bytes")
            }
            return .event(try validate(attributes, raw: Array(bytes)))
        } catch {
            return .invalid(error, source: attributes.source?.stringValue)
        }
    }

    /// The checks of events.md on an event's top-level members.
    static func validate(_ o: EventAttributes, raw: [UInt8]) throws(EventValidationError) -> CloudEvent {
        func key(_ name: String) throws(EventValidationError) -> String {
            guard let v = o[name] else { throw EventValidationError(field: name, rule: "required attribute is missing") }
            guard case .string(let s) = v else { throw EventValidationError(field: name, rule: "must be a string, got \(v.typeName)") }
            if s.isEmpty { throw EventValidationError(field: name, rule: "must not be empty") }
            if s.utf8.count > EventLimits.maxKeyBytes {
                throw EventValidationError(field: name, rule: "longer than \(EventLimits.maxKeyBytes) bytes")
            }
            return s
        }
        let spec = try key("specversion")
        if spec != "1.0" { throw EventValidationError(field: "specversion", rule: "must be \"1.0\", got \"\(spec)\"") }
        let id = try key("id")
        let source = try key("source")
        let type = try key("type")
        let subject = try key("subject")
        let timeText = try key("time")
        guard let time = RFC3339.parse(timeText) else {
            throw EventValidationError(field: "time", rule: "must be an RFC 3339 date-time such as 2026-11-23T14:00:00Z, got \"\(timeText.prefix(64))\"")
        }
        var traceID: String?
        if let tp = o["traceparent"] {
            guard case .string(let s) = tp, let t = Traceparent.traceID(s) else {
                throw EventValidationError(field: "traceparent", rule: "must be W3C trace context 00-<32 hex>-<16 hex>-<2 hex> with non-zero ids")
            }
            traceID = t
        }
        if let ct = o["datacontenttype"] {
            guard case .string(let s) = ct else { throw EventValidationError(field: "datacontenttype", rule: "must be a string") }
            if s != "application/json", !Self.isJSONMediaType(s) {
                throw EventValidationError(field: "datacontenttype", rule: "must be application/json, got \"\(s.prefix(64))\"")
            }
        }
        var data: JSONValue?
        if let d = o["data"], !d.isNull {
            guard case .object = d else { throw EventValidationError(field: "data", rule: "must be a JSON object, got \(d.typeName)") }
            data = d
            try validateData(d, type: type)
        }
        if o["data_base64"] != nil {
            throw EventValidationError(field: "data_base64", rule: "binary data is not accepted; send data as a JSON object")
        }
        return CloudEvent(id: id, source: source, type: type, time: time, subject: subject, traceID: traceID, data: data, raw: raw)
    }

    static func isJSONMediaType(_ s: String) -> Bool {
        let base = s.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        return base == "application/json" || base.hasSuffix("+json")
    }

    /// The data members that must be strings when present and not null.
    static let stringFields = ["channel", "customer", "region", "warehouse", "carrier", "tracking", "reason", "stage", "currency"]

    /// Checks the `data` fields that Waybill reads (events.md section 2), so KPIs never silently misread an event.
    static func validateData(_ d: JSONValue, type: String) throws(EventValidationError) {
        if let links = d["links"] {
            guard case .array(let a) = links else { throw EventValidationError(field: "data.links", rule: "must be an array of strings") }
            for (i, l) in a.enumerated() {
                guard case .string(let s) = l, !s.isEmpty else {
                    throw EventValidationError(field: "data.links[\(i)]", rule: "must be a non-empty string")
                }
                if s.utf8.count > EventLimits.maxKeyBytes {
                    throw EventValidationError(field: "data.links[\(i)]", rule: "longer than \(EventLimits.maxKeyBytes) bytes")
                }
            }
        }
        let quantityField: String?
        switch type {
        case "order.accepted": quantityField = "qty"
        case "order.allocated": quantityField = "qty_allocated"
        case "order.backordered": quantityField = "qty_backordered"
        case "order.short_picked": quantityField = "qty_short"
        case "order.shipped": quantityField = "qty_shipped"
        default: quantityField = nil
        }
        // One pass over the data's members instead of a lookup per field (the event decode's hottest
        // part after the parse); with several wrong, the first in `stringFields` order is reported.
        if case .object(let o) = d {
            var wrong: Int?
            for (k, v) in o where !v.isNull && v.stringValue == nil {
                if let i = Self.stringFields.firstIndex(of: k), i < wrong ?? .max { wrong = i }
            }
            if let wrong, let v = o[Self.stringFields[wrong]] {
                throw EventValidationError(field: "data.\(Self.stringFields[wrong])", rule: "must be a string, got \(v.typeName)")
            }
        }
        if type == "order.accepted", let p = d["promised_ship_by"], !p.isNull {
            guard let s = p.stringValue, RFC3339.parse(s) != nil else {
                throw EventValidationError(field: "data.promised_ship_by", rule: "must be an RFC 3339 date-time")
            }
        }
        if type == "order.credit_checked", let a = d["approved"], !a.isNull, a.boolValue == nil {
            throw EventValidationError(field: "data.approved", rule: "must be a boolean")
        }
        guard let q = quantityField, let lines = d["lines"], !lines.isNull else { return }
        guard case .array(let arr) = lines else { throw EventValidationError(field: "data.lines", rule: "must be an array of line objects") }
        for (i, l) in arr.enumerated() {
            guard case .object(let lo) = l else { throw EventValidationError(field: "data.lines[\(i)]", rule: "must be an object") }
            guard let lineID = lo["line"], OrderLineID.make(lineID) != nil else {
                throw EventValidationError(field: "data.lines[\(i)].line", rule: "must be a string or an integer")
            }
            let required = type != "order.shipped"
            if let qv = lo[q] {
                guard let qty = qv.doubleValue, qty >= 0 else {
                    throw EventValidationError(field: "data.lines[\(i)].\(q)", rule: "must be a number >= 0")
                }
            } else if required {
                throw EventValidationError(field: "data.lines[\(i)].\(q)", rule: "required for \(type)")
            }
        }
    }
}

/// Line ids are strings or integers and match across events: `3` and `"3"` are the same line.
public enum OrderLineID {
    public static func make(_ v: JSONValue) -> String? {
        switch v {
        case .string(let s): return s
        case .number(let d) where d == d.rounded() && abs(d) < 1e15: return String(Int64(d))
        default: return nil
        }
    }
}

/// What `CloudEvent.decode` made of one event's text.
public enum EventDecoding: Sendable {
    case event(CloudEvent)
    /// Not JSON at all.
    case notJSON(JSONParseError)
    /// JSON that breaks a rule; `source` when the event has a string `source`.
    case invalid(EventValidationError, source: String?)
}

/// The top-level members of an event that validation reads; any other member is only checked to be
/// JSON. A repeated member keeps its last value, as a parsed object does.
public struct EventAttributes: Sendable {
    public var specversion, id, source, type, subject, time, traceparent, datacontenttype, data, dataBase64: JSONValue?

    public init() {}

    init(_ o: [String: JSONValue]) {
        specversion = o["specversion"]; id = o["id"]; source = o["source"]; type = o["type"]; subject = o["subject"]
        time = o["time"]; traceparent = o["traceparent"]; datacontenttype = o["datacontenttype"]; data = o["data"]
        dataBase64 = o["data_base64"]
    }

    /// Stores `value` when `key` is a member validation reads.
    @inline(__always) mutating func set(_ key: String, _ value: JSONValue) {
        switch key {
        case "specversion": specversion = value
        case "id": id = value
        case "source": source = value
        case "type": type = value
        case "subject": subject = value
        case "time": time = value
        case "traceparent": traceparent = value
        case "datacontenttype": datacontenttype = value
        case "data": data = value
        case "data_base64": dataBase64 = value
        default: break
        }
    }

    subscript(name: String) -> JSONValue? {
        switch name {
        case "specversion": return specversion
        case "id": return id
        case "source": return source
        case "type": return type
        case "subject": return subject
        case "time": return time
        case "traceparent": return traceparent
        case "datacontenttype": return datacontenttype
        case "data": return data
        case "data_base64": return dataBase64
        default: return nil
        }
    }
}
