import WaybillModel

/// How one stored event becomes an OCEL event (the table in docs/export.md), in two halves that run on
/// two threads: `OCELEventWriter` writes the event's JSON and learns the event types' attributes (it
/// needs nothing but the event), `OCELEventMapper` tells the spool what the event says about objects
/// (it keeps state across events, so it sees them in time order on one thread). Object ids: an order is
/// its id; a linked key is the key itself (`shipment:1Z…`, typed by its prefix, `key` without one); a
/// line is `ORDER#LINE`; customers, warehouses and carriers are `customer:ID`, `warehouse:ID`,
/// `carrier:ID`, so they meet keys linked under the same prefix.
enum OCELEventIDs {
    /// Type of a key that is not known to be an order: its prefix before `:`, or `key`.
    static func keyType(_ key: String) -> String {
        guard let colon = key.utf8.firstIndex(of: UInt8(ascii: ":")) else { return "key" }
        let n = key.utf8.distance(from: key.utf8.startIndex, to: colon)
        guard n > 0, n <= 64 else { return "key" }
        return String(key[..<colon])
    }

    static func lineID(order: String, line: String) -> String { order + "#" + line }

    /// The fields of `data` that name a customer, warehouse or carrier, with their id prefixes.
    static let partyFields: [(field: String, prefix: String)] = [("customer", "customer:"), ("warehouse", "warehouse:"), ("carrier", "carrier:")]
}

/// The event half: each event's JSON, and the declared attributes of each event type.
struct OCELEventWriter {
    var events = 0
    var e2o = 0
    /// Declared attributes per event type, widened as values are seen. Bounded by the data's vocabulary
    /// (types and field names), not by the number of events.
    var eventAttributes: [String: [String: OCELAttributeType]] = [:]
    /// Per event type: its count and the attribute names and types of its latest event. Most events of a
    /// type have the same attributes, so `eventAttributes` is only touched when they differ.
    private var shapes: [(type: String, count: Int, attrs: [(String, OCELAttributeType)])] = []
    private var attrs: [(String, String, OCELAttributeType)] = []
    private var rels: [(String, StaticString)] = []

    var eventsByType: [String: Int] {
        var out: [String: Int] = [:]
        for s in shapes { out[s.type, default: 0] += s.count }
        return out
    }

    static func eventID(_ e: CloudEvent) -> String { URLText.pathSegment(e.source) + "/" + e.id }

    static func value(_ v: JSONValue) -> (String, OCELAttributeType)? {
        switch v {
        case .null: return nil
        case .bool(let b): return (b ? "true" : "false", .boolean)
        case .number(let d):
            guard d.isFinite else { return nil }
            if d == d.rounded(), abs(d) < 1e15 { return (String(Int64(d)), .integer) }
            return ("\(d)", .float)
        case .string(let s):
            let u = s.utf8
            if u.count >= 20, u.count <= 40, u.dropFirst(4).first == UInt8(ascii: "-"), RFC3339.parse(s) != nil { return (s, .time) }
            return (s, .string)
        case .array, .object:
            return (v.jsonString, .string)
        }
    }

    private mutating func learn(_ type: String) {
        let i: Int
        if let k = shapes.firstIndex(where: { $0.type == type }) {
            i = k
        } else {
            shapes.append((type, 0, []))
            i = shapes.count - 1
        }
        shapes[i].count += 1
        let last = shapes[i].attrs
        if last.count == attrs.count, !zip(last, attrs).contains(where: { $0.0 != $1.0 || $0.1 != $1.2 }) { return }
        // In place: a copy of the type's dictionary written back would be copied on every event.
        for (name, _, t) in attrs {
            let seen = eventAttributes[type]?[name]
            eventAttributes[type, default: [:]][name] = seen.map { $0.widened(with: t) } ?? t
        }
        shapes[i].attrs = attrs.map { ($0.0, $0.2) }
    }

    mutating func writeEvent(_ e: CloudEvent, to out: inout OCELOutputBuffer) {
        events += 1
        let data = e.data?.objectValue
        let isOrder = e.isOrderEvent

        // Attributes: the source, then every data field but links, typed.
        attrs.removeAll(keepingCapacity: true)
        attrs.append(("source", e.source, .string))
        if let data {
            for (k, v) in data.sorted(by: { $0.key < $1.key }) where k != "links" {
                guard let (text, type) = Self.value(v) else { continue }
                attrs.append((k == "source" ? "data.source" : k, text, type))
            }
        }
        learn(e.type)

        // Relationships, each object once per event (the first qualifier wins).
        rels.removeAll(keepingCapacity: true)
        func relate(_ id: String, _ qualifier: StaticString) {
            if !rels.contains(where: { $0.0 == id }) { rels.append((id, qualifier)) }
        }
        relate(e.subject, "subject")
        if let data {
            if let v = data["customer"]?.stringValue, !v.isEmpty { relate("customer:" + v, "customer") }
            if let v = data["warehouse"]?.stringValue, !v.isEmpty { relate("warehouse:" + v, "warehouse") }
            if let v = data["carrier"]?.stringValue, !v.isEmpty { relate("carrier:" + v, "carrier") }
            if isOrder, let lines = data["lines"]?.arrayValue {
                for l in lines {
                    guard let line = l["line"].flatMap(OrderLineID.make) else { continue }
                    relate(OCELEventIDs.lineID(order: e.subject, line: line), "line")
                    if let wh = l["warehouse"]?.stringValue, !wh.isEmpty { relate("warehouse:" + wh, "line warehouse") }
                }
            }
        }
        for link in e.links where !link.isEmpty { relate(link, "link") }
        e2o += rels.count

        out.raw("{\"id\":")
        out.string(Self.eventID(e))
        out.raw(",\"type\":")
        out.string(e.type)
        out.raw(",\"time\":\"")
        out.time(e.time)
        out.raw("\",\"attributes\":[")
        for (i, a) in attrs.enumerated() {
            if i > 0 { out.byte(0x2C) }
            out.raw("{\"name\":")
            out.string(a.0)
            out.raw(",\"value\":")
            out.string(a.1)
            out.byte(0x7D)
        }
        out.raw("],\"relationships\":[")
        for (i, r) in rels.enumerated() {
            if i > 0 { out.byte(0x2C) }
            out.raw("{\"objectId\":")
            out.string(r.0)
            out.raw(",\"qualifier\":")
            out.raw("\"")
            out.raw(r.1)
            out.raw("\"}")
        }
        out.raw("]}")
    }
}

/// The object half: what each event tells the spool about objects, in the events' order.
struct OCELEventMapper {
    let spool: OCELObjectSpool
    /// Object ids and relations spooled lately: an order's events come close together in time, so most
    /// repeats are skipped here; the spool's grouping removes the rest.
    private var recentObjects = OCELRecentSet()
    private var recentRelations = OCELRecentSet()

    init(spool: OCELObjectSpool) {
        self.spool = spool
    }

    mutating func object(_ id: String, _ type: String, _ priority: UInt8) throws {
        // The priority is part of the key: an order seen first as a link is spooled again as an order.
        guard recentObjects.insert(id, "", priority == 2 ? 2 : 1) else { return }
        try spool.append(.object(id: id, type: type, priority: priority))
    }

    mutating func relation(_ id: String, _ target: String, _ qualifier: String) throws {
        guard id != target else { return }
        guard recentRelations.insert(id, target, 0) else { return }
        try spool.append(.relation(id: id, target: target, qualifier: qualifier))
    }

    mutating func spoolEvent(_ e: CloudEvent) throws {
        let data = e.data?.objectValue
        let isOrder = e.isOrderEvent
        try object(e.subject, isOrder ? "order" : OCELEventIDs.keyType(e.subject), isOrder ? 2 : 1)
        for (field, prefix) in OCELEventIDs.partyFields {
            guard let v = data?[field]?.stringValue, !v.isEmpty else { continue }
            let id = prefix + v
            try object(id, field, 1)
            if isOrder, field == "customer" { try relation(e.subject, id, "customer") }
        }
        if isOrder, let lines = data?["lines"]?.arrayValue {
            for l in lines {
                guard let line = l["line"].flatMap(OrderLineID.make) else { continue }
                let id = OCELEventIDs.lineID(order: e.subject, line: line)
                try object(id, "line", 1)
                try relation(e.subject, id, "line")
                if e.type == "order.accepted" {
                    if let sku = l["sku"]?.stringValue { try spool.append(.attribute(id: id, name: "sku", value: sku, time: e.time, rank: 0)) }
                    if let q = l["qty"], case .number = q, let (text, _) = OCELEventWriter.value(q) {
                        try spool.append(.attribute(id: id, name: "qty", value: text, time: e.time, rank: 0))
                    }
                }
                if let wh = l["warehouse"]?.stringValue, !wh.isEmpty { try object("warehouse:" + wh, "warehouse", 1) }
            }
        }
        for link in e.links where !link.isEmpty {
            try object(link, OCELEventIDs.keyType(link), 1)
            try relation(e.subject, link, "link")
        }
        if isOrder {
            if let stage = Stage(eventType: e.type) {
                try spool.append(.attribute(id: e.subject, name: "state", value: stage.name, time: e.time, rank: UInt8(stage.rawValue)))
            }
            if e.type == "order.accepted" {
                for name in ["channel", "region", "promised_ship_by"] {
                    if let v = data?[name]?.stringValue { try spool.append(.attribute(id: e.subject, name: name, value: v, time: e.time, rank: 0)) }
                }
            }
        }
    }
}

/// A set of recent (string, string, tag) keys that forgets everything when it holds `limit`: open
/// addressing with an FNV-1a hash of the bytes, which costs less than `Set`'s seeded SipHash, the strings
/// compared only when the 64-bit hashes are equal, and forgetting by a generation number (a slot of an
/// older generation is free), so clearing touches nothing.
struct OCELRecentSet {
    private var slots: [Slot]
    private struct Slot {
        var generation: UInt32 = 0
        var tag: UInt8 = 0
        var hash: UInt64 = 0
        var first = ""
        var second = ""
    }
    private var generation: UInt32 = 1
    private var count = 0
    private let mask: Int
    private let limit: Int

    init(slots: Int = 1 << 18, limit: Int = 100_000) {
        self.slots = Array(repeating: Slot(), count: slots)
        mask = slots - 1
        self.limit = min(limit, slots / 2)
    }

    @inline(__always) private static func mix(_ s: String, _ h: inout UInt64) {
        var s = s
        s.withUTF8 { u in
            for b in u {
                h ^= UInt64(b)
                h = h &* 0x100_0000_01b3
            }
        }
        h = (h ^ 0xFF) &* 0x100_0000_01b3
    }

    /// True when the key was not in the set (it is now).
    mutating func insert(_ a: String, _ b: String, _ tag: UInt8) -> Bool {
        if count >= limit {
            generation &+= 1
            if generation == 0 {
                for i in slots.indices { slots[i].generation = 0 }
                generation = 1
            }
            count = 0
        }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(tag)
        Self.mix(a, &h)
        Self.mix(b, &h)
        let g = generation, mask = self.mask
        let inserted = slots.withUnsafeMutableBufferPointer { slots in
            var i = Int(truncatingIfNeeded: h ^ (h >> 29)) & mask
            while slots[i].generation == g {
                if slots[i].hash == h, slots[i].tag == tag, slots[i].first == a, slots[i].second == b { return false }
                i = (i + 1) & mask
            }
            slots[i] = Slot(generation: g, tag: tag, hash: h, first: a, second: b)
            return true
        }
        if inserted { count += 1 }
        return inserted
    }
}

/// One object of the spool, written once: its type, its timed attributes, its relationships.
enum OCELObjectWriter {
    /// The attributes each object type declares (others declare none).
    static func declaredAttributes(of type: String) -> [(name: String, type: OCELAttributeType)] {
        switch type {
        case "order": return [("channel", .string), ("promised_ship_by", .time), ("region", .string), ("state", .string)]
        case "line": return [("qty", .float), ("sku", .string)]
        default: return []
        }
    }

    static let orderNames = Set(declaredAttributes(of: "order").map(\.name))
    static let lineNames = Set(declaredAttributes(of: "line").map(\.name))

    /// The names of `declaredAttributes(of:)`, made once per type rather than per object.
    static func declaredNames(of type: String) -> Set<String> {
        switch type {
        case "order": return orderNames
        case "line": return lineNames
        default: return []
        }
    }

    /// Writes the object; returns its type and how many object-to-object relationships it has.
    static func write(id: String, records: [OCELObjectSpool.Record], first: Bool, to out: inout OCELOutputBuffer) -> (String, Int) {
        var type = "key"
        var priority: UInt8 = 0
        var states: [(time: Int64, rank: UInt8, value: String)] = []
        var attrs: [(time: Int64, name: String, value: String)] = []
        struct SeenAttribute: Hashable {
            var time: Int64
            var name: String
            var value: String
        }
        var seenAttrs = Set<SeenAttribute>()
        var relations: [(target: String, qualifier: String)] = []
        for r in records {
            switch r {
            case .object(_, let t, let p):
                if p > priority || (p == priority && t < type) {
                    type = t
                    priority = p
                }
            case .attribute(_, let name, let value, let time, let rank):
                if name == "state" && rank > 0 {
                    states.append((time, rank, value))
                } else if seenAttrs.insert(SeenAttribute(time: time, name: name, value: value)).inserted {
                    attrs.append((time, name, value))
                }
            case .relation(_, let target, let qualifier):
                relations.append((target, qualifier))
            }
        }
        let declared = declaredNames(of: type)
        attrs = attrs.filter { declared.contains($0.name) }
        // The state is the highest-ranked stage reached so far: a value at each time it rises.
        states.sort { ($0.time, $0.rank) < ($1.time, $1.rank) }
        var best: UInt8 = 0
        if declared.contains("state") {
            for s in states where s.rank > best {
                best = s.rank
                attrs.append((s.time, "state", s.value))
            }
        }
        attrs.sort { ($0.time, $0.name, $0.value) < ($1.time, $1.name, $1.value) }
        relations.sort { ($0.target, $0.qualifier) < ($1.target, $1.qualifier) }
        var unique: [(target: String, qualifier: String)] = []
        for r in relations where unique.last?.target != r.target { unique.append(r) }

        if !first { out.byte(0x2C) }
        out.raw("{\"id\":")
        out.string(id)
        out.raw(",\"type\":")
        out.string(type)
        out.raw(",\"attributes\":[")
        for (i, a) in attrs.enumerated() {
            if i > 0 { out.byte(0x2C) }
            out.raw("{\"name\":")
            out.string(a.name)
            out.raw(",\"value\":")
            out.string(a.value)
            out.raw(",\"time\":\"")
            out.time(a.time)
            out.raw("\"}")
        }
        out.raw("],\"relationships\":[")
        for (i, r) in unique.enumerated() {
            if i > 0 { out.byte(0x2C) }
            out.raw("{\"objectId\":")
            out.string(r.target)
            out.raw(",\"qualifier\":")
            out.string(r.qualifier)
            out.byte(0x7D)
        }
        out.raw("]}")
        return (type, unique.count)
    }
}
