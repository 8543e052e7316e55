import Foundation
import Testing
import WaybillModel
@testable import WaybillCollectors

/// NDJSON lines are decoded in one pass (`CloudEvent.decode`: the members straight into their slots, no
/// dictionary). It must give exactly what parsing the line into a `JSONValue` and then
/// `CloudEvent.validate` gives: the same event (raw bytes included), or the same error text, field and
/// source, for valid events and for thousands of broken ones.
@Suite struct EventDecodeOnePassTests {
    /// Events as the interleaved benchmark data sends them (every attribute kind, links, lines, offsets).
    static let lines = [
        #"{"specversion":"1.0","id":"ERP-000004541","source":"erp","type":"order.invoiced","time":"2026-10-05T09:35:43+01:00","subject":"SO-00000649","traceparent":"00-b2e222a8db692bb3f266b17f5db095ce-1315bb11d89ee687-01","data":{"amount":525.77,"currency":"USD","links":["invoice:INV-00002944"]}}"#,
        #"{"specversion":"1.0","id":"al-1155-1","source":"allocation","type":"order.allocated","time":"2026-10-05T08:35:43.933937Z","subject":"SO-00001155","traceparent":"00-5583ab9d63645b64b1bc90449424fac8-d76ccec87e469ccd-01","datacontenttype":"application/json","data":{"warehouse":"DC-NORTH","lines":[{"line":1,"sku":"SKU-00355","qty_allocated":6,"warehouse":"DC-NORTH"}]}}"#,
        #"{"specversion":"1.0","id":"wms-central-1040-p","source":"wms-central","type":"order.picked","time":"2026-10-05T02:35:46.598-06:00","subject":"SO-00001040","data":{"warehouse":"DC-CENTRAL"}}"#,
        #" { "specversion" : "1.0" , "id" : "a\"b\\c\u00e9\ud83d\ude00" , "source" : "oms" , "type" : "order.accepted" , "time" : "2026-10-05T08:12:22Z" , "subject" : "SO-1" , "ext" : [1, 2.5e3, -0, true, false, null, {"k": "v"}] , "data" : {"qty": 3, "promised_ship_by": "2026-10-06T00:00:00Z", "lines": [{"line": "1", "qty": 2}]} } "#,
        #"{"specversion":"1.0","id":"9d48","source":"carrier-ups","type":"shipment.picked_up","time":"2026-10-05T03:33:17-05:00","subject":"shipment:1Z604E","data":null}"#,
    ]

    static let members = ["specversion", "id", "source", "type", "time", "subject", "traceparent", "datacontenttype", "data", "data_base64", "ext"]

    static let values = [
        "null", "1", "-2.5", "true", "false", #""""#, #""x""#, "[]", "{}", #""1.0""#, #"["a"]"#, #"{"links":"x"}"#,
        #"{"links":[""]}"#, #"{"lines":[{"line":1,"qty":-1}]}"#, #""\#(String(repeating: "k", count: 1100))""#,
        #""2026-13-01T00:00:00Z""#, #""00-00000000000000000000000000000000-1315bb11d89ee687-01""#, #""text/plain""#,
        #""application/cloudevents+json; charset=utf-8""#, #"{"approved":"yes"}"#, #"{"channel":5}"#,
    ]

    /// The slow path: parse into a `JSONValue`, then validate (what `EventDecoder.take` does).
    static func reference(_ bytes: [UInt8]) -> String {
        let v: JSONValue
        do { v = try JSONParser.parse(bytes) } catch { return "json: \(error.description)" }
        do {
            let e = try CloudEvent.validate(v, raw: bytes)
            return "event: \(e.id)|\(e.source)|\(e.type)|\(e.time)|\(e.subject)|\(e.traceID ?? "-")|\(e.data.map(\.jsonString) ?? "-")|\(e.raw == bytes)"
        } catch {
            var source: String?
            if case .object(let o) = v, case .string(let s)? = o["source"] { source = s }
            return "invalid: \(error.field) \(error.description) source=\(source ?? "-")"
        }
    }

    static func onePass(_ bytes: [UInt8]) -> String {
        switch bytes.withUnsafeBufferPointer({ CloudEvent.decode($0) }) {
        case .event(let e):
            return "event: \(e.id)|\(e.source)|\(e.type)|\(e.time)|\(e.subject)|\(e.traceID ?? "-")|\(e.data.map(\.jsonString) ?? "-")|\(e.raw == bytes)"
        case .notJSON(let error): return "json: \(error.description)"
        case .invalid(let error, let source): return "invalid: \(error.field) \(error.description) source=\(source ?? "-")"
        }
    }

    static func cases() -> [String] {
        var out: [String] = []
        for line in lines {
            out.append(line)
            // Every truncation: JSON errors at every offset.
            let u = Array(line.utf8)
            for n in 0..<u.count { out.append(String(decoding: u[..<n], as: UTF8.self)) }
            // Each member left out, repeated, or given each kind of value.
            guard case .object(let o)? = try? JSONParser.parse(line) else { continue }
            for m in members {
                var without = o
                without[m] = nil
                out.append(JSONValue.object(without).jsonString)
                for v in values {
                    let body = String(line.trimmingCharacters(in: .whitespaces).dropLast())
                    out.append(body + #","\#(m)":\#(v)}"#)  // repeated: the last one counts
                    out.append(#"{"\#(m)":\#(v),"# + body.dropFirst() + "}")  // earlier: the line's own counts
                }
            }
        }
        out += [
            "", " ", "[]", "[1]", #""x""#, "1", "null", "{}", " {} ", "{} x", "{,}", #"{"id"}"#, #"{"id":}"#, #"{"id":1,}"#,
            #"{"\u0069d":"x","specversion":"1.0"}"#, #"{"specversion":"1.0","id":"1","source":"s","type":"t","time":"2026-10-05T08:12:22Z","subject":"o","\u0064ata":{"lines":5},"type":"order.shipped"}"#,
            "{\"ext\":" + String(repeating: "[", count: 70) + String(repeating: "]", count: 70) + "}",
            "{\"data\":" + String(repeating: "{\"a\":", count: 63) + "1" + String(repeating: "}", count: 63) + "}",
            "{\"data\":" + String(repeating: "{\"a\":", count: 62) + "1" + String(repeating: "}", count: 62) + "}",
            String(repeating: "[", count: 70),
            // Larger than the 1 MiB limit: an object (with and without a source) and a string.
            #"{"source":"big","pad":""# + String(repeating: "p", count: EventLimits.maxEventBytes) + #""}"#,
            #"{"pad":""# + String(repeating: "p", count: EventLimits.maxEventBytes) + #""}"#,
            #"""# + String(repeating: "p", count: EventLimits.maxEventBytes) + #"""#,
        ]
        return out
    }

    @Test func givesWhatParsingThenValidatingGives() {
        let all = Self.cases()
        #expect(all.count > 3_000)
        var events = 0, invalid = 0, json = 0
        for c in all {
            let bytes = Array(c.utf8)
            let want = Self.reference(bytes), got = Self.onePass(bytes)
            #expect(got == want, "\(c.prefix(300))")
            if want.hasPrefix("event") { events += 1 } else if want.hasPrefix("invalid") { invalid += 1 } else { json += 1 }
        }
        // The corpus reaches every outcome, many times.
        #expect(events >= 20 && invalid >= 500 && json >= 1_000, "\(events) events, \(invalid) invalid, \(json) not JSON")
    }

    /// The NDJSON decoder as a whole: every line's outcome, index, source and reason as before.
    @Test func ndjsonBodiesDecodeAsBefore() throws {
        let all = Self.cases().filter { !$0.contains("\n") && $0.utf8.count < 4096 }
        var body = Array(all.joined(separator: "\n").utf8)
        body.append(0x0A)
        let got = try EventDecoder.decodeLines(body)
        var want = DecodedEvents()
        for (i, line) in all.enumerated() where !EventDecoder.isBlank(Array(line.utf8).withUnsafeBufferPointer { $0 }) {
            let bytes = Array(line.utf8)
            switch Result(catching: { try JSONParser.parse(bytes) }) {
            case .success(let v): EventDecoder.take(v, raw: bytes, index: i, into: &want)
            case .failure(let e as JSONParseError): want.rejected.append(RejectedEvent(index: i, error: e.description, reason: "json"))
            case .failure: Issue.record("unexpected error")
            }
        }
        #expect(got.events == want.events)
        #expect(got.rejected == want.rejected)
        #expect(got.events.count >= 20 && got.rejected.count >= 1_000)
    }
}
