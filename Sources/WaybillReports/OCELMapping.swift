import WaybillModel

/// How one stored event becomes an OCEL event, and what it tells the spool about objects (the table in
/// docs/export.md). Object ids: an order is its id; a linked key is the key itself (`shipment:1Z…`,
/// typed by its prefix, `key` without one); a line is `ORDER#LINE`; customers, warehouses and carriers
/// are `customer:ID`, `warehouse:ID`, `carrier:ID`, so they meet keys linked under the same prefix.
struct OCELEventMapper {
    let spool: OCELObjectSpool
    var events = 0
    var e2o = 0
    var eventsByType: [String: Int] = [:]
    /// Declared attributes per event type, widened as values are seen. Bounded by the data's vocabulary
    /// (types and field names), not by the number of events.
    var eventAttributes: [String: [String: OCELAttributeType]] = [:]
    /// Object ids and relations spooled lately: an order's events come close together in time, so most
    /// repeats are skipped here; the spool's grouping removes the rest.
    private var recentObjects = Set<RecentObject>()
    private var recentRelations = Set<RecentRelation>()
    struct RecentObject: Hashable {
        var id: String
        var priority: UInt8
    }
    struct RecentRelation: Hashable {
        var id: String
        var target: String
    }
    static let recentLimit = 100_000

    init(spool: OCELObjectSpool) {
        self.spool = spool
    }

    /// Type of a key that is not known to be an order: its prefix before `:`, or `key`.
    static func keyType(_ key: String) -> String {
        guard let colon = key.utf8.firstIndex(of: UInt8(ascii: ":")) else { return "key" }
        let n = key.utf8.distance(from: key.utf8.startIndex, to: colon)
        guard n > 0, n <= 64 else { return "key" }
        return String(key[..<colon])
    }

    static func eventID(_ e: CloudEvent) -> String { URLText.pathSegment(e.source) + "/" + e.id }
    static func lineID(order: String, line: String) -> String { order + "#" + line }

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

    mutating func object(_ id: String, _ type: String, _ priority: UInt8) throws {
        if recentObjects.count >= Self.recentLimit { recentObjects.removeAll(keepingCapacity: true) }
        // The priority is part of the key: an order seen first as a link is spooled again as an order.
        guard recentObjects.insert(RecentObject(id: id, priority: priority == 2 ? 2 : 1)).inserted else { return }
        try spool.append(.object(id: id, type: type, priority: priority))
    }

    mutating func relation(_ id: String, _ target: String, _ qualifier: String) throws {
        guard id != target else { return }
        if recentRelations.count >= Self.recentLimit { recentRelations.removeAll(keepingCapacity: true) }
        guard recentRelations.insert(RecentRelation(id: id, target: target)).inserted else { return }
        try spool.append(.relation(id: id, target: target, qualifier: qualifier))
    }

    mutating func writeEvent(_ e: CloudEvent, to out: inout OCELOutputBuffer) throws {
        events += 1
        eventsByType[e.type, default: 0] += 1
        let data = e.data?.objectValue
        let isOrder = e.isOrderEvent

        // Attributes: the source, then every data field but links, typed.
        var attrs: [(String, String, OCELAttributeType)] = [("source", e.source, .string)]
        if let data {
            for k in data.keys.sorted() where k != "links" {
                guard let (text, type) = Self.value(data[k]!) else { continue }
                attrs.append((k == "source" ? "data.source" : k, text, type))
            }
        }
        // In place: a copy of the type's dictionary written back would be copied on every event.
        for (name, _, type) in attrs {
            let seen = eventAttributes[e.type]?[name]
            eventAttributes[e.type, default: [:]][name] = seen.map { $0.widened(with: type) } ?? type
        }

        // Relationships, each object once per event (the first qualifier wins).
        var rels: [(String, String)] = []
        func relate(_ id: String, _ qualifier: String) {
            if !rels.contains(where: { $0.0 == id }) { rels.append((id, qualifier)) }
        }
        relate(e.subject, "subject")
        try object(e.subject, isOrder ? "order" : Self.keyType(e.subject), isOrder ? 2 : 1)
        for (field, prefix) in [("customer", "customer:"), ("warehouse", "warehouse:"), ("carrier", "carrier:")] {
            guard let v = data?[field]?.stringValue, !v.isEmpty else { continue }
            let id = prefix + v
            relate(id, field)
            try object(id, field, 1)
            if isOrder, field == "customer" { try relation(e.subject, id, "customer") }
        }
        if isOrder, let lines = data?["lines"]?.arrayValue {
            for l in lines {
                guard let line = l["line"].flatMap(OrderLineID.make) else { continue }
                let id = Self.lineID(order: e.subject, line: line)
                relate(id, "line")
                try object(id, "line", 1)
                try relation(e.subject, id, "line")
                if e.type == "order.accepted" {
                    if let sku = l["sku"]?.stringValue { try spool.append(.attribute(id: id, name: "sku", value: sku, time: e.time, rank: 0)) }
                    if let q = l["qty"], case .number = q, let (text, _) = Self.value(q) {
                        try spool.append(.attribute(id: id, name: "qty", value: text, time: e.time, rank: 0))
                    }
                }
                if let wh = l["warehouse"]?.stringValue, !wh.isEmpty {
                    relate("warehouse:" + wh, "line warehouse")
                    try object("warehouse:" + wh, "warehouse", 1)
                }
            }
        }
        for link in e.links where !link.isEmpty {
            relate(link, "link")
            try object(link, Self.keyType(link), 1)
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
            out.string(r.1)
            out.byte(0x7D)
        }
        out.raw("]}")
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
