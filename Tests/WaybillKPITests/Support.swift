import Foundation
import WaybillModel
@testable import WaybillKPI
import WaybillTestSupport

extension SplitMix64 {
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

/// Builds an order's events the way producers send them.
struct OrderScript {
    let order: String
    var events: [CloudEvent] = []
    private var n = 0

    init(_ order: String) { self.order = order }

    private mutating func emit(_ type: String, _ time: Micros, id: String?, _ data: JSONValue?) {
        n += 1
        events.append(CloudEvent(id: id ?? "\(order)-\(type)-\(n)", source: "test", type: type, time: time, subject: order, data: data))
    }

    mutating func accepted(_ time: Micros, channel: String? = "web", region: String? = "EU", promised: String? = nil,
                           lines: [(String, Double)] = [("1", 1)], id: String? = nil)
    {
        var d: [String: JSONValue] = ["lines": .array(lines.map { ["line": .string($0.0), "sku": .string("SKU-" + $0.0), "qty": .number($0.1)] })]
        if let channel { d["channel"] = .string(channel) }
        if let region { d["region"] = .string(region) }
        if let promised { d["promised_ship_by"] = .string(promised) }
        emit("order.accepted", time, id: id, .object(d))
    }

    mutating func allocated(_ time: Micros, warehouse: String? = "DC-EAST", lines: [(String, Double)] = [("1", 1)], id: String? = nil) {
        var d: [String: JSONValue] = ["lines": .array(lines.map { ["line": .string($0.0), "qty_allocated": .number($0.1)] })]
        if let warehouse { d["warehouse"] = .string(warehouse) }
        emit("order.allocated", time, id: id, .object(d))
    }

    mutating func released(_ time: Micros, warehouse: String = "DC-EAST") {
        emit("order.released", time, id: nil, ["warehouse": .string(warehouse)])
    }

    mutating func shipped(_ time: Micros, warehouse: String? = "DC-EAST", id: String? = nil) {
        var d: [String: JSONValue] = ["carrier": "UPS", "tracking": .string("1Z-\(order)")]
        if let warehouse { d["warehouse"] = .string(warehouse) }
        emit("order.shipped", time, id: id, .object(d))
    }

    var facts: OrderFacts {
        var f = OrderFacts(orderID: order)
        for e in events { f.apply(e) }
        return f
    }
}

func facts(_ order: String, _ build: (inout OrderScript) -> Void) -> OrderFacts {
    var s = OrderScript(order)
    build(&s)
    return s.facts
}

func relativeError(_ estimate: Double, _ exact: Double) -> Double {
    exact == 0 ? (estimate == 0 ? 0 : .infinity) : abs(estimate - exact) / exact
}

/// A random workload of orders over `days` days from `start`, with every KPI path exercised:
/// missing group fields, partial allocations, re-allocations, negative delays, promised dates.
func randomOrders(count: Int, seed: UInt64, start: Micros, days: Int = 3) -> [OrderFacts] {
    randomScripts(count: count, seed: seed, start: start, days: days).map(\.facts)
}

func randomScripts(count: Int, seed: UInt64, start: Micros, days: Int = 3) -> [OrderScript] {
    var rng = SplitMix64(seed: seed)
    let warehouses: [String?] = ["DC-EAST", "DC-WEST", "DC-NORTH", nil]
    let channels: [String?] = ["web", "store", "marketplace", nil]
    let regions: [String?] = ["EU", "US", nil]
    var out: [OrderScript] = []
    for i in 0..<count {
        var s = OrderScript("ORD-" + String(100_000 + i).dropFirst())
        defer { out.append(s) }
        let accepted = start + Micros(rng.unit() * Double(Micros(days) * day))
        let lineCount = Int(rng.next() % 3) + 1
        let lines = (0..<lineCount).map { (String($0 + 1), Double(rng.next() % 5 + 1)) }
        let promised = rng.next() % 4 == 0 ? nil : RFC3339.format(accepted + Micros(rng.unit() * Double(2 * day)))
        s.accepted(accepted, channel: channels[Int(rng.next() % 4)], region: regions[Int(rng.next() % 3)], promised: promised, lines: lines)
        if rng.next() % 10 == 0 { continue }
        // Lognormal-ish delays; some negative (clock skew) and some zero.
        let delay = rng.next() % 20 == 0 ? -Micros(rng.unit() * 5e6) : Micros(exp(rng.unit() * 12) * 1e6 * rng.unit())
        let wh = warehouses[Int(rng.next() % 4)]
        let allocatedLines = lines.map { ($0.0, rng.next() % 4 == 0 ? Double(rng.next() % 3) : $0.1 + Double(rng.next() % 2)) }
        s.allocated(accepted + delay, warehouse: wh, lines: allocatedLines)
        if rng.next() % 5 == 0 { s.allocated(accepted + delay + 10 * minute, warehouse: "DC-WEST", lines: lines) }
        if rng.next() % 4 == 0 { continue }
        let released = accepted + Swift.max(delay, 0) + Micros(rng.unit() * Double(hour))
        s.released(released, warehouse: wh ?? "DC-EAST")
        if rng.next() % 5 == 0 { continue }
        let shippedFrom = rng.next() % 6 == 0 ? warehouses[Int(rng.next() % 4)] : wh
        s.shipped(released + Micros(rng.unit() * rng.unit() * Double(day)) - (rng.next() % 30 == 0 ? hour : 0), warehouse: shippedFrom)
    }
    return out
}
