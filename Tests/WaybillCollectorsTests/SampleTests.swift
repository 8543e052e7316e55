import Foundation
import Testing
import WaybillModel
@testable import WaybillCollectors

/// Every file in `collectors/samples` goes through the real decoders without a rejection.
@Suite struct CollectorSampleTests {
    static var samples: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("collectors/samples")
    }

    func bytes(_ name: String) throws -> [UInt8] { Array(try Data(contentsOf: Self.samples.appendingPathComponent(name))) }

    @Test func lifecycleSampleIsValidAndLinksItsKeys() throws {
        let d = try EventDecoder.decode(body: bytes("order-lifecycle.ndjson"), contentType: "application/x-ndjson", contentEncoding: nil)
        #expect(d.rejected.isEmpty, "\(d.rejected)")
        #expect(d.events.count == 14)
        var facts = OrderFacts(orderID: "SO-SAMPLE-1")
        for e in d.events where e.subject == "SO-SAMPLE-1" { facts.apply(e) }
        #expect(facts.state == .invoiced)
        #expect(facts.unitsOrdered == 5 && facts.unitsAllocatedFirst == 4)
        #expect(facts.onTime == true)
        #expect(Set(d.events.flatMap(\.links)) == ["shipment:1ZSAMPLE1", "invoice:INV-SAMPLE-1"])
    }

    @Test func batchSampleIsValid() throws {
        let d = try EventDecoder.decode(body: bytes("batch.json"), contentType: "application/cloudevents-batch+json", contentEncoding: nil)
        #expect(d.rejected.isEmpty && d.events.count == 2)
    }

    @Test func otlpSampleJoinsTheERPEventByTraceparent() throws {
        let spans = try OTLPJSON.decode(bytes("otlp-trace.json"))
        #expect(spans.rejected.isEmpty && spans.spans.count == 2)
        let events = try EventDecoder.decode(body: bytes("order-lifecycle.ndjson"), contentType: "application/x-ndjson", contentEncoding: nil).events
        let traceIDs = Set(events.compactMap(\.traceID))
        #expect(spans.spans.allSatisfy { traceIDs.contains($0.traceID) })
        #expect(spans.spans.contains { $0.status == .error && $0.service == "erp" })
    }
}
