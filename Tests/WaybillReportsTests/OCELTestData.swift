import Foundation
import WaybillModel
import WaybillTestSupport

/// Orders as a distribution estate sends them, for the OCEL export tests: many orders interleaved in
/// time, shipment, invoice and payment keys linked from the order and referring onwards, links that
/// arrive before the events they explain, resends (the same event twice, a re-allocation), stragglers
/// (a validation that arrives long after later stages), unknown event types, odd data fields.
enum OCELTestData {
    static let t0 = t("2026-11-02T08:00:00Z")

    static func ev(_ id: String, _ type: String, _ at: Micros, _ subject: String, source: String = "oms", _ data: JSONValue? = nil) -> CloudEvent {
        CloudEvent(id: id, source: source, type: type, time: at, subject: subject, data: data)
    }

    /// Events of `orders` orders (in arrival order, duplicates included): order i starts 90 s after i-1
    /// and takes hours, so hundreds are in flight at once.
    static func estate(orders: Int) -> [CloudEvent] {
        var out: [CloudEvent] = []
        var stragglers: [CloudEvent] = []
        for i in 0..<orders {
            let o = "ORD-\(1000 + i)"
            let start = t0 + Micros(i) * 90 * second
            let wh = ["DC-EAST", "DC-WEST", "DC-SOUTH"][i % 3]
            let customer = "C-\(i % 7)"
            var accepted: JSONValue = ["channel": .string(["web", "edi", "store"][i % 3]), "customer": .string(customer), "region": "EU",
                                       "promised_ship_by": .string(RFC3339.format(start + 2 * day)),
                                       "lines": [["line": 1, "sku": "SKU-A", "qty": 5], ["line": "2", "sku": "SKU-B", "qty": 2.5]]]
            if i % 11 == 0 { accepted = .object(accepted.objectValue!.merging(["source": "pos-17", "meta": ["campaign": "bf"]]) { $1 }) }
            out.append(ev("\(o)-acc", "order.accepted", start, o, accepted))
            // The validation of every fifth order arrives last, long after later stages.
            let validated = ev("\(o)-val", "order.validated", start + 1 * minute, o, source: "erp")
            if i % 5 == 1 { stragglers.append(validated) } else { out.append(validated) }
            out.append(ev("\(o)-cc", "order.credit_checked", start + 2 * minute, o, source: "erp", ["approved": .bool(i % 13 != 5)]))
            if i % 9 == 4 {
                out.append(ev("\(o)-can", "order.cancelled", start + 20 * minute, o, ["reason": "customer"]))
                continue
            }
            out.append(ev("\(o)-alloc", "order.allocated", start + 5 * minute, o, source: "allocation",
                          ["warehouse": .string(wh), "lines": [["line": 1, "qty_allocated": 5, "warehouse": .string(wh)],
                                                               ["line": 2, "qty_allocated": 2.5, "warehouse": "DC-NORTH"]]]))
            if i % 6 == 2 {
                // A re-allocation: another event, same type.
                out.append(ev("\(o)-realloc", "order.allocated", start + 40 * minute, o, source: "allocation",
                              ["warehouse": "DC-NORTH", "lines": [["line": 1, "qty_allocated": 5, "warehouse": "DC-NORTH"]]]))
            }
            out.append(ev("\(o)-note", "order.note.added", start + 6 * minute, o, source: "crm", ["text": "call before delivery"]))
            if i % 4 == 3 { continue }
            let tracking = "1Z\(i)"
            // The carrier's first scan arrives before the link that explains it.
            out.insert(ev("\(o)-scan", "shipment.scanned", start + 3 * hour, "shipment:" + tracking, source: "carrier",
                          ["location": .string("HUB-\(i % 4)")]), at: max(0, out.count - 3))
            out.append(ev("\(o)-pick", "order.picked", start + 2 * hour, o, source: "wms", ["warehouse": .string(wh)]))
            out.append(ev("\(o)-ship", "order.shipped", start + 150 * minute, o, source: "wms",
                          ["warehouse": .string(wh), "carrier": .string(["UPS", "DHL"][i % 2]), "tracking": .string(tracking),
                           "links": [.string("shipment:" + tracking)]]))
            out.append(ev("\(o)-dlv", "shipment.delivered", start + 30 * hour, "shipment:" + tracking, source: "carrier",
                          ["links": [.string("pod:POD-\(i)")]]))
            out.append(ev("\(o)-inv", "order.invoiced", start + 31 * hour, o, source: "erp",
                          ["amount": i % 2 == 0 ? 120 : 120.5, "currency": "EUR", "links": [.string("invoice:INV-\(i)")]]))
            out.append(ev("\(o)-pay", "payment.received", start + 40 * hour, "invoice:INV-\(i)", source: "finance",
                          ["links": [.string("payment:PAY-\(i)"), .string("invoice:INV-\(i)")], "amount": 120]))
        }
        // Resends: every seventh event again.
        let resent = stride(from: 0, to: out.count, by: 7).map { out[$0] }
        return out + resent + stragglers
    }

    /// What the export of `window` must contain, computed from the events by the mapping table of
    /// docs/export.md, independently of the exporter.
    struct Expected {
        var eventIDs: Set<String> = []
        var objectTypes: [String: String] = [:]
        var e2o = 0
        var o2o: Set<String> = []
    }

    static func expected(_ events: [CloudEvent], window: Range<Micros>) -> Expected {
        var x = Expected()
        var seen = Set<String>()
        let inWindow = events.filter { window.contains($0.time) && seen.insert($0.source + "|" + $0.id).inserted }
        let orders = Set(inWindow.filter { $0.type.hasPrefix("order.") }.map(\.subject))
        func type(of key: String) -> String {
            if orders.contains(key) { return "order" }
            if let c = key.firstIndex(of: ":"), c != key.startIndex { return String(key[..<c]) }
            return "key"
        }
        for e in inWindow {
            x.eventIDs.insert(e.source + "/" + e.id)
            var related: [String: String] = [e.subject: type(of: e.subject)]
            let d = e.data
            for f in ["customer", "warehouse", "carrier"] {
                if let v = d?[f]?.stringValue { related[f + ":" + v] = f }
            }
            if e.type.hasPrefix("order.") {
                for l in d?["lines"]?.arrayValue ?? [] {
                    let line = OrderLineID.make(l["line"]!)!
                    related[e.subject + "#" + line] = "line"
                    x.o2o.insert(e.subject + " > " + e.subject + "#" + line)
                    if let w = l["warehouse"]?.stringValue { related["warehouse:" + w] = "warehouse" }
                }
                if let c = d?["customer"]?.stringValue { x.o2o.insert(e.subject + " > customer:" + c) }
            }
            for link in e.links {
                related[link] = type(of: link)
                if link != e.subject { x.o2o.insert(e.subject + " > " + link) }
            }
            x.e2o += related.count
            for (id, t) in related { x.objectTypes[id] = t }
        }
        return x
    }
}
