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

    public init(traceID: String, spanID: String, parentSpanID: String? = nil, service: String, name: String,
                start: Micros, end: Micros, status: Status = .unset, statusMessage: String? = nil,
                attributes: [String: JSONValue] = [:], resourceAttributes: [String: JSONValue] = [:])
    {
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
