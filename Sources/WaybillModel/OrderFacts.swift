import Foundation

/// Lifecycle stages in the order they are reached; `cancelled` ends any of them.
public enum Stage: Int, CaseIterable, Comparable, Sendable, Codable {
    case accepted = 1, validated, allocated, released, picked, packed, shipped, delivered, invoiced, cancelled

    public init?(eventType: String) {
        guard eventType.hasPrefix("order.") else { return nil }
        self.init(name: String(eventType.dropFirst(6)))
    }

    public init?(name: String) {
        guard let s = Stage.allCases.first(where: { $0.name == name }) else { return nil }
        self = s
    }

    public var name: String {
        switch self {
        case .accepted: return "accepted"
        case .validated: return "validated"
        case .allocated: return "allocated"
        case .released: return "released"
        case .picked: return "picked"
        case .packed: return "packed"
        case .shipped: return "shipped"
        case .delivered: return "delivered"
        case .invoiced: return "invoiced"
        case .cancelled: return "cancelled"
        }
    }

    /// Stages after which nothing more is expected of the order.
    public var isTerminal: Bool { self == .invoiced || self == .cancelled }
    public static func < (a: Stage, b: Stage) -> Bool { a.rawValue < b.rawValue }
}

/// Identifies an event for "earliest" choices: ordered by time, then id, then source, so ties are
/// broken the same way whatever the arrival order (kpis.md: ties go to the smallest `id`).
public struct EventRef: Comparable, Hashable, Sendable {
    public var time: Micros
    public var id: String
    public var source: String
    public init(time: Micros, id: String, source: String) {
        self.time = time
        self.id = id
        self.source = source
    }
    public static func < (a: EventRef, b: EventRef) -> Bool {
        if a.time != b.time { return a.time < b.time }
        if a.id != b.id { return a.id < b.id }
        return a.source < b.source
    }
}

public struct OrderLine: Hashable, Sendable {
    public var line: String
    public var sku: String?
    public var qty: Double
}

public struct AllocatedLine: Hashable, Sendable {
    public var line: String
    public var sku: String?
    public var qtyAllocated: Double
    public var warehouse: String?
}

public struct AcceptedFacts: Hashable, Sendable {
    public var ref: EventRef
    public var channel: String?
    public var customer: String?
    public var region: String?
    public var promisedShipBy: Micros?
    public var lines: [OrderLine]
}

public struct AllocationFacts: Hashable, Sendable {
    public var ref: EventRef
    public var warehouse: String?
    public var lines: [AllocatedLine]
}

public struct ShipmentFacts: Hashable, Sendable {
    public var ref: EventRef
    public var warehouse: String?
    public var carrier: String?
    public var tracking: String?
}

/// The per-order facts of kpis.md, kept as the "earliest" candidates they are derived from.
///
/// `apply` is a join on a semilattice (every field is a min, a max or a set union), so folding any
/// permutation of an order's distinct events gives the same facts. The store applies each distinct
/// event once (duplicates are dropped before), which keeps `eventCount` exact.
public struct OrderFacts: Hashable, Sendable {
    public var orderID: String
    public var accepted: AcceptedFacts?
    public var firstAllocation: AllocationFacts?
    public var releasedAt: Micros?
    public var firstShipment: ShipmentFacts?
    /// Earliest time each lifecycle stage was reached.
    public var stageTimes: [Stage: Micros] = [:]
    public var types: Set<String> = []
    public var sources: Set<String> = []
    public var firstEventAt: Micros?
    public var lastEventAt: Micros?
    public var eventCount = 0

    public init(orderID: String) { self.orderID = orderID }

    public mutating func apply(_ e: CloudEvent) {
        eventCount += 1
        types.insert(e.type)
        sources.insert(e.source)
        firstEventAt = min(firstEventAt ?? e.time, e.time)
        lastEventAt = max(lastEventAt ?? e.time, e.time)
        if let stage = Stage(eventType: e.type) {
            stageTimes[stage] = min(stageTimes[stage] ?? e.time, e.time)
        }
        let ref = EventRef(time: e.time, id: e.id, source: e.source)
        let d = e.data
        switch e.type {
        case "order.accepted":
            if let cur = accepted, cur.ref <= ref { return }
            var lines: [OrderLine] = []
            for l in d?["lines"]?.arrayValue ?? [] {
                guard let id = l["line"].flatMap(OrderLineID.make) else { continue }
                lines.append(OrderLine(line: id, sku: l["sku"]?.stringValue, qty: l["qty"]?.doubleValue ?? 0))
            }
            accepted = AcceptedFacts(ref: ref, channel: d?["channel"]?.stringValue, customer: d?["customer"]?.stringValue,
                                     region: d?["region"]?.stringValue,
                                     promisedShipBy: d?["promised_ship_by"]?.stringValue.flatMap(RFC3339.parse), lines: lines)
        case "order.allocated":
            if let cur = firstAllocation, cur.ref <= ref { return }
            var lines: [AllocatedLine] = []
            for l in d?["lines"]?.arrayValue ?? [] {
                guard let id = l["line"].flatMap(OrderLineID.make) else { continue }
                lines.append(AllocatedLine(line: id, sku: l["sku"]?.stringValue, qtyAllocated: l["qty_allocated"]?.doubleValue ?? 0,
                                           warehouse: l["warehouse"]?.stringValue))
            }
            firstAllocation = AllocationFacts(ref: ref, warehouse: d?["warehouse"]?.stringValue, lines: lines)
        case "order.released":
            releasedAt = min(releasedAt ?? e.time, e.time)
        case "order.shipped":
            if let cur = firstShipment, cur.ref <= ref { return }
            firstShipment = ShipmentFacts(ref: ref, warehouse: d?["warehouse"]?.stringValue, carrier: d?["carrier"]?.stringValue,
                                          tracking: d?["tracking"]?.stringValue)
        default:
            break
        }
    }

    // MARK: Derived facts (kpis.md)

    public var acceptedAt: Micros? { accepted?.ref.time }
    public var allocatedAt: Micros? { firstAllocation?.ref.time }
    public var shippedAt: Micros? { firstShipment?.ref.time }
    public var channel: String? { accepted?.channel }
    public var region: String? { accepted?.region }
    public var allocationWarehouse: String? { firstAllocation?.warehouse }
    public var shipmentWarehouse: String? { firstShipment?.warehouse }

    public var unitsOrdered: Double? { accepted.map { $0.lines.reduce(0) { $0 + $1.qty } } }

    /// Units of the first allocation, each line capped at its ordered quantity; lines not ordered count 0.
    public var unitsAllocatedFirst: Double? { firstAllocationFill?.units }

    public var fullyAllocatedFirst: Bool? { firstAllocationFill?.full }

    /// `unitsAllocatedFirst` and `fullyAllocatedFirst` in one pass.
    public var firstAllocationFill: (units: Double, full: Bool)? {
        guard let accepted, let firstAllocation else { return nil }
        let ordered = LineQuantities(accepted.lines.lazy.map { ($0.line, $0.qty) })
        let allocated = LineQuantities(firstAllocation.lines.lazy.map { ($0.line, $0.qtyAllocated) })
        return (allocated.lines.reduce(0) { $0 + min($1.qty, ordered.quantity($1.line) ?? 0) },
                ordered.lines.allSatisfy { (allocated.quantity($0.line) ?? 0) >= $0.qty })
    }

    /// Seconds from acceptance to first allocation, 0 where negative.
    public var allocationDelay: Double? {
        guard let a = acceptedAt, let b = allocatedAt else { return nil }
        return max(0, Double(b - a) / 1e6)
    }

    /// Seconds from release to shipment, 0 where negative.
    public var shipmentLag: Double? {
        guard let r = releasedAt, let s = shippedAt else { return nil }
        return max(0, Double(s - r) / 1e6)
    }

    public var onTime: Bool? {
        guard let s = shippedAt, let p = accepted?.promisedShipBy else { return nil }
        return s <= p
    }

    /// The latest lifecycle stage reached (by lifecycle rank, so clock skew between systems cannot move an order backwards).
    public var state: Stage? { stageTimes.keys.max() }
    /// When the order reached its current state.
    public var stateSince: Micros? { state.flatMap { stageTimes[$0] } }
}

extension OrderFacts {
    /// Joins facts folded from two disjoint sets of distinct events of the same order: the result equals
    /// folding both sets. Every field but `eventCount` is a min, max or union, so the join is also
    /// commutative, associative and idempotent; counts add up.
    public mutating func merge(_ o: OrderFacts) {
        if let a = o.accepted, accepted.map({ a.ref < $0.ref }) ?? true { accepted = a }
        if let a = o.firstAllocation, firstAllocation.map({ a.ref < $0.ref }) ?? true { firstAllocation = a }
        if let s = o.firstShipment, firstShipment.map({ s.ref < $0.ref }) ?? true { firstShipment = s }
        if let r = o.releasedAt { releasedAt = min(releasedAt ?? r, r) }
        for (stage, t) in o.stageTimes { stageTimes[stage] = min(stageTimes[stage] ?? t, t) }
        types.formUnion(o.types)
        sources.formUnion(o.sources)
        if let f = o.firstEventAt { firstEventAt = min(firstEventAt ?? f, f) }
        if let l = o.lastEventAt { lastEventAt = max(lastEventAt ?? l, l) }
        eventCount += o.eventCount
    }

    /// Folds events into facts per order (`subject`), for the order events (`order.*`) among them.
    public static func fold<S: Sequence>(_ events: S) -> [String: OrderFacts] where S.Element == CloudEvent {
        var out: [String: OrderFacts] = [:]
        for e in events where e.isOrderEvent {
            out[e.subject, default: OrderFacts(orderID: e.subject)].apply(e)
        }
        return out
    }
}

/// Quantities per line id, repeated ids added up, in the order ids first appear. Orders have a few
/// lines, found by comparing ids; past 16, through a dictionary.
private struct LineQuantities {
    private(set) var lines: [(line: String, qty: Double)] = []
    private var index: [String: Int]?

    init<S: Sequence>(_ pairs: S) where S.Element == (String, Double) {
        for (line, qty) in pairs {
            if let i = position(line) {
                lines[i].qty += qty
                continue
            }
            lines.append((line, qty))
            if index != nil {
                index![line] = lines.count - 1
            } else if lines.count > 16 {
                index = Dictionary(uniqueKeysWithValues: lines.enumerated().map { ($1.line, $0) })
            }
        }
    }

    func quantity(_ line: String) -> Double? { position(line).map { lines[$0].qty } }

    private func position(_ line: String) -> Int? {
        if let index { return index[line] }
        return lines.firstIndex { $0.line == line }
    }
}
