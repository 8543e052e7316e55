import Testing
@testable import WaybillModel

@Suite struct CloudEventValidationTests {
    static let base: [String: JSONValue] = [
        "specversion": "1.0", "id": "e1", "source": "oms", "type": "order.accepted", "time": "2026-11-23T14:00:00Z", "subject": "ORD-1",
    ]

    func validate(_ o: [String: JSONValue]) throws(EventValidationError) -> CloudEvent {
        let v = JSONValue.object(o)
        return try CloudEvent.validate(v, raw: v.jsonBytes)
    }

    func field(of o: [String: JSONValue]) -> String? {
        do { _ = try validate(o); return nil } catch { return error.field }
    }

    @Test func acceptsAMinimalEventAndKeepsTheRawText() throws {
        var o = Self.base
        o["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        o["data"] = ["channel": "web", "links": ["shipment:1Z"], "extra": ["kept": true]]
        let e = try validate(o)
        #expect(e.traceID == "0af7651916cd43dd8448eb211c80319c")
        #expect(e.links == ["shipment:1Z"])
        #expect(try JSONParser.parse(e.raw)["data"]?["extra"]?["kept"] == true)
    }

    /// The data members that must be strings: a number, a boolean or an object is refused with the
    /// member's name; null is as absent; with several wrong, the first of the documented order is named
    /// (the same every time, whatever order the members arrive in).
    @Test func dataMembersThatMustBeStrings() throws {
        for name in CloudEvent.stringFields {
            for wrong: JSONValue in [5, true, ["x": 1], [1]] {
                var o = Self.base
                o["data"] = [name: wrong, "lines": [["line": 1, "qty": 1]]]
                #expect(field(of: o) == "data.\(name)")
            }
            var o = Self.base
            o["data"] = [name: nil, "note": 7, "lines": [["line": 1, "qty": 1]]]
            #expect(field(of: o) == nil)
        }
        for (a, b) in [("channel", "currency"), ("region", "carrier"), ("reason", "stage")] {
            var o = Self.base
            o["data"] = [b: 1, a: false, "z": 2, "lines": [["line": 1, "qty": 1]]]
            #expect(field(of: o) == "data.\(a)")
        }
    }

    @Test(arguments: ["specversion", "id", "source", "type", "time", "subject"])
    func missingRequiredAttributeNamesTheField(_ name: String) {
        var o = Self.base
        o[name] = nil
        #expect(field(of: o) == name)
    }

    @Test func malformedAttributesNameTheField() {
        var o = Self.base
        o["time"] = "2026-02-30T00:00:00Z"
        #expect(field(of: o) == "time")
        o = Self.base; o["specversion"] = "0.3"
        #expect(field(of: o) == "specversion")
        o = Self.base; o["id"] = 7
        #expect(field(of: o) == "id")
        o = Self.base; o["subject"] = .string(String(repeating: "k", count: 1025))
        #expect(field(of: o) == "subject")
        o = Self.base; o["traceparent"] = "00-zz-11-01"
        #expect(field(of: o) == "traceparent")
        o = Self.base; o["data"] = [1, 2]
        #expect(field(of: o) == "data")
        o = Self.base; o["datacontenttype"] = "text/plain"; o["data"] = [:]
        #expect(field(of: o) == "datacontenttype")
        o = Self.base; o["data"] = ["links": ["ok", 3]]
        #expect(field(of: o) == "data.links[1]")
        o = Self.base; o["data"] = ["lines": [["line": 1, "qty": "ten"]]]
        #expect(field(of: o) == "data.lines[0].qty")
        o = Self.base; o["data"] = ["lines": [["line": 1.5, "qty": 1]]]
        #expect(field(of: o) == "data.lines[0].line")
        o = Self.base; o["data"] = ["promised_ship_by": "tomorrow"]
        #expect(field(of: o) == "data.promised_ship_by")
    }

    @Test func oversizedEventIsRejected() {
        var o = Self.base
        o["data"] = ["blob": .string(String(repeating: "x", count: EventLimits.maxEventBytes))]
        #expect(field(of: o) == "event")
    }

    @Test func lineIdsMatchAcrossStringsAndIntegers() {
        #expect(OrderLineID.make(3) == "3")
        #expect(OrderLineID.make("3") == "3")
        #expect(OrderLineID.make(3.5) == nil)
    }
}

@Suite struct TraceparentTests {
    @Test func extractsTheTraceIdLowercased() {
        #expect(Traceparent.traceID("00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01") == "0af7651916cd43dd8448eb211c80319c")
        #expect(Traceparent.traceID("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-future") == "0af7651916cd43dd8448eb211c80319c")
    }

    @Test(arguments: ["", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331", "00-00000000000000000000000000000000-b7ad6b7169203331-01",
                      "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01", "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                      "00-0af7651916cd43dd8448eb211c80319g-b7ad6b7169203331-01", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01x"])
    func rejectsMalformedTraceparents(_ s: String) {
        #expect(Traceparent.traceID(s) == nil)
    }
}
