import WaybillModel

/// A carrier's own event about a shipment; its subject is `shipment:<tracking>`, not the order.
public enum ShipmentEvent: Codable, Hashable, Sendable {
    case inTransit(carrier: String, tracking: String, location: String)
    case delivered(carrier: String, tracking: String)

    public var type: String {
        switch self {
        case .inTransit: return "shipment.in_transit"
        case .delivered: return "shipment.delivered"
        }
    }
    public var tracking: String {
        switch self {
        case .inTransit(_, let t, _), .delivered(_, let t): return t
        }
    }
    public var subject: String { "shipment:" + tracking }

    public var data: JSONValue {
        switch self {
        case .inTransit(let c, let t, let l): return ["carrier": .string(c), "location": .string(l), "tracking": .string(t)]
        case .delivered(let c, let t): return ["carrier": .string(c), "tracking": .string(t)]
        }
    }
}

extension OrderEvent {
    /// The emitting system (`source`): who in the landscape reports this step.
    public func source(in network: FulfilmentNetwork) -> String {
        switch self {
        case .accepted, .validated, .cancelled, .exception: return "oms"
        case .creditChecked, .invoiced: return "erp"
        case .allocated, .backordered: return "allocation"
        case .released(let w), .picked(let w), .shortPicked(let w, _), .packed(let w):
            return network.warehouses.first { $0.id == w }?.system ?? "wms"
        case .shipped, .delivered: return "tms"
        }
    }

    /// `data` exactly as events.md section 2 lists it; nil for the steps that carry none.
    public var data: JSONValue? {
        switch self {
        case .accepted(let o):
            return ["channel": .string(o.channel), "customer": .string(o.customer), "region": .string(o.region),
                    "promised_ship_by": .string(RFC3339.format(o.promisedShipBy)),
                    "lines": .array(o.lines.map { ["line": .number(Double($0.line)), "sku": .string($0.sku), "qty": .number(Double($0.qty))] })]
        case .validated, .delivered:
            return nil
        case .creditChecked(let approved):
            return ["approved": .bool(approved)]
        case .allocated(let w, let lines):
            var o: [String: JSONValue] = [
                "lines": .array(lines.map { l in
                    var e: [String: JSONValue] = ["line": .number(Double(l.line)), "sku": .string(l.sku), "qty_allocated": .number(Double(l.qtyAllocated))]
                    if let lw = l.warehouse { e["warehouse"] = .string(lw) }
                    return .object(e)
                }),
            ]
            if let w { o["warehouse"] = .string(w) }
            return .object(o)
        case .backordered(let lines):
            return ["lines": .array(lines.map { ["line": .number(Double($0.line)), "sku": .string($0.sku), "qty_backordered": .number(Double($0.qty))] })]
        case .released(let w), .picked(let w), .packed(let w):
            return ["warehouse": .string(w)]
        case .shortPicked(let w, let lines):
            return ["warehouse": .string(w), "lines": .array(lines.map { ["line": .number(Double($0.line)), "qty_short": .number(Double($0.qty))] })]
        case .shipped(let w, let c, let t, let lines):
            return ["warehouse": .string(w), "carrier": .string(c), "tracking": .string(t), "links": [.string("shipment:" + t)],
                    "lines": .array(lines.map { ["line": .number(Double($0.line)), "qty_shipped": .number(Double($0.qty))] })]
        case .invoiced(let n, let amount, let currency):
            return ["amount": .number(amount), "currency": .string(currency), "links": [.string("invoice:" + n)]]
        case .cancelled(let reason):
            return ["reason": .string(reason)]
        case .exception(let reason, let stage):
            return ["reason": .string(reason), "stage": .string(stage)]
        }
    }
}

extension JSONTextWriter {
    /// The CloudEvent envelope around `data`, keys in sorted order as `CloudEvent.init` renders them.
    mutating func event(idBase: String, idSeq: Int, source: String, type: String, time: Micros, subject: String,
                        trace: TraceContext?, hasData: Bool, data: (inout JSONTextWriter) -> Void)
    {
        reset()
        openObject()
        if hasData {
            key("data")
            openObject()
            data(&self)
            closeObject()
            key("datacontenttype"); rawValue("\"application/json\"")
        }
        key("id"); string(idBase, dash: idSeq)
        key("source"); string(source)
        key("specversion"); rawValue("\"1.0\"")
        key("subject"); string(subject)
        key("time"); self.time(time)
        if let trace { key("traceparent"); traceparent(trace) }
        key("type"); string(type)
        closeObject()
    }

    mutating func orderEventData(_ e: OrderEvent) {
        switch e {
        case .accepted(let o):
            key("channel"); string(o.channel)
            key("customer"); string(o.customer)
            key("lines"); openArray()
            for l in o.lines {
                openObject(); key("line"); int(l.line); key("qty"); int(l.qty); key("sku"); string(l.sku); closeObject()
            }
            closeArray()
            key("promised_ship_by"); time(o.promisedShipBy)
            key("region"); string(o.region)
        case .validated, .delivered:
            break
        case .creditChecked(let approved):
            key("approved"); bool(approved)
        case .allocated(let w, let lines):
            key("lines"); openArray()
            for l in lines {
                openObject(); key("line"); int(l.line); key("qty_allocated"); int(l.qtyAllocated); key("sku"); string(l.sku)
                if let lw = l.warehouse { key("warehouse"); string(lw) }
                closeObject()
            }
            closeArray()
            if let w { key("warehouse"); string(w) }
        case .backordered(let lines):
            key("lines"); openArray()
            for l in lines {
                openObject(); key("line"); int(l.line); key("qty_backordered"); int(l.qty); key("sku"); string(l.sku); closeObject()
            }
            closeArray()
        case .released(let w), .picked(let w), .packed(let w):
            key("warehouse"); string(w)
        case .shortPicked(let w, let lines):
            key("lines"); openArray()
            for l in lines { openObject(); key("line"); int(l.line); key("qty_short"); int(l.qty); closeObject() }
            closeArray()
            key("warehouse"); string(w)
        case .shipped(let w, let c, let t, let lines):
            key("carrier"); string(c)
            key("lines"); openArray()
            for l in lines { openObject(); key("line"); int(l.line); key("qty_shipped"); int(l.qty); closeObject() }
            closeArray()
            key("links"); openArray(); string("shipment:", t); closeArray()
            key("tracking"); string(t)
            key("warehouse"); string(w)
        case .invoiced(let n, let amount, let currency):
            key("amount"); double(amount)
            key("currency"); string(currency)
            key("links"); openArray(); string("invoice:", n); closeArray()
        case .cancelled(let reason):
            key("reason"); string(reason)
        case .exception(let reason, let stage):
            key("reason"); string(reason)
            key("stage"); string(stage)
        }
    }

    mutating func shipmentEventData(_ e: ShipmentEvent) {
        switch e {
        case .inTransit(let c, let t, let l):
            key("carrier"); string(c)
            key("location"); string(l)
            key("tracking"); string(t)
        case .delivered(let c, let t):
            key("carrier"); string(c)
            key("tracking"); string(t)
        }
    }
}

extension OrderEvent {
    var hasData: Bool {
        switch self {
        case .validated, .delivered: return false
        default: return true
        }
    }
}
