import Foundation
import Testing
import WaybillModel
@testable import WaybillCollectors

@Suite struct OTLPProtobufTests {
    static var fixture: [UInt8] {
        Array(try! Data(contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/otlp-trace.pb")))
    }

    @Test func decodesEveryFieldTypeFromTheOfficialEncoding() throws {
        let d = try OTLPProtobuf.decode(Self.fixture)
        #expect(d.spans.count == 2)
        #expect(d.rejected.map(\.path) == ["resourceSpans[0].scopeSpans[0].spans[2]"])
        let s = d.spans[0]
        #expect(s.traceID == "5b8efff798038103d269b633813fc60c")
        #expect(s.spanID == "eee19b7ec3c1b174")
        #expect(s.parentSpanID == nil)
        #expect(s.service == "allocation")
        #expect(s.name == "allocate")
        #expect(s.start == 1_795_442_400_000_000 && s.end == 1_795_442_400_125_000)
        #expect(s.status == .error && s.statusMessage == "no stock")
        #expect(s.attributes["order.id"] == "ORD-PB")
        #expect(s.attributes["retry"] == true)
        #expect(s.attributes["lines"] == -3)
        #expect(s.attributes["score"] == 0.75)
        #expect(s.attributes["tags"] == ["a", 7])
        #expect(s.attributes["nested"] == ["k": "v"])
        #expect(s.attributes["raw"] == "01ff")
        #expect(s.resourceAttributes["host.cpus"] == 2)
        #expect(s.events == [["time": "2026-11-23T14:00:00.100Z", "name": "retry", "attributes": ["attempt": 2]]])
        #expect(s.links == [["trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331", "attributes": ["why": "batch"]]])
        #expect(d.spans[1].parentSpanID == "eee19b7ec3c1b174")
        #expect(d.spans[1].status == .ok)
    }

    @Test func truncatedAndMalformedInputIsAnErrorNeverACrash() {
        let full = Self.fixture
        for cut in stride(from: 1, to: full.count, by: 7) {
            // Either a clean error or fewer spans; never a trap.
            _ = try? OTLPProtobuf.decode(Array(full[0..<cut]))
        }
        #expect(throws: BodyError.self) { try OTLPProtobuf.decode([0x0A, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F]) }
        #expect(throws: BodyError.self) { try OTLPProtobuf.decode([0x0B]) }
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<500 {
            let junk = (0..<Int.random(in: 0..<64, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            _ = try? OTLPProtobuf.decode(junk)
        }
    }

    @Test func partialSuccessResponseEncodesCountAndMessage() {
        #expect(OTLPProtobuf.response(rejected: 0, message: "").isEmpty)
        #expect(OTLPProtobuf.response(rejected: 2, message: "ab") == [0x0A, 0x06, 0x08, 0x02, 0x12, 0x02, 0x61, 0x62])
    }
}
