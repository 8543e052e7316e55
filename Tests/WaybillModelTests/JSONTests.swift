import Testing
@testable import WaybillModel

@Suite struct JSONParserTests {
    @Test func parsesEveryValueKind() throws {
        let v = try JSONParser.parse(#"{"a":[1,-2.5,3e2,true,false,null],"b":"x\"y\\z\u00e9\ud83d\ude00","c":{}}"#)
        #expect(v["a"] == [1, -2.5, 300, true, false, nil])
        #expect(v["b"] == "x\"y\\zé😀")
        #expect(v["c"] == .object([:]))
    }

    @Test func writesSortedCompactJSONThatParsesBack() throws {
        let v: JSONValue = ["z": 1, "a": ["s": "line\nbreak\u{1}", "n": 0.973, "big": 12345678901234], "m": [nil, true]]
        let text = v.jsonString
        #expect(text == #"{"a":{"big":12345678901234,"n":0.973,"s":"line\nbreak\u0001"},"m":[null,true],"z":1}"#)
        #expect(try JSONParser.parse(text) == v)
    }

    /// `JSONWriter.number` writes whole numbers digit by digit; the bytes are what it wrote before by
    /// building strings (`String(Int64(d))` below 1e15, `description` above): stored facts and answers
    /// keep their exact text. Edges (0, -0, 1e15, 2^53), times in microseconds, and random whole numbers.
    @Test func wholeNumbersAreWrittenAsBefore() {
        func before(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : "\(d)" }
        var values: [Double] = [0, -0.0, 1, -1, 9, 10, -10, 999_999_999_999_999, 1e15, -1e15, 1e15 + 1, 9_007_199_254_740_991,
                                -9_007_199_254_740_991, 9_007_199_254_740_992, 1e16, 1e300, 0.5, -2.25, 1_733_300_123_456_789, 4_102_444_800_000_000]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            values.append(Double(Int64.random(in: -9_007_199_254_740_991...9_007_199_254_740_991, using: &rng)))
            values.append(Double(Int64.random(in: -100_000...100_000, using: &rng)))
            values.append(Double(Int64.random(in: 1_000_000_000_000_000...2_000_000_000_000_000, using: &rng)))
        }
        var mismatches: [String] = []
        for d in values {
            var w = JSONWriter(capacity: 32)
            w.number(d)
            let got = String(decoding: w.bytes, as: UTF8.self)
            if got != before(d) { mismatches.append("\(d): \(got)") }
        }
        #expect(mismatches.isEmpty, "\(mismatches.prefix(5))")
    }

    @Test(arguments: ["", "{", "[1,]", "{\"a\" 1}", "tru", "\"\\x\"", "01x", "1.", "-", "{\"a\":1}}", "\"\u{1}\"", "\"\\ud800\"", "1e999"])
    func rejectsMalformedInput(_ text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test func deepNestingIsAnErrorNotACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONParser.parse(deep) }
        let ok = String(repeating: "[", count: 60) + String(repeating: "]", count: 60)
        #expect((try? JSONParser.parse(ok)) != nil)
    }

    @Test func recordsTopLevelArrayElementRanges() throws {
        let bytes = Array(#"[ {"a":1} ,{"b":[2]}]"#.utf8)
        var ranges: [Range<Int>] = []
        _ = try bytes.withUnsafeBufferPointer { b in try JSONParser.parse(b, elementRanges: &ranges) }
        #expect(ranges.map { String(decoding: bytes[$0], as: UTF8.self) } == [#"{"a":1}"#, #"{"b":[2]}"#])
    }
}

@Suite struct TimeTests {
    @Test func parsesRFC3339WithOffsetsAndFractions() {
        #expect(RFC3339.parse("1970-01-01T00:00:00Z") == 0)
        #expect(RFC3339.parse("2026-11-23T14:00:00.123Z") == 1_795_442_400_123_000)
        #expect(RFC3339.parse("2026-11-23T15:00:00.123+01:00") == 1_795_442_400_123_000)
        #expect(RFC3339.parse("2026-11-23t09:30:00.123456789-04:30") == 1_795_442_400_123_456)
        #expect(RFC3339.parse("2024-02-29T00:00:00Z") != nil)
    }

    @Test(arguments: ["2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z", "2026-13-01T00:00:00Z", "2026-11-23T24:00:00Z",
                      "2026-11-23T14:00:00", "2026-11-23", "2026-11-23T14:00:00.Z", "2026-11-23T14:00:00+25:00", "yesterday",
                      "2026-11-23T14:00:00Zjunk"])
    func rejectsImpossibleOrMalformedTimes(_ s: String) {
        #expect(RFC3339.parse(s) == nil)
    }

    @Test func formatsUTCAndRoundTrips() {
        for t: Micros in [0, 1_795_442_400_123_000, 1_795_442_400_123_456, 1_795_442_400_000_000, -1_000_000, 253_402_300_799_000_000] {
            #expect(RFC3339.parse(RFC3339.format(t)) == t)
        }
        #expect(RFC3339.format(1_795_442_400_123_000) == "2026-11-23T14:00:00.123Z")
        #expect(RFC3339.format(1_795_442_400_000_000) == "2026-11-23T14:00:00Z")
    }

    @Test func parsesDurationsAndRelativeTimes() {
        #expect(DurationText.parse("15m") == 900_000_000)
        #expect(DurationText.parse("1h30m") == 5_400_000_000)
        #expect(DurationText.parse("500ms") == 500_000)
        #expect(DurationText.parse("7d") == 604_800_000_000)
        #expect(DurationText.parse("soon") == nil)
        #expect(DurationText.parse("15") == nil)
        let now: Micros = 10_000_000_000
        let oneHourEarlier: Micros? = TimeText.parse("-1h", now: now)
        #expect(oneHourEarlier == now - 3_600_000_000)
        #expect(TimeText.parse("2026-11-01", now: 0) == RFC3339.parse("2026-11-01T00:00:00Z"))
        #expect(DurationText.format(90_000_000) == "1m30s")
        #expect(DurationText.format(41_900_000) == "41.9s")
    }
}
