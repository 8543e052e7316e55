import Foundation
import Testing
import WaybillModel
import WaybillStore
import WaybillStoreConformance
@testable import WaybillSQLite
import WaybillTestSupport

/// The compact layouts of issue 16's bytes per event: coded word sets in `orders`, idempotency hashes
/// cut to 32 bits, and stores written before them.
@Suite struct StoreBytesTests {
    @Test func wordSetsAreCodedAndFoundAsWholeWordsOnly() {
        let set: Set<String> = ["order.accepted", "order.shipped", "order.note", "desk/1", "oms", "shipment.delivered"]
        let column = WordSetColumn.encode(set)
        #expect(WordSetColumn.decode(column) == set)
        // Known words take two bytes each.
        #expect(column.count < "|order.accepted|order.shipped|order.note|desk/1|oms|shipment.delivered|".utf8.count / 2)
        func finds(_ word: String) -> Bool {
            WordSetColumn.needles(word).contains { n in column.indices.contains { i in column[i...].starts(with: n) } }
        }
        for w in set { #expect(finds(w), "\(w)") }
        for w in ["order", "order.note.x", "note", "desk", "order.allocated", "om", "oms2", "shipment"] { #expect(!finds(w), "\(w)") }
        // Text needles still find rows written before the coding.
        let old = Array(("|" + set.sorted().joined(separator: "|") + "|").utf8)
        #expect(WordSetColumn.decode(old) == set)
        #expect(WordSetColumn.needles("order.shipped").count == 2)
        #expect(WordSetColumn.needles("order.note") == [Array("|order.note|".utf8)])
        #expect(WordSetColumn.decode([]) == [])
        #expect(WordSetColumn.decode([0x7C, 0xFF]) == [])
    }

    /// Search by type and source finds the same orders whether a row holds the coded form or the text
    /// form of the versions before it.
    @Test func searchFindsTypesAndSourcesInCodedAndOldTextRows() async throws {
        let path = temporaryDatabase()
        let events = StoreConformance.workload(orders: 20)
            + (0..<40).map { EventBlockStorageTests.oddEvent($0, subject: "ORD-\(100 + $0 % 20)", minutes: $0) }
        let s = try SQLiteStore(path: path)
        defer { s.close() }
        _ = try await s.append(events)
        let now = t("2026-12-01T00:00:00Z")
        let queries: [OrderQuery] = ["order.accepted", "order.shipped", "order.cancelled", "order.note", "order.nothing"].map {
            OrderQuery(type: $0, now: now, limit: 100)
        } + ["oms", "desk/1", "wms", "nobody"].map { OrderQuery(source: $0, now: now, limit: 100) }
            + [OrderQuery(type: "order.shipped", source: "desk/2", now: now, limit: 100)]
        let before = try queries.map { try s.searchOrders($0) }
        #expect(before[0].orders.count == 20)
        #expect(before[3].orders.count == 20)
        #expect(before[4].orders.isEmpty && before[8].orders.isEmpty)
        #expect(!before[6].orders.isEmpty)
        // Each order's coded row holds what its facts hold.
        let c = try Connection(path: path)
        let rows = try c.prepare("SELECT order_id, types, sources FROM orders")
        var n = 0
        while try rows.step() {
            let f = try #require(try s.facts(orderID: rows.text(0)))
            #expect(WordSetColumn.decode(rows.blob(1)) == f.types)
            #expect(WordSetColumn.decode(rows.blob(2)) == f.sources)
            #expect(rows.blob(1).contains(WordSetColumn.marker))
            n += 1
        }
        rows.reset()
        #expect(n == 20)
        // Half the rows rewritten as the versions before wrote them: the same pages.
        let olds = try c.prepare("SELECT rid, order_id FROM orders WHERE rid % 2 = 0")
        var rewrite: [(Int64, OrderFacts)] = []
        while try olds.step() { rewrite.append((olds.int64(0), try #require(try s.facts(orderID: olds.text(1))))) }
        olds.reset()
        let upd = try c.prepare("UPDATE orders SET types = ?, sources = ? WHERE rid = ?")
        for (rid, f) in rewrite {
            upd.reset()
            try upd.bind(1, "|" + f.types.sorted().joined(separator: "|") + "|").bind(2, "|" + f.sources.sorted().joined(separator: "|") + "|")
                .bind(3, rid).run()
        }
        #expect(rewrite.count == 10)
        #expect(try queries.map { try s.searchOrders($0) } == before)
    }

    /// Merged idempotency hashes keep their upper 32 bits; a store whose `dedup_parts` holds full 64-bit
    /// hashes (schema version 12) is converted when it opens (to short hashes, then to runs) and still
    /// refuses every resend.
    @Test func idempotencyHashesAreShortAndFullOnesAreConvertedAtOpen() async throws {
        let path = temporaryDatabase()
        var o = SQLiteStore.Options()
        o.recentDedupLimit = 9
        let events = StoreConformance.workload(orders: 30)
        do {
            let s = try SQLiteStore(path: path, options: o)
            for i in stride(from: 0, to: events.count, by: 6) {
                _ = try await s.append(Array(events[i..<min(i + 6, events.count)]))
            }
            s.close()
        }
        let c = try Connection(path: path)
        func pairs() throws -> [DedupRuns.Pair] { try DedupRunsTests.pairs(c) }
        let stored = try pairs()
        let merged = stored.count
        #expect(merged > events.count / 2)
        #expect(try c.scalarInt("SELECT sum(n) FROM dedup_runs") == merged)
        #expect(stored.allSatisfy { $0.h <= 2147483647 && $0.h >= -2147483648 })
        // Back to version 12: every merged row with the full hash of the event it points at.
        let dictionary = EventDictionary()
        let blocks = try c.prepare("SELECT seq, body, skip FROM event_blocks WHERE seq IN (\(Set(stored.map(\.seq)).map(String.init).joined(separator: ",")))")
        var full: [(Int64, Int64)] = []
        while try blocks.step() {
            let hidden = blocks.isNull(2) ? [] : try EventBlocks.hidden(blocks.blob(2))
            for k in try EventBlocks.keys(blocks.blob(1), hidden: hidden, dictionary: { try dictionary.bytes($0, c) }) {
                full.append((DedupIndex.hash(source: k.source, id: k.id), blocks.int64(0)))
            }
        }
        blocks.reset()
        try c.exec("DROP TABLE dedup_runs; CREATE TABLE dedup_parts(g INTEGER NOT NULL, h INTEGER NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY(g, h, seq)) WITHOUT ROWID")
        let ins = try c.prepare("INSERT INTO dedup_parts(g, h, seq) VALUES(?, ?, ?)")
        for (h, q) in full {
            ins.reset()
            try ins.bind(1, q >> 16).bind(2, h).bind(3, q).run()
        }
        #expect(try c.scalarInt("SELECT count(*) FROM dedup_parts WHERE h > 2147483647 OR h < -2147483648") > merged / 2)
        try c.exec("UPDATE meta SET value = '12' WHERE key = 'schema_version'")

        let s = try SQLiteStore(path: path, options: o)
        defer { s.close() }
        #expect(try c.scalarInt("SELECT value FROM meta WHERE key = 'schema_version'") == Schema.migrations.count)
        #expect(try pairs() == stored)
        #expect(try c.scalarInt("SELECT count(*) FROM sqlite_master WHERE name = 'dedup_parts'") == 0)
        #expect(try await s.append(events.shuffled()) == AppendResult(accepted: 0, duplicates: events.count))
        let more = (0..<30).map { EventBlockStorageTests.oddEvent($0, subject: "ORD-\(100 + $0)", minutes: $0) }
        #expect(try await s.append(more + more) == AppendResult(accepted: 30, duplicates: 30))
        #expect(try s.stats().events == events.count + 30)
    }

    @Test func eventFieldsAreReadOnlyFromPlainTopLevelMembers() {
        let tp = "00-\(String(repeating: "ab", count: 16))-\(String(repeating: "cd", count: 8))-01"
        let plain = #" { "data" : {"id":"inner","time":"x","subject":["a"]}, "specversion":"1.0","id":"e-1", "source":"oms","#
            + #""type":"order.accepted","time":"2026-11-20T09:00:00.5+01:00","subject":"SO-1","traceparent":"\#(tp)" } "#
        let f = EventFields.scan(Array(plain.utf8))
        #expect(f == EventFields(id: "e-1", source: "oms", type: "order.accepted", subject: "SO-1", time: t("2026-11-20T08:00:00.5Z"),
                                 traceID: String(repeating: "ab", count: 16)))
        let noTrace = #"{"id":"e-1","source":"oms","type":"t","time":"2026-11-20T08:00:00Z","subject":"S","n":[1,{"a":"]"}],"x":null}"#
        #expect(EventFields.scan(Array(noTrace.utf8))?.traceID == nil)
        #expect(EventFields.scan(Array(noTrace.utf8))?.subject == "S")
        // Anything but the plain case gives up (the block then keeps the event's columns).
        for text in [
            #"{"id":"e\u002d1","source":"oms","type":"t","time":"2026-11-20T08:00:00Z","subject":"S"}"#, // an escape in a value
            #"{"\u0069d":"e-1","source":"oms","type":"t","time":"2026-11-20T08:00:00Z","subject":"S"}"#, // an escaped key
            #"{"id":"e-1","id":"e-2","source":"oms","type":"t","time":"2026-11-20T08:00:00Z","subject":"S"}"#, // twice
            #"{"id":1,"source":"oms","type":"t","time":"2026-11-20T08:00:00Z","subject":"S"}"#, // not a string
            #"{"id":"e-1","source":"oms","type":"t","time":"yesterday","subject":"S"}"#, // not a time
            #"{"id":"e-1","source":"oms","type":"t","time":"2026-11-20T08:00:00Z"}"#, // no subject
            #"{"id":"e-1","source":"oms","type":"t","time":"2026-11-20T08:00:00Z","subject":"S""#, // cut off
            #"{"id":"e-1","source":"oms","type":"t","time":"2026-11-20T08:00:00Z","subject":"S"} x"#, // trailing text
            "", "[]", "{}",
        ] {
            #expect(EventFields.scan(Array(text.utf8)) == nil, "\(text)")
        }
    }

    /// A block keeps the columns of exactly the events whose JSON does not give their attributes back,
    /// and reads every event back as it was stored, in either format version.
    @Test func blocksReadEveryEventBackWhetherItsAttributesAreInItsJSONOrNot() throws {
        let plain = (0..<6).map { EventBlockStorageTests.oddEvent($0, subject: "ORD-\($0 % 2)", minutes: $0) }
        // oddEvent's text holds an escape in data only: its attributes come from the JSON.
        #expect(plain.allSatisfy { EventFields.scan($0.raw) == EventFields($0) })
        var renamed = plain[0]
        renamed.id = "not-in-the-json"
        var noJSON = plain[1]
        noJSON.raw = []
        noJSON.data = nil // `data` is read from the JSON
        var shifted = plain[2]
        shifted.time += 1
        let escaped = try CloudEvent.validate(JSONParser.parse(Array(#"{"specversion":"1.0","id":"e\u002d9","source":"oms","type":"order.note","time":"2026-11-20T08:00:00Z","subject":"ORD-\u00e9"}"#.utf8)),
                                              raw: Array(#"{"specversion":"1.0","id":"e\u002d9","source":"oms","type":"order.note","time":"2026-11-20T08:00:00Z","subject":"ORD-\u00e9"}"#.utf8))
        #expect(escaped.id == "e-9" && escaped.subject == "ORD-é")
        // A subject that holds another as its prefix: a read of ORD-1 finds "ORD-1" in its JSON, then scans it.
        let longer = EventBlockStorageTests.oddEvent(6, subject: "ORD-10", minutes: 6)
        let events = plain + [renamed, noJSON, shifted, escaped, longer]
        let enc = EventBlocks.encode(events, dictionary: nil)
        #expect(enc.body[0] == EventBlocks.formatVersion)
        let got = try EventBlocks.decode(enc.body) { _ in [] }.map(\.event)
        #expect(got == events)
        #expect(try EventBlocks.keys(enc.body) { _ in [] }.map { "\($0.source) \($0.id)" } == events.map { "\($0.source) \($0.id)" })
        // Only the four odd ones have columns; the others' subjects are read from their JSON (version 3).
        let p = try EventBlocks.payload(of: enc.body) { _ in [] }
        let parsed = try EventBlocks.Parsed(p.bytes, version: p.version)
        let odd = Array(repeating: false, count: 6) + Array(repeating: true, count: 4) + [false]
        #expect(parsed.columns.map { $0 != nil } == odd)
        #expect(parsed.subjects.map { $0 >= 0 } == odd)
        #expect(try EventBlocks.decode(enc.body, hidden: [0, 7], only: ["ORD-1"]) { _ in [] }.map(\.index) == [1, 3, 5])
        #expect(try EventBlocks.decode(enc.body, only: ["ORD-10", "ORD-é"]) { _ in [] }.map(\.index) == [9, 10])
        #expect(try EventBlocks.decode(enc.body, only: ["ORD-1", "ORD-0"]) { _ in [] }.map(\.event) == events.filter { ["ORD-0", "ORD-1"].contains($0.subject) })
        #expect(try EventBlocks.decode(enc.body, only: [""]) { _ in [] }.isEmpty)
        #expect(try EventBlocks.decode(enc.body, only: ["ORD-"]) { _ in [] }.isEmpty)

        // A block of format version 2 (every subject in the string table), as stored before: read as it was.
        let v2 = [2, 0] + EventBlocks.payload(events, base: events.map(\.time).min()!, version: 2)
        #expect(try EventBlocks.decode(v2) { _ in [] }.map(\.event) == events)
        #expect(try EventBlocks.Parsed(Array(v2.dropFirst(2)), version: 2).subjects.allSatisfy { $0 >= 0 })
        #expect(try EventBlocks.decode(v2, hidden: [0, 7], only: ["ORD-1"]) { _ in [] }.map(\.index) == [1, 3, 5])
        #expect(try EventBlocks.keys(v2, hidden: [3]) { _ in [] }.map(\.id) == events.enumerated().filter { $0.offset != 3 }.map(\.element.id))
        // Version 3 leaves out the subjects' strings and references.
        #expect(EventBlocks.payload(plain, base: plain[0].time).count + 10 < EventBlocks.payload(plain, base: plain[0].time, version: 2).count)

        // A block of format version 1 (every attribute a column), as stored before: read as it was.
        let v1 = [1, 0] + Self.version1Payload(events, base: events.map(\.time).min()!)
        #expect(try EventBlocks.decode(v1) { _ in [] }.map(\.event) == events)
        #expect(try EventBlocks.keys(v1, hidden: [3]) { _ in [] }.map(\.id) == events.enumerated().filter { $0.offset != 3 }.map(\.element.id))
    }

    /// Format 4 cuts a `time` or `traceparent` value out of an event's JSON only when the text made back
    /// from its binary form is the same bytes; any other text stays in the JSON.
    @Test func timeAndTraceparentTextsAreCutOnlyWhenMadeBackByteForByte() throws {
        let made = ["2026-10-05T00:00:11.644Z", "2026-10-05T01:00:19+01:00", "2026-10-05T01:00:19-05:30", "2026-10-05T00:00:11.123456Z",
                    "2026-10-05T00:00:11Z", "2026-10-05T00:00:11.5+00:00", "2026-10-05T00:00:11.000Z", "1969-12-31T23:59:59.999999Z",
                    "0001-01-01T00:00:00Z", "2026-03-01T05:30:00+13:45", "2024-02-29T23:59:59.12-23:59"]
        for text in made {
            let time = try #require(RFC3339.parse(text))
            let shape = Array(text.utf8).withUnsafeBufferPointer { EventTextCuts.timeShape($0, time: time) }
            #expect(shape != nil, "\(text)")
            #expect(shape.flatMap { EventTextCuts.format(time, $0) } == Array(text.utf8), "\(text)")
        }
        // Read as the same time, but not made back: kept as text.
        for text in ["2026-10-05t00:00:11Z", "2026-10-05T00:00:11z", "2026-10-05T00:00:11-00:00", "2026-10-05T00:00:11.123456789Z",
                     "2026-10-05T00:00:11.1234567Z", "2016-12-31T23:59:60Z", "2026-10-05 00:00:11Z"] {
            let time = try #require(RFC3339.parse(text), "\(text)")
            #expect(Array(text.utf8).withUnsafeBufferPointer { EventTextCuts.timeShape($0, time: time) } == nil, "\(text)")
        }
        let tp = "00-3a0562d56abd685a48f165d57b00c7f4-f3a160712456de77-01"
        let bytes = try #require(Array(tp.utf8).withUnsafeBufferPointer { EventTextCuts.traceparent($0) })
        #expect(bytes.count == 26 && bytes[0] == 0 && bytes[1] == 0x3a && bytes[25] == 1)
        #expect(EventTextCuts.traceparentText(bytes[...]) == Array(tp.utf8))
        for text in [tp.uppercased(), tp + "-ff", "x" + tp.dropFirst(), String(tp.dropLast()), tp.replacingOccurrences(of: "-f3", with: "_f3")] {
            #expect(Array(text.utf8).withUnsafeBufferPointer { EventTextCuts.traceparent($0) } == nil, "\(text)")
        }
    }

    /// A block of format 4 gives every event back byte for byte, whichever of its values were cut out,
    /// and is smaller than format 3 for the same events.
    @Test func blocksOfFormat4GiveEveryEventBackAsSent() throws {
        let tp = "00-3a0562d56abd685a48f165d57b00c7f4-f3a160712456de77-01"
        func event(_ i: Int, time: String, traceparent: String?, subject: String = "SO-1") throws -> CloudEvent {
            let text = #"{"specversion":"1.0","id":"oms-\#(i)","source":"oms","type":"order.note","time":"\#(time)","subject":"\#(subject)""#
                + (traceparent.map { #","traceparent":"\#($0)""# } ?? "") + #","data":{"n":\#(i),"time":"\#(time)"}}"#
            return try CloudEvent.validate(JSONParser.parse(Array(text.utf8)), raw: Array(text.utf8))
        }
        let events = [
            try event(0, time: "2026-10-05T00:00:11.644Z", traceparent: tp),                 // both cut
            try event(1, time: "2026-10-05T01:00:19+01:00", traceparent: nil),               // time cut
            try event(2, time: "2026-10-05T00:00:11.123456789Z", traceparent: tp),           // traceparent cut
            try event(3, time: "2026-10-05t00:00:12Z", traceparent: tp.uppercased()),        // neither
            try event(4, time: "2026-10-05T00:00:13-00:00", traceparent: tp, subject: "SO-10"),
            try event(5, time: "2026-10-04T23:59:59.5-03:30", traceparent: tp + "-ff"),
        ]
        let enc = EventBlocks.encode(events, dictionary: nil)
        #expect(enc.body[0] == 4)
        let got = try EventBlocks.decode(enc.body) { _ in [] }.map(\.event)
        #expect(got == events)
        #expect(got.map(\.raw) == events.map(\.raw))
        #expect(try EventBlocks.keys(enc.body, hidden: [1]) { _ in [] }.map(\.id) == ["oms-0", "oms-2", "oms-3", "oms-4", "oms-5"])
        #expect(try EventBlocks.decode(enc.body, only: ["SO-1"]) { _ in [] }.map(\.index) == [0, 1, 2, 3, 5])
        #expect(try EventBlocks.decode(enc.body, only: ["SO-10"]) { _ in [] }.map(\.event) == [events[4]])
        let p = try EventBlocks.payload(of: enc.body) { _ in [] }
        let parsed = try EventBlocks.Parsed(p.bytes, version: p.version)
        #expect(parsed.cutTimes.map { $0 != nil } == [true, true, false, false, false, true])
        #expect(parsed.cutTraces.map { $0 != nil } == [true, false, true, false, true, false])
        #expect(parsed.columns.allSatisfy { $0 == nil })
        // The JSON holds neither cut value's text: the payload is shorter than format 3's by about their length.
        let base = events.map(\.time).min()!
        #expect(EventBlocks.payload(events, base: base).count + 3 * 30 < EventBlocks.payload(events, base: base, version: 3).count)
        // Format 3 blocks of the same events read the same.
        #expect(try EventBlocks.decode([3, 0] + EventBlocks.payload(events, base: base, version: 3)) { _ in [] }.map(\.event) == events)
    }

    /// An append's blocks are cut by their predicted compressed size, not by a count of 32, and leave out
    /// an event already earlier in the append (its resend), which the writer would refuse anyway.
    @Test func appendsAreCutByCompressedSizeWithoutRepeatsOfTheirOwnEvents() async throws {
        let events = (0..<600).map { EventBlockStorageTests.oddEvent($0, subject: "ORD-\($0 % 50)", minutes: $0 / 20) }
        var otherSource = events[7]
        otherSource.source = "desk/elsewhere"
        let all = events + [events[3], events[10], otherSource]
        let (blocks, ratio) = EventBlocks.prepare(all, dictionary: nil, targetBytes: 1_500)
        #expect(blocks.flatMap(\.indexes) == Array(0..<600) + [602])
        #expect(blocks.contains { $0.indexes.count > 32 })
        #expect(ratio != nil)
        // Each block but the first (predicted from a guess) and the last is predicted from the one before it.
        for b in blocks.dropFirst().dropLast() { #expect(b.body.count > 750 && b.body.count < 3_000, "\(b.body.count) bytes, \(b.indexes.count) events") }
        // Stored: the repeats are duplicates, every other event is kept once.
        let s = try SQLiteStore(path: temporaryDatabase())
        defer { s.close() }
        #expect(try await s.append(all) == AppendResult(accepted: 601, duplicates: 2))
        for k in [3, 10] { #expect(try s.trace(key: "ORD-\(k)")?.events == events.filter { $0.subject == "ORD-\(k)" }) }
        let seven = (events.filter { $0.subject == "ORD-7" } + [otherSource]).enumerated()
            .sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }.map(\.element)
        #expect(try s.trace(key: "ORD-7")?.events == seven)
    }

    /// `oddEvent` with `digits` random digits in its data, so that blocks compress as real ones do
    /// (a few dozen bytes an event) rather than to almost nothing.
    static func paddedEvent(_ i: Int, subject: String, minutes: Int, digits: Int, _ rng: inout SplitMix64) -> CloudEvent {
        var e = EventBlockStorageTests.oddEvent(i, subject: subject, minutes: minutes)
        let pad = String((0..<digits).map { _ in Character(String(rng.next() % 10)) })
        e.raw = Array(String(decoding: e.raw, as: UTF8.self).replacingOccurrences(of: "\"n\":1.50", with: "\"n\":1.50,\"pad\":\"\(pad)\"").utf8)
        return e
    }

    /// The writer follows the last page of `event_blocks` from the rows' cell sizes: replayed over the
    /// rows in seq order, the sizes give the file's own pages, row for row, also for a row too large
    /// for a page (its overflow) and rows with hidden events.
    @Test func blockCellSizesGiveTheFilesOwnPages() async throws {
        let path = temporaryDatabase()
        var rng = SplitMix64(seed: 16)
        var events = (0..<3_000).map { Self.paddedEvent($0, subject: "ORD-\($0 % 300)", minutes: $0 / 10, digits: 80, &rng) }
        // One event of 20 KB of digits, which deflate cannot shrink below a page.
        events[1_600] = Self.paddedEvent(1_600, subject: "ORD-0", minutes: 160, digits: 20_000, &rng)
        var at = 0
        for half in 0..<2 {
            // A new writer for the second half: its resends of the first are no recent appends' events,
            // so their blocks hold them hidden.
            let s = try SQLiteStore(path: path)
            while at < (half + 1) * events.count / 2 {
                let n = Int(rng.next() % 150) + 1
                var batch = Array(events[at..<min(at + n, (half + 1) * events.count / 2)])
                // Resends of the first half's last 30 minutes, in the same hour as the batch (minutes 120 to 180).
                if half == 1, at < 1_800, rng.next() % 2 == 0 { batch.insert(events[1_200 + Int(rng.next() % 300)], at: batch.count / 2) }
                _ = try await s.append(batch)
                at += batch.count - (half == 1 && batch.count > n ? 1 : 0)
            }
            s.close()
        }
        let c = try Connection(path: path)
        #expect(try c.scalarInt("SELECT sum(n) FROM event_blocks") == 3_000)
        let usable = Int(try c.scalarInt("PRAGMA page_size"))
        let q = try c.prepare("SELECT seq, tmin, tmax, n, length(body), length(skip) FROM event_blocks ORDER BY seq")
        // Rows per page as the writer counts them: a row that does not fit starts a page.
        var pages: [Int] = []
        var page = BlockPages.LastPage()
        var overflowing = 0
        var hidden = 0
        while try q.step() {
            let cell = BlockPages.cellSize(seq: q.int64(0), tmin: q.int64(1), tmax: q.int64(2), count: Int(q.int64(3)), body: Int(q.int64(4)),
                                           hidden: q.isNull(5) ? nil : Int(q.int64(5)), usable: usable)
            if q.int64(4) > Int64(usable) { overflowing += 1 }
            if !q.isNull(5) { hidden += 1 }
            if pages.isEmpty || cell > page.free(usable: usable) { pages.append(0) }
            pages[pages.count - 1] += 1
            page.add(cell: cell, usable: usable)
        }
        q.reset()
        #expect(hidden > 0)
        #expect(overflowing == 1)
        let filePages = try c.prepare("SELECT ncell FROM dbstat WHERE name = 'event_blocks' AND pagetype = 'leaf' ORDER BY path")
        var cells: [Int] = []
        while try filePages.step() { cells.append(Int(filePages.int64(0))) }
        filePages.reset()
        #expect(cells.count > 20)
        #expect(pages == cells)
    }

    /// Rows go to the last page's room largest first; a new page starts with the largest left.
    @Test func blocksAreInsertedInTheOrderThatFillsPages() {
        #expect(BlockPages.packingOrder([1_000, 3_000, 500, 2_600], free: 3_200, usable: 8_192) == [1, 3, 0, 2])
        var rng = SplitMix64(seed: 7)
        for _ in 0..<200 {
            let cells = (0..<Int(rng.next() % 14)).map { _ in Int(rng.next() % 2_700) + 30 }
            let order = BlockPages.packingOrder(cells, free: Int(rng.next() % 8_000), usable: 8_192)
            #expect(order.sorted() == Array(cells.indices))
        }
    }

    /// 100-event appends that the writer takes four at a time (an HTTP server's concurrent requests),
    /// each cut into full blocks and a small rest, leave little of the pages of `event_blocks` unused:
    /// 11.4% when rows went in arrival order (`WAYBILL_BLOCK_PACKING=off`), under 5% in the order that
    /// fills pages.
    @Test func concurrentSmallAppendsFillTheirBlocksPages() async throws {
        let path = temporaryDatabase()
        let s = try SQLiteStore(path: path)
        var rng = SplitMix64(seed: 3)
        // One in eight events is a straggler from an earlier hour: it goes in a small block of its hour.
        let events = (0..<8_000).map { i in
            let late = rng.next() % 8 == 0 ? 60 + Int(rng.next() % 180) : 0
            return Self.paddedEvent(i, subject: "ORD-\(i % 500)", minutes: 600 + i / 40 - late, digits: 40, &rng)
        }
        for group in stride(from: 0, to: events.count, by: 400) {
            s.writer.setPaused(true)
            let tasks = stride(from: group, to: group + 400, by: 100).map { i in Task { try await s.append(Array(events[i..<(i + 100)])) } }
            while s.queuedEvents < 400 { try await Task.sleep(nanoseconds: 1_000_000) }
            s.writer.setPaused(false)
            for t in tasks { #expect(try await t.value.accepted == 100) }
        }
        s.close()
        let c = try Connection(path: path)
        let q = try c.prepare("SELECT 1.0 * sum(unused) / sum(pgsize) FROM dbstat WHERE name = 'event_blocks' AND pagetype = 'leaf'")
        _ = try q.step()
        let unused = q.double(0)
        q.reset()
        #expect(unused < 0.05, "\(unused)")
    }

    /// A store holding blocks of version 1, 2 or 3 beside new ones: traces and idempotency across both.
    @Test(arguments: [UInt8(1), 2, 3])
    func aStoreWithOlderBlocksReadsAndRefusesTheirResends(version: UInt8) async throws {
        let path = temporaryDatabase()
        let old = (0..<40).map { EventBlockStorageTests.oddEvent($0, subject: "ORD-\($0 % 8)", minutes: $0) }
        let new = (40..<80).map { EventBlockStorageTests.oddEvent($0, subject: "ORD-\($0 % 8)", minutes: $0) }
        try SQLiteStore(path: path).close()
        do {
            let c = try Connection(path: path)
            let ins = try c.prepare("INSERT INTO event_blocks(tmin, tmax, n, body) VALUES(?,?,?,?)")
            let lists = try SubjectLists(conn: c)
            for chunk in stride(from: 0, to: old.count, by: 10).map({ Array(old[$0..<($0 + 10)]) }) {
                let tmin = chunk.map(\.time).min()!
                ins.reset()
                let payload = version == 1 ? Self.version1Payload(chunk, base: tmin) : EventBlocks.payload(chunk, base: tmin, version: version)
                try ins.bind(1, tmin).bind(2, chunk.map(\.time).max()!).bind(3, chunk.count).bindBlob(4, [version, 0] + payload).run()
                let seq = Int64(try c.scalarInt("SELECT max(seq) FROM event_blocks"))
                for subject in Set(chunk.map(\.subject)) { try lists.append(seq, to: subject) }
            }
        }
        let s = try SQLiteStore(path: path)
        defer { s.close() }
        #expect(try await s.append(new) == AppendResult(accepted: 40, duplicates: 0))
        #expect(try await s.append(old + new) == AppendResult(accepted: 0, duplicates: 80))
        for k in 0..<8 {
            let want = (old + new).filter { $0.subject == "ORD-\(k)" }
            #expect(try s.trace(key: "ORD-\(k)")?.events.map(\.raw) == want.map(\.raw))
        }
    }

    /// The payload layout of format version 1, as the writer of schema versions 10 to 12 wrote it.
    static func version1Payload(_ events: [CloudEvent], base: Micros) -> [UInt8] {
        var strings: [String] = []
        func ref(_ s: String) -> UInt64 {
            if let i = strings.firstIndex(of: s) { return UInt64(i) }
            strings.append(s)
            return UInt64(strings.count - 1)
        }
        var out = ByteSink()
        out.unsigned(UInt64(events.count))
        out.signed(base)
        for e in events { out.block(e.raw) }
        for e in events { out.block(Array(e.id.utf8)) }
        var cols = ByteSink()
        for e in events {
            cols.unsigned(ref(e.subject))
            cols.signed(e.time - base)
            cols.unsigned(ref(e.source))
            cols.unsigned(ref(e.type))
            cols.unsigned(e.traceID.map { ref($0) + 1 } ?? 0)
        }
        out.bytes += cols.bytes
        out.unsigned(UInt64(strings.count))
        for s in strings { out.block(Array(s.utf8)) }
        return out.bytes
    }
}
