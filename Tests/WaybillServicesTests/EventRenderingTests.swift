import Testing
import WaybillModel
@testable import WaybillServices
import WaybillTestSupport

@Suite struct EventRenderingTests {
    static let order = sampleOrder("SO-\"quoted\"\\1", lines: [("SKU-A", 2), ("SKU-Ü", 1)])
    static let events: [OrderEvent] = [
        .accepted(order), .validated, .creditChecked(approved: true), .creditChecked(approved: false),
        .allocated(warehouse: "DC-EAST", lines: [AllocatedLineEntry(line: 1, sku: "SKU-A", qtyAllocated: 2, warehouse: "DC-EAST"),
                                                 AllocatedLineEntry(line: 2, sku: "SKU-B", qtyAllocated: 0, warehouse: nil)]),
        .allocated(warehouse: nil, lines: [AllocatedLineEntry(line: 1, sku: "SKU-A", qtyAllocated: 0, warehouse: nil)]),
        .backordered(lines: [AllocationLine(line: 2, sku: "SKU-B", qty: 1)]), .released(warehouse: "DC-EAST"),
        .picked(warehouse: "DC-EAST"), .shortPicked(warehouse: "DC-EAST", lines: [LineShortage(line: 1, qty: 1)]),
        .packed(warehouse: "DC-EAST"),
        .shipped(warehouse: "DC-EAST", carrier: "UPS", tracking: "1Z999", lines: [LineShortage(line: 1, qty: 2)]),
        .delivered, .invoiced(invoice: "INV-1", amount: 29.97, currency: "USD"), .invoiced(invoice: "INV-2", amount: 30, currency: "EUR"),
        .cancelled(reason: "customer\nrequest"), .exception(reason: "erp down", stage: "credit_check"),
    ]

    /// The hand-written renderer must give exactly the bytes `CloudEvent.init` gives, so both sink paths agree.
    @Test(arguments: events) func renderedTextMatchesTheModelsRendering(event: OrderEvent) throws {
        let ctx = TraceContext(traceHi: 0x0123_4567_89AB_CDEF, traceLo: 0xFEDC_BA98_7654_3210, spanID: 0x00AB_CDEF_0000_0001)
        let time = t0 + 1_234_567
        var w = JSONTextWriter()
        let source = event.source(in: .standard)
        w.event(idBase: "SO-1", idSeq: 7, source: source, type: event.type, time: time, subject: "SO-1", trace: ctx,
                hasData: event.hasData) { $0.orderEventData(event) }
        let reference = CloudEvent(id: "SO-1-7", source: source, type: event.type, time: time, subject: "SO-1",
                                   traceparent: ctx.traceparent, data: event.data)
        #expect(String(decoding: w.bytes, as: UTF8.self) == String(decoding: reference.raw, as: UTF8.self))
        // And it is a valid event for the collectors, with the traceparent's trace id.
        let parsed = try CloudEvent.validate(JSONParser.parse(w.bytes), raw: w.bytes)
        #expect(parsed.traceID == ctx.traceIDHex)
        #expect(parsed.data == event.data)
    }

    @Test func shipmentEventsUseTheTrackingKeyAsSubject() throws {
        let e = ShipmentEvent.inTransit(carrier: "UPS", tracking: "1Z9", location: "DC-EAST gateway")
        var w = JSONTextWriter()
        w.event(idBase: "1Z9", idSeq: 1, source: "carrier", type: e.type, time: t0, subject: e.subject, trace: nil, hasData: true) {
            $0.shipmentEventData(e)
        }
        let reference = CloudEvent(id: "1Z9-1", source: "carrier", type: e.type, time: t0, subject: "shipment:1Z9", data: e.data)
        #expect(w.bytes == reference.raw)
    }

    @Test func timesRenderExactlyLikeRFC3339Format() {
        var rng = Xoshiro256(seed: 7)
        var w = JSONTextWriter()
        for i in 0..<3000 {
            var t = Micros(rng.below(4_000_000_000)) * 1_000_000 + (i % 3 == 0 ? 0 : i % 3 == 1 ? Micros(rng.below(1000)) * 1000 : Micros(rng.below(1_000_000)))
            if i == 0 { t = 0 }
            w.reset()
            w.time(t)
            #expect(w.bytes == Array(("\"" + RFC3339.format(t) + "\"").utf8), "\(t)")
        }
    }

    @Test func integersAndNumbersRenderLikeJSONWriter() {
        for v in [0, 1, 9, 10, 99, 100, 12345, -1, -987654321, Int(Int32.max)] {
            var w = JSONTextWriter()
            w.int(v)
            #expect(w.bytes == JSONValue.number(Double(v)).jsonBytes)
        }
        for d in [0.5, 29.97, 1e20, 123.456, 1.0 / 3.0] {
            var w = JSONTextWriter()
            w.double(d)
            #expect(w.bytes == JSONValue.number(d).jsonBytes)
        }
    }
}
