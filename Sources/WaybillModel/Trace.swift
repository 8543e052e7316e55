import Foundation

/// Everything Waybill knows about one order: its events and those of every key linked to it.
public struct Trace: Sendable, Equatable {
    /// The order id (or, for a group with no order event yet, its smallest key).
    public var correlationID: String
    /// Every key of the group, sorted.
    public var keys: [String]
    /// Sorted by (time, source, id).
    public var events: [CloudEvent]
    /// Facts of the order `correlationID`, when it has order events.
    public var facts: OrderFacts?
    /// Technical spans of every trace that belongs to the order, sorted by (start, trace id, span id).
    public var spans: [Span]

    public init(correlationID: String, keys: [String], events: [CloudEvent], facts: OrderFacts?, spans: [Span] = []) {
        self.correlationID = correlationID
        self.keys = keys
        self.events = events.sorted(by: Trace.eventOrder)
        self.facts = facts
        self.spans = spans.sorted { ($0.start, $0.traceID, $0.spanID) < ($1.start, $1.traceID, $1.spanID) }
    }

    public static func eventOrder(_ a: CloudEvent, _ b: CloudEvent) -> Bool {
        if a.time != b.time { return a.time < b.time }
        if a.source != b.source { return a.source < b.source }
        return a.id < b.id
    }

    public var state: Stage? { facts?.state }
}

extension CloudEvent {
    /// The event as the trace document shows it: every attribute the producer sent, with `time` in UTC.
    public var documentJSON: JSONValue {
        var o = (try? JSONParser.parse(raw))?.objectValue ?? [:]
        o["id"] = .string(id)
        o["source"] = .string(source)
        o["type"] = .string(type)
        o["subject"] = .string(subject)
        o["time"] = .string(RFC3339.format(time))
        if o["data"] == nil { o["data"] = .object([:]) }
        return .object(o)
    }
}
