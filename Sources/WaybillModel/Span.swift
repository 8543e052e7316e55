import Foundation

/// A technical span (OpenTelemetry), as Waybill keeps it. Ids are lowercase hex
/// (trace id 32 characters, span id 16).
public struct Span: Sendable, Hashable {
    public enum Status: String, Sendable, Hashable { case unset, ok, error }

    public var traceID: String
    public var spanID: String
    public var parentSpanID: String?
    /// The resource's `service.name`.
    public var service: String
    public var name: String
    public var start: Micros
    public var end: Micros
    public var status: Status
    public var statusMessage: String?
    public var attributes: [String: JSONValue]
    public var resourceAttributes: [String: JSONValue]
    /// Span events: `{"time", "name", "attributes"}` each.
    public var events: [JSONValue] = []
    /// Links to other spans: `{"trace_id", "span_id", "attributes"}` each.
    public var links: [JSONValue] = []

    public init(traceID: String, spanID: String, parentSpanID: String? = nil, service: String, name: String,
                start: Micros, end: Micros, status: Status = .unset, statusMessage: String? = nil,
                attributes: [String: JSONValue] = [:], resourceAttributes: [String: JSONValue] = [:],
                events: [JSONValue] = [], links: [JSONValue] = [])
    {
        self.events = events
        self.links = links
        self.traceID = traceID
        self.spanID = spanID
        self.parentSpanID = parentSpanID
        self.service = service
        self.name = name
        self.start = start
        self.end = end
        self.status = status
        self.statusMessage = statusMessage
        self.attributes = attributes
        self.resourceAttributes = resourceAttributes
    }

    public var durationMillis: Double { Double(end - start) / 1000 }

    /// The W3C `traceparent` naming this span as the parent of whatever it produced.
    public var traceparent: String { "00-\(traceID)-\(spanID)-01" }
}

/// Where producers (the embedded services, the simulator) send what they emit. Implementations
/// decide the transport: the store in-process, an NDJSON file, or a remote server.
public protocol TelemetrySink: AnyObject {
    func emit(_ event: CloudEvent)
    func emit(_ span: Span)
}

/// How a span joins an order (events.md section 4).
public enum SpanCorrelation {
    /// Attribute keys (span, then resource) whose value is an order id or a key linked to one.
    public static let defaultKeys = ["order.id", "order_id", "waybill.correlation_id"]

    /// The correlation key a span carries, if any.
    public static func key(of s: Span, keys: [String] = defaultKeys) -> String? {
        for k in keys {
            if let v = s.attributes[k]?.stringValue, !v.isEmpty { return v }
        }
        for k in keys {
            if let v = s.resourceAttributes[k]?.stringValue, !v.isEmpty { return v }
        }
        return nil
    }
}

extension Span {
    /// The stored form: everything the span carries.
    public var storageJSON: JSONValue {
        var o: [String: JSONValue] = [
            "t": .string(traceID), "s": .string(spanID), "svc": .string(service), "n": .string(name),
            "st": .number(Double(start)), "en": .number(Double(end)), "stat": .string(status.rawValue),
            "a": .object(attributes), "r": .object(resourceAttributes),
        ]
        if let p = parentSpanID { o["p"] = .string(p) }
        if let m = statusMessage { o["msg"] = .string(m) }
        if !events.isEmpty { o["ev"] = .array(events) }
        if !links.isEmpty { o["ln"] = .array(links) }
        return .object(o)
    }

    public init?(storageJSON j: JSONValue) {
        guard let t = j["t"]?.stringValue, let s = j["s"]?.stringValue, let svc = j["svc"]?.stringValue, let n = j["n"]?.stringValue,
              let st = j["st"]?.doubleValue, let en = j["en"]?.doubleValue else { return nil }
        self.init(traceID: t, spanID: s, parentSpanID: j["p"]?.stringValue, service: svc, name: n, start: Micros(st), end: Micros(en),
                  status: j["stat"]?.stringValue.flatMap(Status.init(rawValue:)) ?? .unset, statusMessage: j["msg"]?.stringValue,
                  attributes: j["a"]?.objectValue ?? [:], resourceAttributes: j["r"]?.objectValue ?? [:],
                  events: j["ev"]?.arrayValue ?? [], links: j["ln"]?.arrayValue ?? [])
    }
}
