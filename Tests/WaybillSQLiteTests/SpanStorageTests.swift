import Foundation
import Testing
import WaybillModel
import WaybillStore
@testable import WaybillSQLite
import WaybillTestSupport

/// The compact span storage of schema version 6 (`SpanBlocks`).
@Suite struct SpanStorageTests {
    static func hexID(_ rng: inout SplitMix64, bytes: Int) -> String {
        (0..<bytes).map { _ in String(format: "%02x", Int(rng.next() & 0xFF)) }.joined()
    }

    /// Spans with every field the model has, including ids that are not hex and every kind of value.
    static func unusualSpans() -> [Span] {
        let trace = "0af7651916cd43dd8448eb211c80319c"
        return [
            Span(traceID: trace, spanID: "b7ad6b7169203331", service: "orchestrator", name: "order.fulfil", start: 1_000_000, end: 1_500_000,
                 status: .ok, attributes: ["order.id": "ORD-1", "n": 3, "neg": -12, "half": 0.5, "negzero": .number(-0.0), "big": 1e300,
                                           "t": true, "f": false, "nil": .null, "list": [1, "two", ["three": 3]], "obj": ["a": ["b": "c"]]],
                 resourceAttributes: ["service.name": "orchestrator", "host": "h1"]),
            // A child whose parent is in the same block, an error with a message, events and links.
            Span(traceID: trace, spanID: "00f067aa0ba902b7", parentSpanID: "b7ad6b7169203331", service: "erp", name: "credit_check",
                 start: 1_100_000, end: 1_090_000, status: .error, statusMessage: "lock timeout",
                 attributes: ["order.id": "ORD-1", String(repeating: "k", count: 300): .string(String(repeating: "v", count: 5000))],
                 resourceAttributes: ["service.name": "erp"],
                 events: [["time": "2026-11-23T14:00:00.000001Z", "name": "retry", "attributes": ["n": 1]]],
                 links: [["trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "span_id": "00f067aa0ba902b8", "attributes": [:]]]),
            // Ids that are not lowercase hex, a parent outside the block, uppercase hex.
            Span(traceID: trace, spanID: "not-hex-id", parentSpanID: "ABCDEF0123456789", service: "wms", name: "",
                 start: 1_200_000, end: 1_200_000, resourceAttributes: [:]),
            Span(traceID: trace, spanID: "1111111111111111", parentSpanID: "2222222222222222", service: "wms", name: "pick",
                 start: 1_300_000, end: 1_400_000),
            // A trace id that is not hex at all, and one far later in the same trace (a block of its own).
            Span(traceID: "trace-Ω", spanID: "ab", service: "é", name: "ñ", start: -5, end: 7, attributes: ["order.id": "ORD-1"]),
            Span(traceID: trace, spanID: "3333333333333333", service: "carrier", name: "deliver", start: 1_000_000 + 3_600_000_000,
                 end: 1_000_000 + 3_600_000_001),
            // Extreme times in one trace: neither the block split nor the deltas may overflow.
            Span(traceID: "ffffffffffffffffffffffffffffffff", spanID: "4444444444444444", service: "x", name: "late",
                 start: Micros.max - 1, end: Micros.min, attributes: ["order.id": "ORD-1"]),
            Span(traceID: "ffffffffffffffffffffffffffffffff", spanID: "5555555555555555", service: "x", name: "early",
                 start: Micros.min, end: Micros.max),
        ]
    }

    static func sorted(_ s: [Span]) -> [Span] { s.sorted { ($0.traceID, $0.spanID) < ($1.traceID, $1.spanID) } }

    @Test func everyFieldComesBackExactly() async throws {
        let path = temporaryDatabase()
        let spans = Self.unusualSpans()
        do {
            let store = try SQLiteStore(path: path)
            #expect(try await store.appendSpans(spans) == AppendResult(accepted: spans.count, duplicates: 0))
            #expect(Self.sorted(try store.trace(key: "ORD-1")?.spans ?? []) == Self.sorted(spans))
            store.close()
        }
        // A new process reads the dictionary from the file, not from the writer's memory.
        let store = try SQLiteStore(path: path)
        defer { store.close() }
        #expect(Self.sorted(try store.trace(key: "ORD-1")?.spans ?? []) == Self.sorted(spans))
        #expect(Self.sorted(try store.spans(startingIn: Micros.min..<Micros.max, limit: 100)) == Self.sorted(spans))
        // -0.0 stays a double: the JSON the trace document prints keeps its sign.
        let first = try #require(try store.trace(key: "ORD-1")?.spans.first(where: { $0.spanID == "b7ad6b7169203331" }))
        #expect(first.attributes["negzero"]?.doubleValue?.sign == .minus)
    }

    @Test func resendsAreDuplicatesAcrossBlocksAndWithinOneCall() async throws {
        let store = try SQLiteStore(path: temporaryDatabase())
        defer { store.close() }
        let spans = Self.unusualSpans()
        #expect(try await store.appendSpans(Array(spans[0..<3])) == AppendResult(accepted: 3, duplicates: 0))
        #expect(try await store.appendSpans(spans + [spans[4]]) == AppendResult(accepted: spans.count - 3, duplicates: 4))
        #expect(try store.trace(key: "ORD-1")?.spans.count == spans.count)
    }

    /// Queued span appends (the writer commits them together); a span sent by two of them is stored once
    /// and counted as a duplicate of the later one.
    @Test func queuedSpanAppendsStoreEachSpanOnce() async throws {
        let store = try SQLiteStore(path: temporaryDatabase())
        defer { store.close() }
        let spans = Self.unusualSpans()
        store.writer.setPaused(true)
        let first = Task { try await store.appendSpans(Array(spans[0..<4])) }
        while store.queuedEvents < 4 { try await Task.sleep(nanoseconds: 1_000_000) }
        let second = Task { try await store.appendSpans(Array(spans[2...])) }
        while store.queuedEvents < spans.count + 2 { try await Task.sleep(nanoseconds: 1_000_000) }
        store.writer.setPaused(false)
        let (a, b) = (try await first.value, try await second.value)
        #expect(a == AppendResult(accepted: 4, duplicates: 0))
        #expect(b == AppendResult(accepted: spans.count - 4, duplicates: 2))
        #expect(try store.spans(startingIn: Micros.min..<Micros.max, limit: 100).count == spans.count)
    }

    /// A trace whose spans arrive one request at a time is kept in one block while it is small.
    @Test func spansArrivingOneAtATimeJoinTheirTracesLatestBlock() async throws {
        let path = temporaryDatabase()
        let store = try SQLiteStore(path: path)
        defer { store.close() }
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        var spans: [Span] = []
        for i in 0..<(SpanBlocks.maxMergedSpans + 3) {
            let attributes: [String: JSONValue] = i == 5 ? ["order.id": "ORD-M"] : [:]
            let parent: String? = i == 0 ? nil : String(format: "%016x", 1)
            spans.append(Span(traceID: trace, spanID: String(format: "%016x", i + 1), parentSpanID: parent, service: "svc\(i % 4)",
                              name: "op", start: Micros(1000 - i), end: 2000, attributes: attributes))
        }
        for s in spans { #expect(try await store.appendSpans([s]) == AppendResult(accepted: 1, duplicates: 0)) }
        #expect(try await store.appendSpans(spans) == AppendResult(accepted: 0, duplicates: spans.count))
        let c = try Connection(path: path)
        #expect(try c.scalarInt("SELECT count(*) FROM span_blocks") == 2)
        #expect(try c.scalarInt("SELECT sum(n) FROM span_blocks") == spans.count)
        #expect(Self.sorted(try store.trace(key: "ORD-M")?.spans ?? []) == Self.sorted(spans))
        #expect(try store.spans(startingIn: 0..<Micros.max, limit: 100) == spans.sorted { $0.start < $1.start })
    }

    /// `spans(startingIn:limit:)` against a plain filter over the same spans: windows that cut blocks,
    /// limits that stop inside a window.
    @Test func spansByStartTimeMatchAPlainFilter() async throws {
        let store = try SQLiteStore(path: temporaryDatabase())
        defer { store.close() }
        var rng = SplitMix64(seed: 7)
        var all: [Span] = []
        for t in 0..<60 {
            let trace = Self.hexID(&rng, bytes: 16)
            let base = Micros(t) * 40_000_000
            var batch: [Span] = []
            for i in 0..<Int(rng.next() % 12 + 1) {
                // Up to 30 minutes apart: one trace's spans fall into several blocks.
                let start = base + Micros(rng.next() % 1_800_000_000)
                batch.append(Span(traceID: trace, spanID: Self.hexID(&rng, bytes: 8), service: "svc\(i % 3)", name: "op\(i % 4)",
                                  start: start, end: start + 1000))
            }
            all += batch
            _ = try await store.appendSpans(batch)
        }
        let ordered = all.sorted { ($0.start, $0.traceID, $0.spanID) < ($1.start, $1.traceID, $1.spanID) }
        for _ in 0..<40 {
            let a = Micros(rng.next() % 4_000_000_000) - 100_000_000
            let b = a + Micros(rng.next() % 2_000_000_000)
            let limit = Int(rng.next() % 50)
            let expected = Array(ordered.filter { (a..<b).contains($0.start) }.prefix(limit))
            #expect(try store.spans(startingIn: a..<b, limit: limit) == expected, "window \(a)..<\(b) limit \(limit)")
        }
    }

    @Test func retentionDeletesExactlyTheSpansBeforeTheCutoffAndTheirCorrelation() async throws {
        let store = try SQLiteStore(path: temporaryDatabase())
        defer { store.close() }
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736"
        func span(_ id: Int, _ start: Micros, key: String? = nil) -> Span {
            Span(traceID: trace, spanID: String(format: "%016x", id), service: "s", name: "n", start: start, end: start + 1,
                 attributes: key.map { ["order.id": .string($0)] } ?? [:])
        }
        // One block (all within a minute), cut by the cutoff: ORD-OLD only on spans before it, ORD-NEW on one after.
        let spans = [span(1, 0, key: "ORD-OLD"), span(2, 10_000_000, key: "ORD-OLD"), span(3, 20_000_000), span(4, 30_000_000, key: "ORD-NEW"),
                     span(5, 40_000_000)]
        _ = try await store.appendSpans(spans)
        _ = try await store.deleteEvents(before: 20_000_000)
        #expect(try store.spans(startingIn: Micros.min..<Micros.max, limit: 10) == Array(spans[2...]))
        #expect(try store.trace(key: "ORD-OLD") == nil)
        #expect(try store.trace(key: "ORD-NEW")?.spans == Array(spans[2...]))
        // The rewritten block still rejects resends and accepts what is new.
        #expect(try await store.appendSpans([spans[3], span(6, 50_000_000)]) == AppendResult(accepted: 1, duplicates: 1))
        _ = try await store.deleteEvents(before: 100_000_000)
        #expect(try store.spans(startingIn: Micros.min..<Micros.max, limit: 10).isEmpty)
        #expect(try store.trace(key: "ORD-NEW") == nil)
    }

    @Test func correlationKeysComeFromTheOptions() async throws {
        var o = SQLiteStore.Options()
        o.correlationKeys = ["tenant.order_ref"]
        let store = try SQLiteStore(path: temporaryDatabase(), options: o)
        defer { store.close() }
        let custom = Span(traceID: String(repeating: "a", count: 32), spanID: String(repeating: "1", count: 16), service: "gw", name: "x",
                          start: 0, end: 1, resourceAttributes: ["tenant.order_ref": "ORD-9"])
        let standard = Span(traceID: String(repeating: "b", count: 32), spanID: String(repeating: "2", count: 16), service: "gw", name: "x",
                            start: 0, end: 1, attributes: ["order.id": "ORD-9"])
        _ = try await store.appendSpans([custom, standard])
        #expect(try store.trace(key: "ORD-9")?.spans == [custom])
    }

    /// A database written by schema version 5 (JSON span rows) upgrades: every span converted, the
    /// correlation key it was stored with kept, the old table gone.
    @Test func aVersion5DatabaseIsConverted() async throws {
        let path = temporaryDatabase()
        // Version 5 kept times as JSON numbers (doubles), so the extreme times never were storable there.
        let spans = Self.unusualSpans().filter { abs(Double($0.start)) < 1e15 && abs(Double($0.end)) < 1e15 }
        do {
            let c = try Connection(path: path)
            try c.exec("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
            for m in Schema.migrations[0..<5] { try c.exec(m) }
            try c.exec("INSERT INTO meta(key, value) VALUES('schema_version', '5')")
            let ins = try c.prepare("INSERT INTO spans(trace_id, span_id, start, order_key, body) VALUES(?,?,?,?,?)")
            for s in spans {
                ins.reset()
                ins.bind(1, s.traceID).bind(2, s.spanID).bind(3, s.start).bind(4, SpanCorrelation.key(of: s)).bindBlob(5, s.storageJSON.jsonBytes)
                try ins.run()
            }
        }
        let store = try SQLiteStore(path: path)
        defer { store.close() }
        #expect(Self.sorted(try store.trace(key: "ORD-1")?.spans ?? []) == Self.sorted(spans))
        #expect(Self.sorted(try store.spans(startingIn: Micros.min..<Micros.max, limit: 100)) == Self.sorted(spans))
        #expect(try await store.appendSpans(spans) == AppendResult(accepted: 0, duplicates: spans.count))
        let c = try Connection(path: path)
        #expect(try c.scalarInt("SELECT count(*) FROM sqlite_master WHERE name = 'spans'") == 0)
        #expect(try c.scalarInt("SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'schema_version'") == Schema.migrations.count)
    }

    /// The target: typical spans (the OTLP benchmark's shape) take at most 150 bytes on disk.
    @Test func typicalSpansTakeAtMost150BytesOnDisk() async throws {
        let path = temporaryDatabase()
        var rng = SplitMix64(seed: 1)
        let names = ["order.fulfil", "erp.credit_check", "allocation.allocate", "wms.release", "db.query"]
        var count = 0
        do {
            var o = SQLiteStore.Options()
            o.synchronous = "NORMAL"
            let store = try SQLiteStore(path: path, options: o)
            for b in 0..<200 {
                var batch: [Span] = []
                for t in 0..<10 {
                    let trace = Self.hexID(&rng, bytes: 16)
                    let root = Self.hexID(&rng, bytes: 8)
                    for i in 0..<10 {
                        let start = Micros(b) * 1_000_000 + Micros(t) * 10_000 + Micros(i) * 1000
                        batch.append(Span(traceID: trace, spanID: i == 0 ? root : Self.hexID(&rng, bytes: 8), parentSpanID: i == 0 ? nil : root,
                                          service: "orchestrator", name: names[i % 5], start: start, end: start + 100 + Micros(rng.next() % 50_000),
                                          status: rng.next() % 50 == 0 ? .error : .ok,
                                          attributes: ["order.id": .string("SO-\(b)-\(t)"), "http.method": "POST", "http.status_code": 200],
                                          resourceAttributes: ["service.name": "orchestrator"]))
                    }
                }
                count += try await store.appendSpans(batch).accepted
            }
            store.close()
        }
        let c = try Connection(path: path)
        try c.exec("PRAGMA wal_checkpoint(TRUNCATE)")
        let bytes = try c.scalarInt("PRAGMA page_count") * c.scalarInt("PRAGMA page_size")
        #expect(count == 20_000)
        #expect(bytes / count <= 150, "\(bytes) bytes for \(count) spans")
    }
}
