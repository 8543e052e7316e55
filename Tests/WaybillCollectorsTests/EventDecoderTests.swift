import Testing
import WaybillModel
@testable import WaybillCollectors

func eventJSON(_ id: String, subject: String = "ORD-1", time: String = "2026-11-23T14:00:00Z") -> String {
    #"{"specversion":"1.0","id":"\#(id)","source":"oms","type":"order.validated","time":"\#(time)","subject":"\#(subject)"}"#
}

@Suite struct EventDecoderTests {
    @Test func singleEvent() throws {
        let d = try EventDecoder.decode(body: Array(eventJSON("e1").utf8), contentType: "application/cloudevents+json; charset=utf-8", contentEncoding: nil)
        #expect(d.events.map(\.id) == ["e1"])
        #expect(d.rejected.isEmpty)
    }

    @Test func batchKeepsGoodEventsBesideBadOnes() throws {
        let body = "[" + [eventJSON("e1"), #"{"specversion":"1.0"}"#, eventJSON("e3", time: "2026-02-30T00:00:00Z"), eventJSON("e4")].joined(separator: ",") + "]"
        let d = try EventDecoder.decode(body: Array(body.utf8), contentType: "application/cloudevents-batch+json", contentEncoding: nil)
        #expect(d.events.map(\.id) == ["e1", "e4"])
        #expect(d.rejected.map(\.index) == [1, 2])
        #expect(d.rejected[0].error.hasPrefix("id: "))
        #expect(d.rejected[1].error.hasPrefix("time: "))
        // The stored raw text is the element exactly as sent.
        #expect(String(decoding: d.events[0].raw, as: UTF8.self) == eventJSON("e1"))
    }

    @Test func ndjsonRejectsLinesByIndexAndSkipsBlankLines() throws {
        let body = [eventJSON("e1"), "", "{not json", eventJSON("e4"), "[1]"].joined(separator: "\n") + "\n"
        let d = try EventDecoder.decode(body: Array(body.utf8), contentType: "application/x-ndjson", contentEncoding: nil)
        #expect(d.events.map(\.id) == ["e1", "e4"])
        #expect(d.rejected.map(\.index) == [2, 4])
    }

    @Test func gzipBodies() throws {
        let body = Gzip.deflate(Array(("[" + eventJSON("e1") + "," + eventJSON("e2") + "]").utf8))
        let d = try EventDecoder.decode(body: body, contentType: "application/json", contentEncoding: "gzip")
        #expect(d.events.count == 2)
    }

    @Test func gzipBombIsTooLargeNotAnOutOfMemory() {
        let bomb = Gzip.deflate([UInt8](repeating: 0x20, count: 64 << 20))
        #expect(bomb.count < 200_000)
        #expect(throws: BodyError.tooLarge(limit: 16 << 20)) {
            try EventDecoder.decode(body: bomb, contentType: "application/json", contentEncoding: "gzip")
        }
    }

    @Test func wholeBodyErrorsMapToStatuses() {
        func status(_ body: String, _ ct: String?, _ ce: String? = nil) -> Int? {
            do { _ = try EventDecoder.decode(body: Array(body.utf8), contentType: ct, contentEncoding: ce); return nil } catch { return error.httpStatus }
        }
        #expect(status(eventJSON("e"), "text/plain") == 415)
        #expect(status(eventJSON("e"), nil) == 415)
        #expect(status(eventJSON("e"), "application/json", "br") == 415)
        #expect(status("{oops", "application/json") == 400)
        #expect(status("", "application/x-ndjson") == 400)
        #expect(status("nope\nnada", "application/x-ndjson") == 400)
        #expect(status(eventJSON("e"), "application/cloudevents-batch+json") == 400)
        #expect(status("42", "application/json") == 400)
        #expect(status("x", "application/json", "gzip") == 400)
        #expect(status(String(repeating: "[", count: 50_000), "application/json") == 400)
    }

    @Test func bodyOverTheLimitBeforeDecompression() {
        #expect(throws: BodyError.tooLarge(limit: 10)) {
            try EventDecoder.decode(body: Array(eventJSON("e").utf8), contentType: "application/json", contentEncoding: nil, limit: 10)
        }
    }
}
