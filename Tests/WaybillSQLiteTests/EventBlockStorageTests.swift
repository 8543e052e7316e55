import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillStore
import WaybillStoreConformance
@testable import WaybillSQLite
import WaybillTestSupport

/// Compact event storage (event blocks, compressed facts), its migration from the row-per-event
/// layout. (Interleaved arrival is a conformance check, run for every engine.)
@Suite struct EventBlockStorageTests {
    /// An event whose raw JSON is as a producer might write it: key order, spacing, escapes and
    /// non-ASCII text that a re-encoding would change.
    static func oddEvent(_ i: Int, subject: String, minutes: Int) -> CloudEvent {
        let time = t("2026-11-20T08:00:00Z") + Micros(minutes) * minute
        let text = #"{ "type" : "order.note", "specversion":"1.0","id":"n-\#(i)","source":"desk/\#(i % 3)","#
            + #""time":"\#(RFC3339.format(time))", "subject":"\#(subject)","data":{"text":"caf\u00e9 ☕ \"quoted\" \#(i)","n":1.50,"#
            + #""big":12345678901234567890,"links":[]},"traceparent":"00-\#(String(repeating: "ab", count: 16))-\#(String(repeating: "cd", count: 8))-01"}"#
        let raw = Array(text.utf8)
        let data = (try? JSONParser.parse(raw))?["data"]
        return CloudEvent(id: "n-\(i)", source: "desk/\(i % 3)", type: "order.note", time: time, subject: subject,
                          traceID: String(repeating: "ab", count: 16), data: data, raw: raw)
    }

    @Test func traceReturnsEveryEventExactlyAsSentAcrossBlocksAndReopening() async throws {
        let path = temporaryDatabase()
        // 400 events of 40 subjects interleaved, over three hours (several blocks per subject and write).
        let events = (0..<400).map { Self.oddEvent($0, subject: "ORD-\($0 % 40)", minutes: $0 / 2) }
        do {
            let s = try SQLiteStore(path: path)
            var i = 0
            for n in [1, 3, 96, 300] {
                _ = try await s.append(Array(events[i..<min(i + n, events.count)]))
                i += n
            }
            s.close()
        }
        let s = try SQLiteStore(path: path)
        defer { s.close() }
        #expect(try s.stats().events == 400)
        for k in 0..<40 {
            let want = events.filter { $0.subject == "ORD-\(k)" }
            let got = try #require(try s.trace(key: "ORD-\(k)")).events
            #expect(got == want)
            #expect(got.map(\.raw) == want.map(\.raw))
        }
        // Resent after the reopen: all duplicates.
        #expect(try await s.append(events.reversed()) == AppendResult(accepted: 0, duplicates: 400))
    }

    /// A store that only ever gets small appends (an HTTP server's clients posting a few events at a
    /// time) learns its dictionary from them once they add up to enough bytes.
    @Test func smallAppendsTogetherTeachTheDictionary() async throws {
        let path = temporaryDatabase()
        let events = (0..<400).map { Self.oddEvent($0, subject: "ORD-\($0)", minutes: $0) }
        do {
            let s = try SQLiteStore(path: path)
            for i in stride(from: 0, to: 200, by: 20) { _ = try await s.append(Array(events[i..<(i + 20)])) }
            for e in events[200...] { _ = try await s.append([e]) }
            s.close()
        }
        let c = try Connection(path: path)
        #expect(try c.scalarInt("SELECT count(*) FROM event_dict") == 1)
        let stored = try c.scalarInt("SELECT sum(length(body)) FROM event_blocks WHERE n = 1")
        let raw = events[200...].reduce(0) { $0 + $1.raw.count }
        #expect(stored * 3 < raw, "\(stored) bytes stored for \(raw) bytes of JSON")
        let s = try SQLiteStore(path: path)
        defer { s.close() }
        for k in [0, 150, 399] { #expect(try s.trace(key: "ORD-\(k)")?.events.map(\.raw) == [events[k].raw]) }
        #expect(try await s.append(events) == AppendResult(accepted: 0, duplicates: 400))
    }

    /// A resend in a later append (an HTTP client's retry) is left out of that append's blocks rather
    /// than stored in them as a hidden event; an event deleted since its first copy is stored again.
    @Test func resendsInLaterAppendsAreLeftOutOfTheirBlocksAndDeletedOnesStoredAgain() async throws {
        let path = temporaryDatabase()
        let events = (0..<300).map { Self.oddEvent($0, subject: "ORD-\($0 % 30)", minutes: $0) }
        let s = try SQLiteStore(path: path)
        defer { s.close() }
        #expect(try await s.append(Array(events[0..<200])) == AppendResult(accepted: 200, duplicates: 0))
        #expect(try await s.append(Array(events[150..<300])) == AppendResult(accepted: 100, duplicates: 50))
        let c = try Connection(path: path)
        #expect(try c.scalarInt("SELECT count(*) FROM event_blocks WHERE skip IS NOT NULL") == 0)
        #expect(try c.scalarInt("SELECT sum(n) FROM event_blocks") == 300)
        for k in [0, 29] {
            #expect(try s.trace(key: "ORD-\(k)")?.events.map(\.raw) == events.filter { $0.subject == "ORD-\(k)" }.map(\.raw))
        }
        // Retention deletes the first 100; their hashes are still among the recent ones.
        #expect(try await s.deleteEvents(before: events[100].time) == 100)
        #expect(try await s.append(Array(events[0..<120])) == AppendResult(accepted: 100, duplicates: 20))
        #expect(try c.scalarInt("SELECT sum(n) FROM event_blocks") == 300)
        for k in [0, 29] {
            #expect(try s.trace(key: "ORD-\(k)")?.events.map(\.raw) == events.filter { $0.subject == "ORD-\(k)" }.map(\.raw))
        }
        #expect(try await s.append(events) == AppendResult(accepted: 0, duplicates: 300))
    }

    /// `oddEvent` with another type, in its JSON and its field.
    static func typedEvent(_ i: Int, type: String, subject: String, minutes: Int) -> CloudEvent {
        var e = oddEvent(i, subject: subject, minutes: minutes)
        e.type = type
        e.raw = Array(String(decoding: e.raw, as: UTF8.self).replacingOccurrences(of: "order.note", with: type).utf8)
        return e
    }

    @Test func theTypesADictionaryHoldsAreReadFromItsText() {
        let text = #"{"type":"order.picked","data":{"n":1}}\n{ "type" : "shipment.delivered" }{"type":"a\"b"}"type":"#
        #expect(EventBlocks.types(inDictionary: Array(text.utf8)) == ["order.picked", "shipment.delivered"])
        #expect(EventBlocks.types(inDictionary: []) == [])
    }

    /// Live traffic starts with orders' first steps; their later ones come hours later. A dictionary
    /// learned from the first events lacks them, so a new one is learned once they are 1% of the
    /// events, and blocks written with every dictionary read back byte for byte.
    @Test func aNewDictionaryIsLearnedWhenNewEventTypesArrive() async throws {
        let path = temporaryDatabase()
        let first = (0..<200).map { Self.oddEvent($0, subject: "ORD-\($0 % 50)", minutes: $0 / 4) }
        let later = (200..<1_500).map { Self.typedEvent($0, type: "order.shipped", subject: "ORD-\($0 % 50)", minutes: $0 / 4) }
        do {
            let s = try SQLiteStore(path: path)
            _ = try await s.append(first)
            for i in stride(from: 0, to: later.count, by: 100) { _ = try await s.append(Array(later[i..<min(i + 100, later.count)])) }
            s.close()
        }
        let c = try Connection(path: path)
        let dictionaries = try c.scalarInt("SELECT count(*) FROM event_dict")
        #expect(dictionaries == 2)
        let s = try SQLiteStore(path: path)
        defer { s.close() }
        for k in [0, 17, 49] {
            let want = (first + later).filter { $0.subject == "ORD-\(k)" }
            #expect(try s.trace(key: "ORD-\(k)")?.events.map(\.raw) == want.map(\.raw))
        }
        #expect(try await s.append(first + later) == AppendResult(accepted: 0, duplicates: 1_500))
    }

    /// A producer whose every append brings a new type does not get a dictionary per append: each
    /// new one needs twice the events of the one before.
    @Test func newDictionariesComeLessOftenAsTheStoreGrows() async throws {
        let path = temporaryDatabase()
        let s = try SQLiteStore(path: path)
        for a in 0..<25 {
            _ = try await s.append((0..<100).map { Self.typedEvent(a * 100 + $0, type: "kind.\(a)", subject: "ORD-\($0)", minutes: a) })
        }
        s.close()
        // The first from the first append; the second after 1,000 more events; the third would need 2,000 after that.
        #expect(try Connection(path: path).scalarInt("SELECT count(*) FROM event_dict") == 2)
    }

    @Test func aLearnedDictionaryCompressesSmallBlocksAndSurvivesReopening() async throws {
        let path = temporaryDatabase()
        let events = (0..<400).map { Self.oddEvent($0, subject: "ORD-\($0)", minutes: $0) }
        do {
            let s = try SQLiteStore(path: path)
            // The first append holds over 32 KiB: the dictionary is learned from it.
            _ = try await s.append(Array(events[0..<200]))
            // One event per append from here: blocks of one event, compressed with it.
            for e in events[200...] { _ = try await s.append([e]) }
            s.close()
        }
        let c = try Connection(path: path)
        #expect(try c.scalarInt("SELECT count(*) FROM event_dict") == 1)
        #expect(try c.scalarInt("SELECT count(*) FROM event_blocks WHERE n = 1") == 200)
        let stored = try c.scalarInt("SELECT sum(length(body)) FROM event_blocks WHERE n = 1")
        let raw = events[200...].reduce(0) { $0 + $1.raw.count }
        // The events' JSON is about 330 bytes; a block of one takes a fraction of it.
        #expect(stored * 3 < raw, "\(stored) bytes stored for \(raw) bytes of JSON")
        // Blocks of many compress better still.
        let many = try c.scalarInt("SELECT sum(length(body)) FROM event_blocks WHERE n > 1")
        #expect(many * 5 < events[..<200].reduce(0) { $0 + $1.raw.count }, "\(many) bytes for the first 200")
        let s = try SQLiteStore(path: path)
        defer { s.close() }
        #expect(try s.trace(key: "ORD-399")?.events == [events[399]])
        #expect(try s.trace(key: "ORD-7")?.events == [events[7]])
    }

    @Test func retentionRewritesABlockThatStraddlesTheCutoff() async throws {
        let s = try SQLiteStore(path: temporaryDatabase())
        defer { s.close() }
        // One block (one subject, one hour): minutes 10, 20 and 50.
        let events = [10, 20, 50].enumerated().map { Self.oddEvent($0.offset, subject: "ORD-1", minutes: $0.element) }
        let other = Self.oddEvent(9, subject: "ORD-2", minutes: 5)
        _ = try await s.append(events + [other])
        let deleted = try await s.deleteEvents(before: t("2026-11-20T08:30:00Z"))
        #expect(deleted == 3)
        #expect(try s.stats().events == 1)
        #expect(try s.trace(key: "ORD-1")?.events == [events[2]])
        #expect(try s.trace(key: "ORD-2") == nil)
        // What retention deleted is new again when re-sent; what it kept is still a duplicate.
        #expect(try await s.append(events + [other]) == AppendResult(accepted: 3, duplicates: 1))
    }

    /// A recent event's resend is confirmed by a second hash of its `(source, id)` kept in memory, not by
    /// reading its block; an event whose first hash collides with it is still new.
    @Test func recentResendsAreConfirmedByASecondHash() throws {
        let path = temporaryDatabase()
        try SQLiteStore(path: path).close()
        let c = try Connection(path: path)
        let blocks = try EventBlockTable(conn: c, dictionary: EventDictionary())
        let dedup = try DedupIndex(conn: c, recentLimit: 1_000, blocks: blocks)
        #expect(try !dedup.contains(source: "oms", id: "e-1", hash: 42))
        // Block 7 does not exist: only the second hash can confirm the pair.
        dedup.inserted(hash: 42, seq: 7, source: "oms", id: "e-1")
        #expect(try dedup.contains(source: "oms", id: "e-1", hash: 42))
        #expect(try !dedup.contains(source: "oms", id: "e-2", hash: 42))
        #expect(try !dedup.contains(source: "wms", id: "e-1", hash: 42))
    }

    /// The idempotency index in partitions of two blocks: merges write into the newest partitions, a
    /// probe finds a hash in any of them, also after a restart.
    @Test func duplicatesAreFoundInEveryPartitionOfTheIndex() async throws {
        let path = temporaryDatabase()
        var o = SQLiteStore.Options()
        o.recentDedupLimit = 7
        try SQLiteStore(path: path, options: o).close()
        do {
            let c = try Connection(path: path)
            try c.exec("UPDATE meta SET value = '1' WHERE key = 'dedup_partition_shift'")
        }
        let events = StoreConformance.workload(orders: 12)
        do {
            let s = try SQLiteStore(path: path, options: o)
            for i in stride(from: 0, to: events.count, by: 5) {
                let chunk = Array(events[i..<min(i + 5, events.count)])
                #expect(try await s.append(chunk + [events[i / 2]]) == AppendResult(accepted: chunk.count, duplicates: 1))
            }
            s.close()
        }
        let c = try Connection(path: path)
        #expect(try c.scalarInt("SELECT count(DISTINCT g) FROM dedup_runs") > 3)
        let runs = try c.prepare("SELECT g, h0, body FROM dedup_runs")
        var pairs = 0
        while try runs.step() {
            let g = runs.int64(0)
            for p in try DedupRuns.decode(h0: runs.int64(1), body: runs.blob(2), g: g, shift: 1) {
                #expect(p.seq >> 1 == g)
                pairs += 1
            }
        }
        runs.reset()
        #expect(pairs > events.count / 2)
        let s = try SQLiteStore(path: path, options: o)
        defer { s.close() }
        #expect(try await s.append(events.shuffled()) == AppendResult(accepted: 0, duplicates: events.count))
        #expect(try s.stats().events == events.count)
    }

    @Test func duplicatesInsideOneAppendAndAcrossItsBlocks() async throws {
        let s = try SQLiteStore(path: temporaryDatabase())
        defer { s.close() }
        let a = Self.oddEvent(1, subject: "ORD-1", minutes: 1)
        let b = Self.oddEvent(2, subject: "ORD-1", minutes: 200) // another hour: another block
        var a2 = a
        a2.subject = "ORD-9" // same (source, id) under another subject is still the same event
        #expect(try await s.append([a, b, a, b, a2]) == AppendResult(accepted: 2, duplicates: 3))
        #expect(try s.trace(key: "ORD-1")?.events == [a, b])
        #expect(try s.trace(key: "ORD-9") == nil)
    }

    @Test func theFactsCacheKeepsTheRecentlyUsedWithinItsBound() {
        var cache = FactsCache(limit: 10)
        func entry(_ i: Int) -> FactsCache.Entry { (Int64(i), OrderFacts(orderID: "O-\(i)")) }
        for i in 0..<5 { cache.put("O-\(i)", entry(i)) }
        // The fifth put filled the young generation: it became the old one, every entry still found.
        #expect((0..<5).allSatisfy { cache.get("O-\($0)")?.rid == Int64($0) })
        for i in 5..<40 {
            cache.put("O-\(i)", entry(i))
            _ = cache.get("O-0") // kept in use: never dropped
            #expect(cache.count <= 10)
        }
        #expect(cache.get("O-0")?.rid == 0)
        #expect(cache.get("O-39")?.rid == 39)
        #expect(cache.get("O-20") == nil)
        // A newer value replaces the old one in either generation.
        cache.put("O-39", (99, OrderFacts(orderID: "O-39")))
        #expect(cache.get("O-39")?.rid == 99)
        // Taken out while the writer merges into it: gone until it is put back.
        #expect(cache.take("O-39")?.rid == 99)
        #expect(cache.get("O-39") == nil && cache.take("O-39") == nil)
        cache.put("O-39", (100, OrderFacts(orderID: "O-39")))
        #expect(cache.get("O-39")?.rid == 100)
    }

    @Test func theFactsCacheIsBoundedByTheSizeOfTheFactsToo() {
        // An order of 400 lines: its decoded facts take tens of kilobytes, so a count bound alone would let
        // a cache of such orders grow to gigabytes.
        func big(_ i: Int) -> FactsCache.Entry {
            var f = OrderFacts(orderID: "BIG-\(i)")
            let lines = JSONValue.array((1...400).map { .object(["line": .number(Double($0)), "sku": .string("SKU-\($0)"), "qty": 1]) })
            f.apply(CloudEvent(id: "a-\(i)", source: "oms", type: "order.accepted", time: 1_000, subject: "BIG-\(i)",
                               data: .object(["lines": lines])))
            return (Int64(i), f)
        }
        #expect(FactsCache.cost(big(0).facts) > 40_000)
        #expect(FactsCache.cost(OrderFacts(orderID: "O-1")) < 1_000)
        var cache = FactsCache(limit: 24_000, byteLimit: 1 << 20)  // the default is 64 MiB
        for i in 0..<200 { cache.put("BIG-\(i)", big(i)) }
        // 200 such orders would take 9 MB: a generation holds half a MiB of them (11), so at most 24 are kept.
        #expect(cache.count <= 2 * ((1 << 19) / FactsCache.cost(big(0).facts) + 1), "\(cache.count) entries kept")
        #expect(cache.get("BIG-199")?.rid == 199)
        #expect(cache.get("BIG-0") == nil)
        // Small orders are still kept by the thousand under the same budget.
        for i in 0..<1_000 { cache.put("O-\(i)", (Int64(i), OrderFacts(orderID: "O-\(i)"))) }
        #expect((0..<1_000).filter { cache.get("O-\($0)") != nil }.count >= 500)
    }

    @Test func factsAreStoredCompressedAndJSONRowsStayReadable() throws {
        var f = OrderFacts(orderID: "ORD-1")
        for e in StoreConformance.workload(orders: 1) where e.subject == "ORD-100" {
            var e = e
            e.subject = "ORD-1"
            f.apply(e)
        }
        let stored = FactsCodec.encode(f)
        #expect(stored.count * 2 < f.storageBytes.count, "\(stored.count) of \(f.storageBytes.count)")
        #expect(FactsCodec.decode(stored, orderID: "ORD-1") == f)
        #expect(FactsCodec.decode(f.storageBytes, orderID: "ORD-1") == f)
        #expect(FactsCodec.decode([1, 200, 3, 4], orderID: "ORD-1") == nil)
        #expect(FactsCodec.decode([], orderID: "ORD-1") == nil)
    }

    /// A store of schema version 9 (one `events` row per event, JSON facts) is converted when it opens:
    /// the same traces, facts, KPI rollups and idempotency, and it keeps taking writes.
    @Test func aVersion9StoreIsConvertedWhenOpened() async throws {
        let path = temporaryDatabase()
        let events = StoreConformance.workload(orders: 30) + (0..<300).map { Self.oddEvent($0, subject: "ORD-\(100 + $0 % 30)", minutes: $0) }
        let facts = events.reduce(into: [String: OrderFacts]()) { acc, e in
            if e.isOrderEvent { acc[e.subject, default: OrderFacts(orderID: e.subject)].apply(e) }
        }
        // The layout of version 9, written as its writer wrote it.
        do {
            let c = try Connection(path: path)
            try c.exec("PRAGMA journal_mode=WAL")
            try c.exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID")
            for v in 0..<9 { try c.exec(Schema.migrations[v]) }
            try c.exec("INSERT OR REPLACE INTO meta(key, value) VALUES('schema_version', '9')")
            try c.exec("UPDATE meta SET value = '1' WHERE key = 'stage_columns_backfill'")
            let ins = try c.prepare("INSERT INTO events(time, subject, source, id, type, trace_id, raw) VALUES(?,?,?,?,?,?,?)")
            for e in events {
                ins.reset()
                ins.bind(1, e.time).bind(2, e.subject).bind(3, e.source).bind(4, e.id).bind(5, e.type).bind(6, e.traceID).bindBlob(7, e.raw)
                try ins.run()
            }
            // Half the hashes merged into `dedup`, the rest only in `events` (as after a restart).
            try c.exec("INSERT OR REPLACE INTO meta(key, value) VALUES('dedup_merged_seq', '150')")
            let d = try c.prepare("INSERT INTO dedup(h, seq) VALUES(?, ?)")
            for (i, e) in events.prefix(150).enumerated() {
                d.reset()
                try d.bind(1, DedupIndex.hash(source: e.source, id: e.id)).bind(2, Int64(i + 1)).run()
            }
            let o = try c.prepare("INSERT INTO orders(order_id, first_time, last_time, event_count, types, sources, facts) VALUES(?,?,?,?,?,?,?)")
            for (id, f) in facts {
                o.reset()
                o.bind(1, id).bind(2, f.firstEventAt ?? 0).bind(3, f.lastEventAt ?? 0).bind(4, f.eventCount)
                    .bind(5, "|" + f.types.sorted().joined(separator: "|") + "|").bind(6, "|" + f.sources.sorted().joined(separator: "|") + "|")
                    .bindBlob(7, f.storageBytes)
                try o.run()
            }
            let k = try c.prepare("INSERT INTO keys(key, root) VALUES(?, ?)")
            for i in 0..<30 where i % 5 != 4 && i % 4 != 3 {
                for key in ["ORD-\(100 + i)", "shipment:1Z\(i)", "pod:POD-\(i)", "invoice:INV-\(i)"] {
                    k.reset()
                    try k.bind(1, key).bind(2, "ORD-\(100 + i)").run()
                }
            }
        }
        // The reference: the same events written by the current layout.
        let ref = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
        defer { ref.close() }
        _ = try await ref.append(events)

        let s = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        defer { s.close() }
        let c = try Connection(path: path)
        #expect(try c.scalarInt("SELECT count(*) FROM sqlite_master WHERE name = 'events'") == 0)
        #expect(try c.scalarInt("SELECT value FROM meta WHERE key = 'schema_version'") == Schema.migrations.count)
        #expect(try s.stats().events == events.count)
        for key in ["ORD-100", "ORD-101", "ORD-104", "ORD-107", "shipment:1Z2", "invoice:INV-5"] {
            let got = try s.trace(key: key)
            let want = try ref.trace(key: key)
            #expect(got?.events == want?.events, "\(key)")
            #expect(got?.events.map(\.raw) == want?.events.map(\.raw), "\(key)")
            #expect(got?.facts == want?.facts, "\(key)")
        }
        let window = t("2026-11-20T00:00:00Z")..<t("2026-11-22T00:00:00Z")
        let rows = try ref.rollupRows(dimension: "total@3600s", in: [window])
        #expect(!rows.isEmpty)
        #expect(try s.rollupRows(dimension: "total@3600s", in: [window]).map(\.bytes) == rows.map(\.bytes))
        // Idempotency carried over (merged and unmerged hashes alike); new events are taken.
        #expect(try await s.append(events.shuffled()) == AppendResult(accepted: 0, duplicates: events.count))
        let more = (300..<320).map { Self.oddEvent($0, subject: "ORD-100", minutes: $0) }
        #expect(try await s.append(more) == AppendResult(accepted: 20, duplicates: 0))
        #expect(try s.facts(orderID: "ORD-100")?.eventCount == facts["ORD-100"]!.eventCount + 20)
    }
}
