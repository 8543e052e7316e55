import Foundation
import Testing
import WaybillModel
@testable import WaybillServices
import WaybillTestSupport

/// Checkpoint and resume: a simulator resumed from a snapshot goes on exactly as the original would have.
@Suite struct SimulatorSnapshotTests {
    static let faults = "duplicate=0.05,reorder=0.1,late-arrival=0.03,erp-errors=0.1,short-pick=0.05,"
        + "erp-latency=3s@02:00-03:00,warehouse-outage=DC-EAST@2026-11-16T09:00/5h"

    /// Where two streams first differ (a failed `==` on megabytes would have the test library diff them).
    func firstDifference(_ a: [UInt8], _ b: [UInt8]) -> String? {
        guard a != b else { return nil }
        let i = a.indices.first { $0 >= b.count || a[$0] != b[$0] } ?? a.count
        return "lengths \(a.count) and \(b.count), first difference at byte \(i): "
            + String(decoding: a[max(0, i - 80)..<min(a.count, i + 80)], as: UTF8.self)
    }

    /// Through the bytes a store keeps, not just the value.
    func persisted(_ sim: Simulator) throws -> SimulatorSnapshot {
        try SimulatorSnapshot(decoding: sim.snapshot().encoded())
    }

    @Test(arguments: [false, true])
    func resumingFromCheckpointsGivesTheUninterruptedStreamByteForByte(textSink: Bool) throws {
        let config = SimulatorConfig.batch(orders: 600, seed: 9, days: 2, start: t0, faults: try FaultPlan.parse(Self.faults))
        // Cuts in the middle of the arrivals, inside the outage and the ERP latency window, and in the tail.
        let cuts = [t0 + 2 * hour + 30 * minute, t0 + 11 * hour + 37 * minute + 3 * second, t0 + 26 * hour, t0 + 50 * hour]
        func sink() -> TelemetrySink { textSink ? TextRecordingSink() : RecordingSink() }
        func output(_ s: TelemetrySink) -> [UInt8] { (s as? TextRecordingSink)?.text ?? (s as! RecordingSink).bytes }
        func spans(_ s: TelemetrySink) -> [Span] { (s as? RecordingSink)?.spans ?? [] }

        let whole = sink()
        let reference = try Simulator(config, sink: whole)
        reference.run()

        var stream: [UInt8] = [], streamSpans: [Span] = []
        var current = sink()
        var sim = try Simulator(config, sink: current)
        var sawDelayedDelivery = false
        for cut in cuts {
            sim.advance(to: cut)
            let snapshot = try persisted(sim)
            #expect(!snapshot.openWorkflows.isEmpty, "workflows are in flight at \(RFC3339.format(cut))")
            #expect(snapshot.now == cut)
            sawDelayedDelivery = sawDelayedDelivery || snapshot.state.queue.pending.contains {
                switch $0.payload {
                case .deliverText, .deliverEvent: return true
                default: return false
                }
            }
            stream += output(current)
            streamSpans += spans(current)
            current = sink()
            sim = try Simulator(resuming: snapshot, sink: current)
        }
        sim.run()
        stream += output(current)
        streamSpans += spans(current)

        #expect(sawDelayedDelivery, "some checkpoint held events waiting for a delayed delivery")
        #expect(stream.count > 600 * 8 * 100)
        #expect(firstDifference(stream, output(whole)) == nil)
        let sameSpans = streamSpans == spans(whole)
        #expect(sameSpans, "spans differ")
        #expect(sim.stats == reference.stats)
        #expect(sim.stats.openOrders == 0)
    }

    @Test func openEndedServicesResumeWorkflowsAndKeepIdempotencyKeys() throws {
        var config = SimulatorConfig.continuous(ordersPerDay: 3000, seed: 4, start: t0, faults: try FaultPlan.parse("short-pick=0.03"))
        config.idempotencyRetention = 24 * hour
        let order = OrderRequest(orderID: "API-1", idempotencyKey: "key-1", channel: "api", customer: "C", region: "northeast",
                                 promisedShipBy: t0 + 30 * hour, lines: [OrderLineRequest(line: 1, sku: "SKU-10001", qty: 2, unitPrice: 5)])
        let a = RecordingSink()
        let original = try Simulator(config, sink: a)
        original.advance(to: t0 + 6 * hour)
        let first = original.submitExternal(order)
        #expect(first.orderID == "API-1" && !first.duplicate)
        original.advance(to: t0 + 6 * hour + 10 * minute)
        let snapshot = try persisted(original)
        let emittedBefore = a.events.count
        let status = try #require(snapshot.openWorkflows.first { $0.orderID == "API-1" }).status
        #expect(snapshot.idempotencyKeys > 1)

        let b = RecordingSink()
        let resumed = try Simulator(resuming: snapshot, sink: b)
        let retry = OrderRequest(orderID: "API-2", idempotencyKey: "key-1", channel: "api", customer: "C", region: "west",
                                 promisedShipBy: t0, lines: order.lines)
        let again = resumed.submitExternal(retry)
        #expect(again.orderID == "API-1" && again.duplicate, "the key outlives the restart")
        _ = original.submitExternal(retry)
        original.advance(to: t0 + 40 * hour)
        resumed.advance(to: t0 + 40 * hour)
        let after = b.events.filter { $0.subject == "API-1" }.map(\.type)
        #expect(after.contains("order.shipped"), "API-1 went on from \(status) to \(after)")
        #expect(!after.contains("order.accepted"), "nothing before the checkpoint is emitted again")
        #expect(!b.events.isEmpty)
        #expect(firstDifference(b.bytes, a.events[emittedBefore...].flatMap { $0.raw + [0x0A] }) == nil)
        let sameSpans = b.spans == Array(a.spans.suffix(b.spans.count))
        #expect(sameSpans, "spans differ")
        #expect(resumed.stats == original.stats)
    }

    @Test func aSnapshotOfAnotherFormatIsRefused() throws {
        let sim = try Simulator(.batch(orders: 20, seed: 1, days: 1, start: t0), sink: RecordingSink())
        sim.advance(to: t0 + 3 * hour)
        var json = try #require(try JSONSerialization.jsonObject(with: Data(sim.snapshot().encoded())) as? [String: Any])
        json["format"] = SimulatorSnapshot.currentFormat + 1
        let bytes = Array(try JSONSerialization.data(withJSONObject: json))
        #expect(throws: SimulatorSnapshotError.format(found: SimulatorSnapshot.currentFormat + 1, expected: SimulatorSnapshot.currentFormat)) {
            try SimulatorSnapshot(decoding: bytes)
        }
    }
}
