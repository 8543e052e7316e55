import Foundation

/// The stored form of `OrderFacts` (everything needed to keep merging) and the public `facts`
/// object of the trace document (interfaces.md).
extension OrderFacts {
    public var storageJSON: JSONValue {
        var o: [String: JSONValue] = ["order": .string(orderID), "n": .number(Double(eventCount))]
        if let a = accepted {
            var ao: [String: JSONValue] = ["ref": a.ref.json, "lines": .array(a.lines.map { l in
                var lo: [String: JSONValue] = ["line": .string(l.line), "qty": .number(l.qty)]
                if let s = l.sku { lo["sku"] = .string(s) }
                return .object(lo)
            })]
            ao["channel"] = a.channel.map(JSONValue.string)
            ao["customer"] = a.customer.map(JSONValue.string)
            ao["region"] = a.region.map(JSONValue.string)
            ao["promised"] = a.promisedShipBy.map { .number(Double($0)) }
            o["accepted"] = .object(ao)
        }
        if let a = firstAllocation {
            var ao: [String: JSONValue] = ["ref": a.ref.json, "lines": .array(a.lines.map { l in
                var lo: [String: JSONValue] = ["line": .string(l.line), "qty": .number(l.qtyAllocated)]
                if let s = l.sku { lo["sku"] = .string(s) }
                if let w = l.warehouse { lo["warehouse"] = .string(w) }
                return .object(lo)
            })]
            ao["warehouse"] = a.warehouse.map(JSONValue.string)
            o["allocation"] = .object(ao)
        }
        if let s = firstShipment {
            var so: [String: JSONValue] = ["ref": s.ref.json]
            so["warehouse"] = s.warehouse.map(JSONValue.string)
            so["carrier"] = s.carrier.map(JSONValue.string)
            so["tracking"] = s.tracking.map(JSONValue.string)
            o["shipment"] = .object(so)
        }
        o["released"] = releasedAt.map { .number(Double($0)) }
        o["stages"] = .object(Dictionary(uniqueKeysWithValues: stageTimes.map { ($0.key.name, .number(Double($0.value))) }))
        o["types"] = .array(types.sorted().map(JSONValue.string))
        o["sources"] = .array(sources.sorted().map(JSONValue.string))
        o["first"] = firstEventAt.map { .number(Double($0)) }
        o["last"] = lastEventAt.map { .number(Double($0)) }
        return .object(o)
    }

    /// Facts from their stored bytes (`storageBytes`); nil when they do not parse.
    public init?(storageBytes b: [UInt8]) {
        guard let j = try? JSONParser.parse(b) else { return nil }
        self.init(storageJSON: j)
    }

    public init?(storageJSON j: JSONValue) {
        guard let id = j["order"]?.stringValue else { return nil }
        self.init(orderID: id)
        eventCount = Int(j["n"]?.doubleValue ?? 0)
        func micros(_ v: JSONValue?) -> Micros? { v?.doubleValue.map { Micros($0) } }
        if let a = j["accepted"], let ref = EventRef(json: a["ref"]) {
            accepted = AcceptedFacts(
                ref: ref, channel: a["channel"]?.stringValue, customer: a["customer"]?.stringValue, region: a["region"]?.stringValue,
                promisedShipBy: micros(a["promised"]),
                lines: (a["lines"]?.arrayValue ?? []).map {
                    OrderLine(line: $0["line"]?.stringValue ?? "", sku: $0["sku"]?.stringValue, qty: $0["qty"]?.doubleValue ?? 0)
                })
        }
        if let a = j["allocation"], let ref = EventRef(json: a["ref"]) {
            firstAllocation = AllocationFacts(
                ref: ref, warehouse: a["warehouse"]?.stringValue,
                lines: (a["lines"]?.arrayValue ?? []).map {
                    AllocatedLine(line: $0["line"]?.stringValue ?? "", sku: $0["sku"]?.stringValue,
                                  qtyAllocated: $0["qty"]?.doubleValue ?? 0, warehouse: $0["warehouse"]?.stringValue)
                })
        }
        if let s = j["shipment"], let ref = EventRef(json: s["ref"]) {
            firstShipment = ShipmentFacts(ref: ref, warehouse: s["warehouse"]?.stringValue, carrier: s["carrier"]?.stringValue,
                                          tracking: s["tracking"]?.stringValue)
        }
        releasedAt = micros(j["released"])
        for (k, v) in j["stages"]?.objectValue ?? [:] {
            if let st = Stage(name: k), let t = v.doubleValue { stageTimes[st] = Micros(t) }
        }
        types = Set((j["types"]?.arrayValue ?? []).compactMap(\.stringValue))
        sources = Set((j["sources"]?.arrayValue ?? []).compactMap(\.stringValue))
        firstEventAt = micros(j["first"])
        lastEventAt = micros(j["last"])
    }
}

extension EventRef {
    var json: JSONValue { .array([.number(Double(time)), .string(id), .string(source)]) }
    init?(json: JSONValue?) {
        guard let a = json?.arrayValue, a.count == 3, let t = a[0].doubleValue, let id = a[1].stringValue, let s = a[2].stringValue
        else { return nil }
        self.init(time: Micros(t), id: id, source: s)
    }
}

extension OrderFacts {
    /// The bytes of `storageJSON.jsonBytes`, written directly: this runs once per order update on the
    /// store's single writer thread, where building the intermediate dictionaries cost more than the SQL.
    public var storageBytes: [UInt8] {
        var w = JSONWriter(capacity: 512)
        var first = true
        func key(_ k: String) {
            if !first { w.bytes.append(UInt8(ascii: ",")) }
            first = false
            w.string(k)
            w.bytes.append(UInt8(ascii: ":"))
        }
        func ref(_ r: EventRef) {
            w.bytes.append(UInt8(ascii: "["))
            w.number(Double(r.time))
            w.bytes.append(UInt8(ascii: ","))
            w.string(r.id)
            w.bytes.append(UInt8(ascii: ","))
            w.string(r.source)
            w.bytes.append(UInt8(ascii: "]"))
        }
        func field(_ k: String, _ v: String?, _ comma: inout Bool) {
            guard let v else { return }
            if comma { w.bytes.append(UInt8(ascii: ",")) }
            comma = true
            w.string(k)
            w.bytes.append(UInt8(ascii: ":"))
            w.string(v)
        }
        func strings(_ set: Set<String>) {
            w.bytes.append(UInt8(ascii: "["))
            for (i, s) in set.sorted().enumerated() {
                if i > 0 { w.bytes.append(UInt8(ascii: ",")) }
                w.string(s)
            }
            w.bytes.append(UInt8(ascii: "]"))
        }
        w.bytes.append(UInt8(ascii: "{"))
        if let a = accepted {
            key("accepted")
            w.bytes.append(UInt8(ascii: "{"))
            var c = false
            field("channel", a.channel, &c)
            field("customer", a.customer, &c)
            if c { w.bytes.append(UInt8(ascii: ",")) }
            w.raw("\"lines\":[")
            for (i, l) in a.lines.enumerated() {
                if i > 0 { w.bytes.append(UInt8(ascii: ",")) }
                w.raw("{\"line\":")
                w.string(l.line)
                w.raw(",\"qty\":")
                w.number(l.qty)
                if let s = l.sku { w.raw(",\"sku\":"); w.string(s) }
                w.bytes.append(UInt8(ascii: "}"))
            }
            w.bytes.append(UInt8(ascii: "]"))
            if let p = a.promisedShipBy { w.raw(",\"promised\":"); w.number(Double(p)) }
            w.raw(",\"ref\":")
            ref(a.ref)
            if let r = a.region { w.raw(",\"region\":"); w.string(r) }
            w.bytes.append(UInt8(ascii: "}"))
        }
        if let a = firstAllocation {
            key("allocation")
            w.raw("{\"lines\":[")
            for (i, l) in a.lines.enumerated() {
                if i > 0 { w.bytes.append(UInt8(ascii: ",")) }
                w.raw("{\"line\":")
                w.string(l.line)
                w.raw(",\"qty\":")
                w.number(l.qtyAllocated)
                if let s = l.sku { w.raw(",\"sku\":"); w.string(s) }
                if let h = l.warehouse { w.raw(",\"warehouse\":"); w.string(h) }
                w.bytes.append(UInt8(ascii: "}"))
            }
            w.raw("],\"ref\":")
            ref(a.ref)
            if let h = a.warehouse { w.raw(",\"warehouse\":"); w.string(h) }
            w.bytes.append(UInt8(ascii: "}"))
        }
        if let f = firstEventAt { key("first"); w.number(Double(f)) }
        if let l = lastEventAt { key("last"); w.number(Double(l)) }
        key("n")
        w.number(Double(eventCount))
        key("order")
        w.string(orderID)
        if let r = releasedAt { key("released"); w.number(Double(r)) }
        if let s = firstShipment {
            key("shipment")
            w.bytes.append(UInt8(ascii: "{"))
            var c = false
            field("carrier", s.carrier, &c)
            if c { w.bytes.append(UInt8(ascii: ",")) }
            w.raw("\"ref\":")
            ref(s.ref)
            c = true
            field("tracking", s.tracking, &c)
            field("warehouse", s.warehouse, &c)
            w.bytes.append(UInt8(ascii: "}"))
        }
        key("sources")
        strings(sources)
        key("stages")
        w.bytes.append(UInt8(ascii: "{"))
        for (i, (name, t)) in stageTimes.map({ ($0.key.name, $0.value) }).sorted(by: { $0.0 < $1.0 }).enumerated() {
            if i > 0 { w.bytes.append(UInt8(ascii: ",")) }
            w.string(name)
            w.bytes.append(UInt8(ascii: ":"))
            w.number(Double(t))
        }
        w.bytes.append(UInt8(ascii: "}"))
        key("types")
        strings(types)
        w.bytes.append(UInt8(ascii: "}"))
        return w.bytes
    }
}
