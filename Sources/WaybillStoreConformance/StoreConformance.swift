import Foundation
import WaybillModel
import WaybillStore

/// The behaviour every storage engine must show, written once against the protocols in
/// `WaybillStore`: each check asserts sentences of a protocol's contract (`///` on the protocol).
/// An engine's test target runs every check with a factory that makes fresh, empty storage of the
/// engine; an engine that passes can hold events, spans, KPI rollups, alerting state and checkpoints.
public enum StoreConformance {
    /// Everything a complete engine provides: the store, and the state alerting and the demo keep in it.
    public typealias Store = any WaybillStore & AlertStore & DeadlineReader & WorkflowStore

    /// Fresh, empty storage of the engine under test.
    public struct Storage: Sendable {
        let opener: @Sendable ((any FactsRollup)?) throws -> Store
        let hold: @Sendable (Store, Bool) -> Void

        /// - Parameters:
        ///   - open: opens the storage, keeping `rollup`'s rows (none when nil). Called again after the
        ///     previous store was closed, it opens what that store committed.
        ///   - holdWrites: holds (true) or releases (false) an open store's writes: they are accepted
        ///     (`StoreStats.queuedEvents`) but not committed while held.
        public init(open: @escaping @Sendable (_ rollup: (any FactsRollup)?) throws -> Store,
                    holdWrites: @escaping @Sendable (_ store: Store, _ held: Bool) -> Void) {
            opener = open
            hold = holdWrites
        }

        public func open(rollup: (any FactsRollup)? = nil) throws -> Store { try opener(rollup) }
    }

    public typealias Factory = @Sendable () throws -> Storage

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    public struct Check: Sendable, CustomStringConvertible {
        public let name: String
        let body: @Sendable (Factory) async throws -> Void
        public var description: String { name }
        public func run(_ make: Factory) async throws { try await body(make) }
    }

    /// Every check of the suite.
    public static var checks: [Check] { eventChecks + rollupChecks + deadlineChecks + alertChecks + checkpointChecks + accessChecks + eventScanChecks + stepChecks + stateCountChecks + interleavedChecks + stageChecks + serviceRollupChecks }

    static let eventChecks: [Check] = [
        Check(name: "duplicates are stored once and counted", body: duplicatesAreStoredOnce),
        Check(name: "concurrent appends of the same events store each once", body: concurrentDuplicates),
        Check(name: "acknowledged events and spans survive reopening and stay duplicates", body: reopening),
        Check(name: "trace follows links transitively, whatever the key asked for", body: transitiveLinks),
        Check(name: "links arriving after the events they explain still join them", body: lateLinks),
        Check(name: "unknown keys have no trace", body: unknownKey),
        Check(name: "shuffled and duplicated streams give identical traces, facts and searches", body: orderIndependence),
        Check(name: "search filters and pages without gaps or repeats", body: searchFiltersAndPaging),
        Check(name: "retention deletes events older than the cutoff, and an order's facts with its last event", body: retention),
        Check(name: "spans join orders by attribute and by traceparent, whole traces, in any arrival order", body: spans),
        Check(name: "spans by start time, earliest first, and retention of spans", body: spansByTimeAndRetention),
    ]

    /// A fresh store of the engine, without rollups.
    static func fresh(_ make: Factory) throws -> Store { try make().open() }

    static func expect(_ cond: Bool, _ message: @autoclosure () -> String) throws {
        if !cond { throw Failure(description: message()) }
    }

    static let t0 = RFC3339.parse("2026-11-20T08:00:00Z")!

    static func ev(_ id: String, _ type: String, _ minutes: Int, _ subject: String, source: String = "oms", _ data: JSONValue? = nil) -> CloudEvent {
        CloudEvent(id: id, source: source, type: type, time: t0 + Micros(minutes) * 60_000_000, subject: subject, data: data)
    }

    /// A small estate: orders with full and partial lifecycles, shipment and invoice keys linked in chains.
    public static func workload(orders: Int = 12) -> [CloudEvent] {
        var out: [CloudEvent] = []
        for i in 0..<orders {
            let o = "ORD-\(100 + i)"
            let wh = ["DC-EAST", "DC-WEST", "DC-SOUTH"][i % 3]
            let ch = ["web", "edi"][i % 2]
            let m = i * 7
            out.append(ev("\(o)-acc", "order.accepted", m, o, ["channel": .string(ch), "region": "EU",
                                                                "lines": [["line": 1, "sku": "A", "qty": 5], ["line": 2, "sku": "B", "qty": .number(Double(i % 4))]]]))
            if i % 5 == 4 {
                out.append(ev("\(o)-can", "order.cancelled", m + 3, o, ["reason": "customer"]))
                continue
            }
            out.append(ev("\(o)-alloc", "order.allocated", m + 2, o, source: "allocation",
                          ["warehouse": .string(wh), "lines": [["line": 1, "qty_allocated": 5], ["line": 2, "qty_allocated": .number(Double(i % 3))]]]))
            if i % 4 == 3 { continue }
            out.append(ev("\(o)-rel", "order.released", m + 30, o, source: "wms", ["warehouse": .string(wh)]))
            out.append(ev("\(o)-ship", "order.shipped", m + 90, o, source: "wms",
                          ["warehouse": .string(wh), "carrier": "UPS", "tracking": .string("1Z\(i)"), "links": [.string("shipment:1Z\(i)")]]))
            out.append(ev("\(o)-dlv", "shipment.delivered", m + 2000, "shipment:1Z\(i)", source: "carrier",
                          ["links": [.string("pod:POD-\(i)")]]))
            out.append(ev("\(o)-pod", "pod.captured", m + 2001, "pod:POD-\(i)", source: "carrier"))
            out.append(ev("\(o)-inv", "order.invoiced", m + 3000, o, source: "erp", ["amount": 120.5, "links": [.string("invoice:INV-\(i)")]]))
            out.append(ev("\(o)-pay", "invoice.paid", m + 9000, "invoice:INV-\(i)", source: "finance"))
        }
        return out
    }

    /// The facts of each order, computed from its events (each event once).
    static func referenceFacts(_ events: [CloudEvent]) -> [String: OrderFacts] {
        var facts: [String: OrderFacts] = [:]
        for e in events where e.isOrderEvent { facts[e.subject, default: OrderFacts(orderID: e.subject)].apply(e) }
        return facts
    }

    static func duplicatesAreStoredOnce(_ make: Factory) async throws {
        let store = try fresh(make)
        defer { store.close() }
        let events = workload(orders: 3)
        let first = try await store.append(events + [events[0], events[1]])
        try expect(first == AppendResult(accepted: events.count, duplicates: 2), "first append: \(first)")
        let again = try await store.append(events)
        try expect(again == AppendResult(accepted: 0, duplicates: events.count), "second append: \(again)")
        // Same id from another source is a different event.
        var other = events[0]
        other.source = "other-system"
        let third = try await store.append([other])
        try expect(third.accepted == 1, "same id, other source must be accepted")
        try expect(try store.stats().events == events.count + 1, "stored count")
        let facts = try store.facts(orderID: "ORD-100")
        try expect(facts?.eventCount == events.filter { $0.subject == "ORD-100" }.count + 1, "facts count every distinct event once")
    }

    static func concurrentDuplicates(_ make: Factory) async throws {
        let store = try fresh(make)
        defer { store.close() }
        let events = workload(orders: 20)
        let results = try await withThrowingTaskGroup(of: AppendResult.self) { g in
            for _ in 0..<8 { g.addTask { try await store.append(events) } }
            var total = AppendResult()
            for try await r in g { total = total + r }
            return total
        }
        try expect(results.accepted == events.count && results.duplicates == events.count * 7, "concurrent: \(results)")
    }

    static func reopening(_ make: Factory) async throws {
        let storage = try make()
        let events = workload(orders: 4)
        let spans = [span("a", "1", service: "erp", start: 0, attrs: ["order.id": "ORD-100"]), span("a", "2", parent: "1", service: "wms", start: 5)]
        let window = t0..<(t0 + 86_400_000_000)
        let before: (Trace?, [Span])
        do {
            let store = try storage.open()
            defer { store.close() }
            _ = try await store.append(events)
            _ = try await store.appendSpans(spans)
            before = (try store.trace(key: "shipment:1Z0"), try store.spans(startingIn: window, limit: 10))
        }
        let store = try storage.open()
        defer { store.close() }
        try expect(try store.stats().events == events.count, "events after reopening")
        try expect(try store.trace(key: "shipment:1Z0") == before.0 && before.0?.correlationID == "ORD-100", "the trace after reopening")
        try expect(try store.spans(startingIn: window, limit: 10) == before.1 && before.1.count == 2, "the spans after reopening")
        let again = try await store.append(events.reversed())
        try expect(again == AppendResult(accepted: 0, duplicates: events.count), "events appended before reopening: \(again)")
        let spansAgain = try await store.appendSpans(spans)
        try expect(spansAgain == AppendResult(accepted: 0, duplicates: 2), "spans appended before reopening: \(spansAgain)")
    }

    static func transitiveLinks(_ make: Factory) async throws {
        let store = try fresh(make)
        defer { store.close() }
        _ = try await store.append(workload(orders: 3))
        let byOrder = try store.trace(key: "ORD-100")
        try expect(byOrder != nil, "trace of ORD-100")
        try expect(byOrder!.keys == ["ORD-100", "invoice:INV-0", "pod:POD-0", "shipment:1Z0"], "keys: \(byOrder!.keys)")
        try expect(byOrder!.events.count == 8, "events: \(byOrder!.events.count)")
        try expect(byOrder!.events.map(\.time) == byOrder!.events.map(\.time).sorted(), "events sorted by time")
        for key in ["shipment:1Z0", "pod:POD-0", "invoice:INV-0"] {
            let t = try store.trace(key: key)
            try expect(t == byOrder, "trace via \(key) differs from trace via the order")
        }
        try expect(byOrder!.correlationID == "ORD-100" && byOrder!.state == .invoiced, "correlation and state")
        let other = try store.trace(key: "ORD-101")
        try expect(other?.events.contains { $0.subject == "shipment:1Z0" } == false, "links never leak into another order")
    }

    static func lateLinks(_ make: Factory) async throws {
        let store = try fresh(make)
        defer { store.close() }
        // The carrier's events arrive first; the order's shipment event that links them arrives last.
        let carrier = [ev("d1", "shipment.in_transit", 100, "shipment:1ZLATE", source: "carrier"),
                       ev("d2", "shipment.delivered", 200, "shipment:1ZLATE", source: "carrier", ["links": ["pod:LATE"]])]
        _ = try await store.append(carrier)
        let before = try store.trace(key: "shipment:1ZLATE")
        try expect(before?.correlationID == "pod:LATE" || before?.correlationID == "shipment:1ZLATE", "a group without an order is named by a key of it")
        _ = try await store.append([ev("a", "order.accepted", 0, "ORD-LATE", ["lines": [["line": 1, "qty": 1]]])])
        _ = try await store.append([ev("s", "order.shipped", 90, "ORD-LATE", ["warehouse": "W", "links": ["shipment:1ZLATE"]])])
        for key in ["ORD-LATE", "shipment:1ZLATE", "pod:LATE"] {
            let t = try store.trace(key: key)
            try expect(t?.correlationID == "ORD-LATE", "\(key): correlation \(String(describing: t?.correlationID))")
            try expect(t?.events.count == 4, "\(key): \(t?.events.count ?? -1) events")
        }
    }

    static func unknownKey(_ make: Factory) async throws {
        let store = try fresh(make)
        defer { store.close() }
        _ = try await store.append(workload(orders: 1))
        try expect(try store.trace(key: "ORD-NOPE") == nil, "unknown key must have no trace")
    }

    static func snapshot(_ store: any WaybillStore, _ events: [CloudEvent]) throws -> [String] {
        var out: [String] = []
        for key in Set(events.map(\.subject)).sorted() {
            out.append(try store.trace(key: key).map { $0.documentJSON.jsonString } ?? "nil")
            out.append(try store.facts(orderID: key).map { $0.storageJSON.jsonString } ?? "nil")
        }
        let page = try store.searchOrders(OrderQuery(now: t0 + 86_400_000_000, limit: 1000))
        out.append(page.documentJSON.jsonString)
        return out
    }

    static func orderIndependence(_ make: Factory) async throws {
        let events = workload()
        let reference: [String]
        do {
            let store = try fresh(make)
            defer { store.close() }
            _ = try await store.append(events)
            reference = try snapshot(store, events)
        }
        var rng = SplitMix64(seed: 0x5EED)
        for round in 0..<6 {
            let store = try fresh(make)
            defer { store.close() }
            var stream = events + events.filter { _ in rng.next() % 3 == 0 }
            stream.shuffle(using: &rng)
            // Arrive in several appends of random sizes.
            var i = 0
            while i < stream.count {
                let n = Int(rng.next() % 7) + 1
                _ = try await store.append(Array(stream[i..<min(i + n, stream.count)]))
                i += n
            }
            let got = try snapshot(store, events)
            try expect(got == reference, "round \(round): shuffled and duplicated stream changed the result: "
                       + (zip(got, reference).first { $0 != $1 }.map { "\n got \($0.0)\nwant \($0.1)" } ?? "count"))
        }
    }

    static func searchFiltersAndPaging(_ make: Factory) async throws {
        let store = try fresh(make)
        defer { store.close() }
        let events = workload(orders: 30)
        _ = try await store.append(events)
        let now = t0 + 3 * 86_400_000_000
        func search(_ p: [String: String]) throws -> [String] {
            try store.searchOrders(OrderQuery(parameters: p.merging(["limit": "1000"]) { a, _ in a }, now: now)).orders.map(\.correlationID)
        }
        let all = try search([:])
        try expect(all.count == 30, "all orders: \(all.count)")
        let cancelled = try search(["state": "cancelled"])
        try expect(Set(cancelled) == Set((0..<30).filter { $0 % 5 == 4 }.map { "ORD-\(100 + $0)" }), "cancelled: \(cancelled)")
        let east = try search(["warehouse": "DC-EAST"])
        try expect(east.count == (0..<30).filter { $0 % 3 == 0 && $0 % 5 != 4 }.count, "warehouse DC-EAST: \(east.count)")
        let fromWMS = try search(["source": "wms"])
        try expect(fromWMS.count == (0..<30).filter { $0 % 5 != 4 && $0 % 4 != 3 }.count, "source wms: \(fromWMS.count)")
        let invoiced = try search(["type": "order.invoiced", "channel": "web"])
        try expect(invoiced.count == (0..<30).filter { $0 % 5 != 4 && $0 % 4 != 3 && $0 % 2 == 0 }.count, "type+channel: \(invoiced.count)")
        // Allocated and never released: stuck in allocated.
        let stuck = try search(["state": "allocated", "stuck": "1h"])
        try expect(Set(stuck) == Set((0..<30).filter { $0 % 4 == 3 && $0 % 5 != 4 }.map { "ORD-\(100 + $0)" }), "stuck: \(stuck)")
        let window = try search(["from": RFC3339.format(t0 + 100 * 60_000_000), "to": RFC3339.format(t0 + 120 * 60_000_000)])
        try expect(!window.isEmpty && window.count < 30, "time window: \(window.count)")
        // Paging visits every order once, most recent first.
        var seen: [String] = []
        var cursor: String?
        repeat {
            var p = ["limit": "7"]
            p["cursor"] = cursor
            let page = try store.searchOrders(OrderQuery(parameters: p, now: now))
            seen += page.orders.map(\.correlationID)
            cursor = page.nextCursor
        } while cursor != nil
        try expect(seen == all, "paging: \(seen.count) orders, \(Set(seen).count) distinct")
    }

    static func span(_ trace: String, _ id: String, parent: String? = nil, service: String, start: Int, attrs: [String: JSONValue] = [:],
                     error: Bool = false) -> Span {
        Span(traceID: String(repeating: trace, count: 32), spanID: String(repeating: id, count: 16),
             parentSpanID: parent.map { String(repeating: $0, count: 16) }, service: service, name: "\(service).call",
             start: t0 + Micros(start) * 1_000_000, end: t0 + Micros(start + 2) * 1_000_000, status: error ? .error : .ok,
             attributes: attrs, resourceAttributes: ["service.name": .string(service)])
    }

    static func spans(_ make: Factory) async throws {
        // Trace a: joined through an attribute on one child; its root and sibling carry nothing.
        // Trace b: joined through the traceparent of the order's event. Trace c: a carrier span on the shipment key.
        // Trace d: unrelated.
        let all: [Span] = [
            span("a", "1", service: "orchestrator", start: 0),
            span("a", "2", parent: "1", service: "erp", start: 1, attrs: ["order.id": "ORD-S"], error: true),
            span("a", "3", parent: "1", service: "allocation", start: 3),
            span("b", "4", service: "wms", start: 30),
            span("c", "5", service: "carrier", start: 200, attrs: ["waybill.correlation_id": "shipment:1ZS"]),
            span("d", "6", service: "erp", start: 5, attrs: ["order_id": "ORD-OTHER"]),
        ]
        let events = [
            ev("s-a", "order.accepted", 0, "ORD-S", ["lines": [["line": 1, "qty": 1]]]),
            CloudEvent(id: "s-r", source: "wms", type: "order.released", time: t0 + 30_000_000, subject: "ORD-S",
                       traceparent: "00-" + String(repeating: "b", count: 32) + "-" + String(repeating: "4", count: 16) + "-01", data: [:]),
            ev("s-s", "order.shipped", 90, "ORD-S", ["warehouse": "W", "links": ["shipment:1ZS"]]),
        ]
        var rng = SplitMix64(seed: 77)
        var reference: String?
        for round in 0..<4 {
            let store = try fresh(make)
            defer { store.close() }
            // Spans before, between and after the events, and a resend.
            let shuffled = all.shuffled(using: &rng)
            let cut = Int(rng.next() % UInt64(shuffled.count))
            _ = try await store.appendSpans(Array(shuffled[..<cut]))
            _ = try await store.append(events.shuffled(using: &rng))
            _ = try await store.appendSpans(Array(shuffled[cut...]))
            let again = try await store.appendSpans([all[0]])
            try expect(again == AppendResult(accepted: 0, duplicates: 1), "round \(round): a resent span must be a duplicate")
            let t = try store.trace(key: "shipment:1ZS")
            let ids = t?.spans.map(\.spanID.first!) ?? []
            try expect(Set(ids) == ["1", "2", "3", "4", "5"], "round \(round): spans \(ids)")
            try expect(t?.spans.map(\.start) == t?.spans.map(\.start).sorted(), "spans sorted by start")
            let doc = t!.documentJSON.jsonString
            if let r = reference { try expect(r == doc, "round \(round): arrival order changed the trace") } else { reference = doc }
            try expect(try store.trace(key: "ORD-OTHER")?.spans.count == 1, "a span alone makes a trace for its key")
            // Many keys at once: each key's trace spans, as trace(key:) gives them.
            let keys = ["ORD-S", "shipment:1ZS", "ORD-OTHER", "ORD-NONE"]
            let batch = try store.traceSpans(keys: keys)
            for k in keys {
                try expect(Set(batch[k] ?? []) == Set(try store.trace(key: k)?.spans ?? []), "round \(round): traceSpans of \(k): \(batch[k]?.map(\.spanID) ?? [])")
            }
        }
    }

    static func retention(_ make: Factory) async throws {
        let store = try fresh(make)
        defer { store.close() }
        let events = workload(orders: 5)
        _ = try await store.append(events)
        let cutoff = t0 + 60 * 60_000_000
        let orders = Set(events.map(\.subject)).filter { $0.hasPrefix("ORD-") }
        var before: [String: OrderFacts] = [:]
        for o in orders { before[o] = try store.facts(orderID: o) }
        let removed = try await store.deleteEvents(before: cutoff)
        try expect(removed == events.filter { $0.time < cutoff }.count, "removed \(removed)")
        try expect(try store.stats().events == events.filter { $0.time >= cutoff }.count, "left")
        for o in orders.sorted() {
            let last = events.filter { $0.subject == o }.map(\.time).max()!
            let after = try store.facts(orderID: o)
            try expect(last < cutoff ? after == nil : after == before[o], "\(o): facts go with the last event and are kept whole until then")
        }
        try expect(orders.contains { before[$0]!.firstEventAt! < cutoff && before[$0]!.lastEventAt! >= cutoff }, "the workload has an order the cutoff cuts")
    }

    static func spansByTimeAndRetention(_ make: Factory) async throws {
        let store = try fresh(make)
        defer { store.close() }
        // Trace a spans 40 minutes, so its spans may be stored apart; trace e is keyed on its late span only.
        let all: [Span] = [
            span("a", "1", service: "orchestrator", start: 0, attrs: ["order.id": "ORD-T"]),
            span("a", "2", parent: "1", service: "erp", start: 600),
            span("a", "3", parent: "1", service: "wms", start: 2400),
            span("e", "4", service: "carrier", start: 300),
            span("e", "5", parent: "4", service: "carrier", start: 1800, attrs: ["order.id": "ORD-E"]),
        ]
        _ = try await store.appendSpans(all)
        let byStart = all.sorted { $0.start < $1.start }
        func window(_ a: Int, _ b: Int) -> Range<Micros> { (t0 + Micros(a) * 1_000_000)..<(t0 + Micros(b) * 1_000_000) }
        try expect(try store.spans(startingIn: window(0, 3000), limit: 10) == byStart, "all spans, earliest first")
        try expect(try store.spans(startingIn: window(0, 3000), limit: 2) == Array(byStart.prefix(2)), "limit keeps the earliest")
        try expect(try store.spans(startingIn: window(301, 2400), limit: 10) == [all[1], all[4]], "window [301 s, 2400 s)")
        _ = try await store.deleteEvents(before: t0 + 1000 * 1_000_000)
        try expect(try store.spans(startingIn: window(0, 3000), limit: 10) == [all[4], all[2]], "spans before the cutoff are gone")
        try expect(try store.trace(key: "ORD-T") == nil, "ORD-T's only keyed span is gone, so is its join")
        try expect(try store.trace(key: "ORD-E")?.spans == [all[4]], "ORD-E keeps what is left of its trace")
    }
}
