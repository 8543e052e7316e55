/// The trace document of the HTTP API and `waybill trace --format json`: one order with every event of
/// every key linked to it, its spans and its facts. Front-ends read its typed fields, never string keys.
public struct TraceDocument: Codable, Sendable, Equatable {
    public var correlationID: String
    /// Every key of the group, sorted.
    public var keys: [String]
    /// The furthest lifecycle stage reached (`Stage.name`), nil before any order event.
    public var state: String?
    /// Each event as the producer sent it (every attribute), with `time` in UTC; sorted by (time, source, id).
    public var events: [JSONValue]
    public var spans: [SpanDocument]
    /// All fields nil when the group has no order events.
    public var facts: FactsDocument
    /// The order's lifecycle steps, each compared with the same step's typical duration (`StepDocument`),
    /// in lifecycle order, the step in progress last; empty without order events.
    public var steps: [StepDocument]

    enum CodingKeys: String, CodingKey { case correlationID = "correlation_id", keys, state, events, spans, facts, steps }

    /// `steps` come from the store's history (`StepComparison` in WaybillKPI); without it, none.
    public init(_ t: Trace, steps: [StepDocument] = []) {
        self.steps = steps
        correlationID = t.correlationID
        keys = t.keys
        state = t.state?.name
        events = t.events.map(\.documentJSON)
        spans = t.spans.map(SpanDocument.init)
        facts = t.facts.map(FactsDocument.init) ?? FactsDocument()
    }
}

extension TraceDocument {
    /// One step of the business timeline, as the CLI and the pages show it.
    public struct Step: Sendable {
        public var time: String
        /// Since the previous step, nil for the first.
        public var gap: Micros?
        public var source: String
        public var type: String
        /// Empty when it is the order itself (a linked key's event names its key).
        public var otherSubject: String
        public var data: JSONValue?
        /// `+GAP` in words, empty for the first step.
        public var gapText: String { gap.map { "+" + DurationText.format($0) } ?? "" }
    }

    /// The events in time order with the gap between consecutive steps.
    public var timeline: [Step] {
        var previous: Micros?
        return events.map { e in
            let time = e["time"]?.stringValue ?? ""
            let micros = RFC3339.parse(time)
            let gap = previous.flatMap { p in micros.map { $0 - p } }
            previous = micros ?? previous
            let subject = e["subject"]?.stringValue ?? ""
            return Step(time: time, gap: gap, source: e["source"]?.stringValue ?? "", type: e["type"]?.stringValue ?? "",
                        otherSubject: subject == correlationID ? "" : subject, data: e["data"])
        }
    }
}

/// A span as the trace document shows it.
public struct SpanDocument: Codable, Sendable, Equatable {
    public var traceID: String
    public var spanID: String
    public var parentSpanID: String?
    public var service: String
    public var name: String
    public var start: String
    public var end: String
    public var durationMillis: Double
    /// `ok`, `error` or `unset`.
    public var status: String
    public var statusMessage: String?
    public var attributes: [String: JSONValue]
    public var resource: [String: JSONValue]
    public var events: [JSONValue]
    public var links: [JSONValue]

    enum CodingKeys: String, CodingKey {
        case traceID = "trace_id", spanID = "span_id", parentSpanID = "parent_span_id", service, name, start, end
        case durationMillis = "duration_ms", status, statusMessage = "status_message", attributes, resource, events, links
    }

    public init(_ s: Span) {
        traceID = s.traceID
        spanID = s.spanID
        parentSpanID = s.parentSpanID
        service = s.service
        name = s.name
        start = RFC3339.format(s.start)
        end = RFC3339.format(s.end)
        durationMillis = s.durationMillis
        status = s.status.rawValue
        statusMessage = s.statusMessage
        attributes = s.attributes
        resource = s.resourceAttributes
        events = s.events
        links = s.links
    }

    public var isError: Bool { status == Span.Status.error.rawValue }
}

/// The per-order facts that KPIs read (the `facts` object of the trace document). Times are RFC 3339 in
/// UTC; durations in seconds.
public struct FactsDocument: Codable, Sendable, Equatable {
    public var acceptedAt: String?
    public var allocatedAt: String?
    public var releasedAt: String?
    public var shippedAt: String?
    public var allocationDelaySeconds: Double?
    public var shipmentLagSeconds: Double?
    public var unitsOrdered: Double?
    public var unitsAllocatedFirst: Double?
    public var fullyAllocatedFirst: Bool?
    public var onTime: Bool?
    public var promisedShipBy: String?
    public var channel: String?
    public var region: String?
    public var allocationWarehouse: String?
    public var shipmentWarehouse: String?
    public var state: String?
    public var stateSince: String?

    enum CodingKeys: String, CodingKey {
        case acceptedAt = "accepted_at", allocatedAt = "allocated_at", releasedAt = "released_at", shippedAt = "shipped_at"
        case allocationDelaySeconds = "allocation_delay_s", shipmentLagSeconds = "shipment_lag_s"
        case unitsOrdered = "units_ordered", unitsAllocatedFirst = "units_allocated_first"
        case fullyAllocatedFirst = "fully_allocated_first", onTime = "on_time", promisedShipBy = "promised_ship_by"
        case channel, region, allocationWarehouse = "allocation_warehouse", shipmentWarehouse = "shipment_warehouse"
        case state, stateSince = "state_since"
    }

    public init() {}

    public init(_ f: OrderFacts) {
        func t(_ v: Micros?) -> String? { v.map(RFC3339.format) }
        acceptedAt = t(f.acceptedAt)
        allocatedAt = t(f.allocatedAt)
        releasedAt = t(f.releasedAt)
        shippedAt = t(f.shippedAt)
        allocationDelaySeconds = f.allocationDelay
        shipmentLagSeconds = f.shipmentLag
        unitsOrdered = f.unitsOrdered
        unitsAllocatedFirst = f.unitsAllocatedFirst
        fullyAllocatedFirst = f.fullyAllocatedFirst
        onTime = f.onTime
        promisedShipBy = t(f.accepted?.promisedShipBy)
        channel = f.channel
        region = f.region
        allocationWarehouse = f.allocationWarehouse
        shipmentWarehouse = f.shipmentWarehouse
        state = f.state?.name
        stateSince = t(f.stateSince)
    }

    /// Units allocated at first allocation over units ordered, nil when either is unknown or nothing was ordered.
    public var firstAllocationFill: Double? {
        guard let o = unitsOrdered, let a = unitsAllocatedFirst, o > 0 else { return nil }
        return a / o
    }
}

extension Trace {
    /// The trace document as JSON.
    public var documentJSON: JSONValue { (try? JSONCoding.encode(TraceDocument(self))) ?? .null }
}
