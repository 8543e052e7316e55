import Foundation
import Testing
import WaybillModel
@testable import WaybillServices
import WaybillTestSupport

@Suite struct SimulatorTests {
    func run(_ config: SimulatorConfig) throws -> (RecordingSink, Simulator) {
        let sink = RecordingSink()
        let sim = try Simulator(config, sink: sink)
        sim.run()
        return (sink, sim)
    }

    func config(orders: Int = 300, seed: UInt64 = 42, days: Double = 1, faults: String = "") throws -> SimulatorConfig {
        .batch(orders: orders, seed: seed, days: days, start: t0, faults: try FaultPlan.parse(faults))
    }

    @Test func sameSeedGivesIdenticalBytesAndDifferentSeedDifferentOnes() throws {
        let faults = "duplicate=0.05,reorder=0.1,late-arrival=0.02,erp-errors=0.1,short-pick=0.05"
        let a = try run(config(faults: faults)).0
        let b = try run(config(faults: faults)).0
        let c = try run(config(seed: 43, faults: faults)).0
        #expect(!a.events.isEmpty)
        #expect(a.bytes == b.bytes)
        #expect(a.spans == b.spans)
        #expect(a.bytes != c.bytes)
        #expect(Set(a.events.map(\.subject)).isDisjoint(with: Set(c.events.map(\.subject))), "ids derive from the seed")
    }

    @Test func textSinkAndEventSinkGetTheSameBytes() throws {
        let cfg = try config(orders: 200, faults: "duplicate=0.05,reorder=0.1")
        let events = try run(cfg).0
        let text = TextRecordingSink()
        let sim = try Simulator(cfg, sink: text)
        sim.run()
        #expect(text.text == events.bytes)
        #expect(sim.stats.spansEmitted == 0, "a text sink that wants no spans gets none built")
    }

    @Test func steppingTheClockInSmallIncrementsGivesTheSameStream() throws {
        let cfg = try config(orders: 200, faults: "reorder=0.2,late-arrival=0.05,duplicate=0.05")
        let whole = try run(cfg).0
        let sink = RecordingSink()
        let sim = try Simulator(cfg, sink: sink)
        var t = t0
        while !sim.isFinished {
            t += 7 * minute + 13 * second
            sim.advance(to: t)
            #expect(sim.now == t)
            #expect(sink.events.last.map { $0.time <= t } ?? true)
        }
        #expect(sink.bytes == whole.bytes)
    }

    @Test func openEndedDemandKeepsGeneratingInRealTime() throws {
        let sink = RecordingSink()
        let sim = try Simulator(.continuous(ordersPerDay: 2000, seed: 5, start: t0), sink: sink)
        sim.advance(to: t0 + 6 * hour)
        let backfill = sink.events.count
        #expect(backfill > 0)
        sim.advance(to: t0 + 6 * hour + 30 * second)
        sim.advance(to: t0 + 6 * hour + 60 * second)
        #expect(sink.events.count >= backfill)
        sim.advance(to: t0 + 9 * hour)
        #expect(sink.events.count > backfill)
        #expect(sink.events.allSatisfy { $0.time <= t0 + 9 * hour })
        #expect(!sim.isFinished)
        // Orders in flight can be inspected and persisted.
        let open = sim.openWorkflows
        #expect(open.count == sim.stats.openOrders)
        #expect(open.allSatisfy { !$0.status.isFinal })
        let decoded = try JSONDecoder().decode([OrderWorkflow].self, from: JSONEncoder().encode(open))
        #expect(decoded == open)
    }

    /// A simulated day: every order's events follow the lifecycle and carry what the KPIs read.
    @Test func aSimulatedDayFollowsTheLifecycleAndFeedsTheKPIs() throws {
        let (sink, sim) = try run(config(orders: 400))
        #expect(sim.stats.ordersAccepted == 400)
        #expect(sim.stats.openOrders == 0)
        #expect(sim.stats.ordersInvoiced + sim.stats.ordersCancelled + sim.stats.ordersExcepted == 400)
        var facts: [String: OrderFacts] = [:]
        var bySubject: [String: [CloudEvent]] = [:]
        for e in sink.events {
            // Every event is valid for the collectors, has a traceparent, and its text round-trips.
            let parsed = try CloudEvent.validate(JSONParser.parse(e.raw), raw: e.raw)
            #expect(parsed == e)
            #expect(e.traceID != nil)
            bySubject[e.subject, default: []].append(e)
            if e.isOrderEvent { facts[e.subject, default: OrderFacts(orderID: e.subject)].apply(e) }
        }
        let rank = ["order.accepted": 0, "order.validated": 1, "order.credit_checked": 2, "order.allocated": 3, "order.backordered": 3,
                    "order.released": 4, "order.short_picked": 5, "order.picked": 5, "order.packed": 6, "order.shipped": 7,
                    "order.delivered": 8, "order.invoiced": 9, "order.cancelled": 10, "order.exception": 10]
        #expect(facts.count == 400)
        var invoiced = 0
        for (id, f) in facts {
            let events = bySubject[id]!
            #expect(events.first?.type == "order.accepted")
            // Event times never go backwards along the lifecycle (re-allocations may interleave).
            let firstOf = Dictionary(events.map { ($0.type, $0.time) }, uniquingKeysWith: min)
            for (a, ta) in firstOf { for (b, tb) in firstOf where rank[a]! < rank[b]! && a != "order.backordered" && b != "order.backordered" {
                if !(a == "order.allocated" || b == "order.allocated") { #expect(ta <= tb, "\(id): \(a) after \(b)") }
            } }
            #expect(f.channel != nil && f.region != nil && f.accepted?.promisedShipBy != nil)
            #expect((f.unitsOrdered ?? 0) > 0)
            if f.types.contains("order.invoiced") {
                invoiced += 1
                #expect(f.allocatedAt != nil && f.releasedAt != nil && f.shippedAt != nil)
                #expect((f.allocationDelay ?? -1) >= 0)
                #expect((f.shipmentLag ?? -1) > 0)
                #expect(f.onTime != nil)
                #expect(f.shipmentWarehouse != nil)
                // The primary warehouse is named whenever the first allocation placed anything.
                #expect((f.unitsAllocatedFirst ?? 0) == 0 || f.allocationWarehouse != nil)
                // Shipped events link the tracking key, and the carrier reports under that key.
                let shipped = events.filter { $0.type == "order.shipped" }
                for s in shipped {
                    let link = try #require(s.links.first)
                    #expect(link.hasPrefix("shipment:"))
                    let carrier = bySubject[link] ?? []
                    #expect(carrier.map(\.type).sorted() == ["shipment.delivered", "shipment.in_transit"])
                    #expect(carrier.allSatisfy { $0.source == "carrier" })
                }
                let inv = try #require(events.first { $0.type == "order.invoiced" })
                #expect(inv.links.first?.hasPrefix("invoice:INV-") == true)
                #expect((inv.data?["amount"]?.doubleValue ?? 0) > 0)
            }
            // The first allocation lists every ordered line, unallocated ones with 0.
            if let first = f.firstAllocation, let accepted = f.accepted {
                #expect(Set(first.lines.map(\.line)) == Set(accepted.lines.map(\.line)))
            }
        }
        #expect(invoiced > 350)
        // Spans: every service shows up, with parent links and the order id.
        let services = Set(sink.spans.map(\.service))
        #expect(services.isSuperset(of: ["orchestrator", "allocation", "erp", "tms", "carrier"]))
        #expect(services.contains { $0.hasPrefix("wms-") })
        let orderSpans = sink.spans.filter { $0.service != "carrier" && $0.name != "order.submit" }
        #expect(orderSpans.allSatisfy { $0.attributes["order.id"]?.stringValue != nil })
        let roots = sink.spans.filter { $0.name == "order.fulfil" }
        #expect(roots.count == 400)
        let rootIDs = Set(roots.map(\.spanID))
        #expect(orderSpans.filter { $0.parentSpanID == nil }.allSatisfy { $0.name == "order.fulfil" })
        #expect(orderSpans.filter { $0.name == "erp.validate" }.allSatisfy { rootIDs.contains($0.parentSpanID ?? "") })
        // Events join their spans by trace id.
        let traceIDs = Set(sink.spans.map(\.traceID))
        #expect(sink.events.allSatisfy { traceIDs.contains($0.traceID ?? "") })
    }

    @Test func duplicatesAndReorderingShowInTheStreamButNotInTheFacts() throws {
        let clean = try run(config(orders: 200)).0
        let faulty = try run(config(orders: 200, faults: "duplicate=0.05,reorder=0.1,late-arrival=0.03")).0
        let ids = faulty.events.map { $0.source + "/" + $0.id }
        #expect(Set(ids).count < ids.count, "some events are delivered twice")
        #expect(Set(ids).count == Set(clean.events.map { $0.source + "/" + $0.id }).count)
        let outOfOrder = zip(faulty.events, faulty.events.dropFirst()).filter { $0.time > $1.time }.count
        #expect(outOfOrder > 0)
        #expect(zip(clean.events, clean.events.dropFirst()).allSatisfy { $0.time <= $1.time })
        // Demand is the same with and without delivery faults: the same orders, the same first allocations.
        func firstAllocations(_ s: RecordingSink) -> [String: String] {
            var f: [String: OrderFacts] = [:]
            var seen = Set<String>()
            for e in s.events where e.isOrderEvent && seen.insert(e.source + "/" + e.id).inserted { f[e.subject, default: OrderFacts(orderID: e.subject)].apply(e) }
            return f.mapValues { $0.allocationWarehouse ?? "-" }
        }
        #expect(firstAllocations(clean) == firstAllocations(faulty))
    }

    @Test func warehouseOutageReroutesAndDelaysAllocation() throws {
        let window = "2026-11-16T14:00/6h"
        let (clean, _) = try run(config(orders: 800))
        let (sink, sim) = try run(config(orders: 800, faults: "warehouse-outage=DC-EAST@" + window))
        let start = t0 + 14 * hour, end = t0 + 20 * hour
        func allocations(_ s: RecordingSink) -> [(CloudEvent, String?)] {
            s.events.filter { $0.type == "order.allocated" }.map { ($0, $0.data?["warehouse"]?.stringValue) }
        }
        // Once monitoring has noticed the outage, nothing is allocated to the warehouse that is down.
        let noticed = start + Simulator.outageDetection + 20 * second
        let during = allocations(sink).filter { $0.0.time >= noticed && $0.0.time < end }
        #expect(!during.isEmpty)
        #expect(during.allSatisfy { $0.1 != "DC-EAST" })
        // Before that, orders routed there bounce at release and are re-allocated elsewhere (compensation).
        #expect(sim.stats.releaseRejections > 0)
        #expect(sink.spans.contains { $0.service == "wms-east" && $0.name == "wms.release" && $0.statusMessage == "warehouse unavailable" })
        let bounced = Set(sink.events.filter { $0.type == "order.allocated" && $0.time >= start && $0.time < noticed && $0.data?["warehouse"] == "DC-EAST" }.map(\.subject))
        #expect(!bounced.isEmpty)
        for order in bounced {
            let later = sink.events.filter { $0.subject == order && $0.type == "order.allocated" && $0.time > start + minute }
            #expect(later.contains { $0.data?["warehouse"] != "DC-EAST" }, "\(order) is re-routed")
        }
        #expect(allocations(clean).contains { $0.0.time >= start && $0.0.time < end && $0.1 == "DC-EAST" })
        // Allocation waits for the inventory sync timeout, and the timeout is an error span of the warehouse.
        #expect(sink.spans.contains { $0.service == "wms-east" && $0.name == "inventory.sync" && $0.status == .error })
        func meanDelay(_ s: RecordingSink) -> Double {
            var accepted: [String: Micros] = [:], delays: [Double] = []
            for e in s.events where e.type == "order.accepted" { accepted[e.subject] = e.time }
            var seen = Set<String>()
            for e in s.events where e.type == "order.allocated" && e.time >= start && e.time < end && seen.insert(e.subject).inserted {
                if let a = accepted[e.subject] { delays.append(Double(e.time - a) / 1e6) }
            }
            return delays.reduce(0, +) / Double(max(1, delays.count))
        }
        #expect(meanDelay(sink) > meanDelay(clean) + 10)
        // Nothing ships from DC-EAST during the outage.
        #expect(!sink.events.contains { $0.type == "order.shipped" && $0.time >= start && $0.time < end && $0.data?["warehouse"] == "DC-EAST" })
        #expect(sim.stats.ordersAccepted == 800)
    }

    @Test func erpTroubleShowsAsErrorSpansRetriesAndLongerValidation() throws {
        let (clean, _) = try run(config(orders: 300))
        let (sink, sim) = try run(config(orders: 300, faults: "erp-errors=0.3,erp-latency=3s"))
        #expect(sim.stats.erpFailures > 0)
        let errorSpans = sink.spans.filter { $0.status == .error && $0.name.hasPrefix("erp.") }
        #expect(!errorSpans.isEmpty)
        #expect(errorSpans.contains { $0.statusMessage == "HTTP 503 Service Unavailable" })
        #expect(errorSpans.contains { $0.statusMessage?.hasPrefix("timeout") == true })
        func meanValidation(_ s: RecordingSink) -> Double {
            var accepted: [String: Micros] = [:], d: [Double] = []
            for e in s.events where e.type == "order.accepted" { accepted[e.subject] = e.time }
            for e in s.events where e.type == "order.validated" { if let a = accepted[e.subject] { d.append(Double(e.time - a)) } }
            return d.reduce(0, +) / Double(max(1, d.count))
        }
        #expect(meanValidation(sink) > 2 * meanValidation(clean))
    }

    @Test func breakerOpensUnderHeavyERPFailureAndSomeOrdersEndInException() throws {
        let (sink, sim) = try run(config(orders: 300, faults: "erp-errors=0.8"))
        #expect(sim.stats.breakerRejections > 0)
        #expect(sink.spans.contains { $0.service == "orchestrator" && $0.statusMessage == "circuit open" })
        #expect(sim.stats.ordersExcepted > 0)
        #expect(sink.events.contains { $0.type == "order.exception" && $0.data?["stage"] != nil && $0.data?["reason"] != nil })
        #expect(sim.stats.openOrders == 0)
    }

    @Test func shortPicksCompensateAndStockBalances() throws {
        let (sink, sim) = try run(config(orders: 300, faults: "short-pick=0.2,erp-errors=0.3,warehouse-outage=DC-CENTRAL@2026-11-16T12:00/3h"))
        #expect(sim.stats.ordersExcepted + sim.stats.ordersCancelled + sim.stats.ordersInvoiced == 300)
        #expect(sim.stats.shortPicks > 0)
        let shorts = sink.events.filter { $0.type == "order.short_picked" }
        #expect(!shorts.isEmpty)
        // The order whose pick came up short is allocated again afterwards.
        let s = shorts[0]
        #expect(sink.events.contains { $0.subject == s.subject && $0.type == "order.allocated" && $0.time > s.time })
        // When everything has finished, nothing is left reserved.
        #expect(sim.inventory.allPositions.allSatisfy { $0.position.reserved == 0 })
        #expect(sim.inventory.allPositions.allSatisfy { $0.position.onHand >= 0 })
    }

    @Test func invalidConfigIsRefusedWithTheField() {
        #expect(throws: SimulatorConfigError.invalid(field: "days", rule: "must be > 0 when orders is given")) {
            _ = try Simulator(SimulatorConfig(start: t0, orders: 10, days: nil), sink: RecordingSink())
        }
        var c = SimulatorConfig.batch(orders: 10, seed: 1, days: 1, start: t0)
        c.faults.outages = [WarehouseOutage(warehouse: "DC-MOON", window: .always)]
        #expect(throws: SimulatorConfigError.self) { _ = try Simulator(c, sink: RecordingSink()) }
    }

    @Test func ndjsonFileSinkWritesOneEventPerLine() throws {
        let path = NSTemporaryDirectory() + "waybill-sim-\(getpid()).ndjson"
        let spans = path + ".spans"
        defer { unlink(path); unlink(spans) }
        let sink = try NDJSONFileSink(path: path, spansPath: spans)
        let sim = try Simulator(config(orders: 50), sink: sink)
        sim.run()
        try sink.close()
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(lines.count == sim.stats.eventsEmitted)
        #expect(sink.eventsWritten == sim.stats.eventsEmitted)
        #expect(lines.allSatisfy { (try? JSONParser.parse(String($0))) != nil })
        let spanLines = try String(contentsOfFile: spans, encoding: .utf8).split(separator: "\n")
        #expect(spanLines.count == sim.stats.spansEmitted)
        #expect(throws: SinkError.self) { _ = try NDJSONFileSink(path: "/nonexistent-dir/x.ndjson") }
    }
}
