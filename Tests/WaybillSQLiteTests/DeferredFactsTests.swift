import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillStore
import WaybillStoreConformance
@testable import WaybillSQLite
import WaybillTestSupport

/// Bulk loads defer order-row writes (`SQLiteStore.Options.deferredFactsEvents`): the rows must end as
/// the per-transaction writes leave them, the rollups must be the same bytes, and a store left with rows
/// unwritten (a killed load) must refold them from its events when it is opened again. Also the binary
/// facts codec of `orders.facts`.
@Suite struct DeferredFactsTests {
    /// 150 orders' events merged by time, a tenth moved up to 60 places later, a sixth resent anywhere,
    /// cut into appends of 1 to 80 events.
    static func appends(seed: UInt64) -> [[CloudEvent]] {
        let events = StoreConformance.workload(orders: 150)
        var rng = SplitMix64(seed: seed)
        var stream = events.enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }.map(\.element)
        for i in stride(from: stream.count - 1, through: 0, by: -1) where rng.next() % 10 == 0 {
            let e = stream.remove(at: i)
            stream.insert(e, at: min(stream.count, i + Int(rng.next() % 60) + 1))
        }
        for e in events where rng.next() % 6 == 0 { stream.insert(e, at: Int(rng.next() % UInt64(stream.count + 1))) }
        var out: [[CloudEvent]] = []
        var i = 0
        while i < stream.count {
            let n = min(Int(rng.next() % 80) + 1, stream.count - i)
            out.append(Array(stream[i..<(i + n)]))
            i += n
        }
        return out
    }

    static func deferred(events: Int = 60, orders: Int = 15) -> SQLiteStore.Options {
        var o = SQLiteStore.Options()
        o.deferredFactsEvents = events
        o.deferredFactsOrders = orders
        return o
    }

    /// Every order's facts and trace document, the search page, and the rollup rows as stored.
    static func snapshot(_ path: String) throws -> [String] {
        let s = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        defer { s.close() }
        var out: [String] = []
        for k in Set(StoreConformance.workload(orders: 150).map(\.subject)).sorted() {
            out.append(try s.trace(key: k).map { $0.documentJSON.jsonString } ?? "nil")
            out.append(try s.facts(orderID: k).map { $0.storageJSON.jsonString } ?? "nil")
        }
        out.append(try s.searchOrders(OrderQuery(now: t("2026-12-01T00:00:00Z"), limit: 1000)).documentJSON.jsonString)
        try s.readers.with { c in
            let q = try c.prepare("SELECT dim, bucket, gk, hex(acc) FROM rollups JOIN rollup_dims ON code = d ORDER BY dim, bucket, gk, part")
            defer { q.reset() }
            while try q.step() { out.append("\(q.text(0)) \(q.int64(1)) \(q.text(2)) \(q.text(3))") }
        }
        return out
    }

    static func write(_ appends: [[CloudEvent]], to path: String, options: SQLiteStore.Options) async throws {
        let s = try SQLiteStore(path: path, options: options, rollup: KPIFactsRollup())
        defer { s.close() }
        for a in appends { _ = try await s.append(a) }
    }

    @Test func deferredRowsEndAsPerTransactionRowsWithTheSameRollups() async throws {
        for seed: UInt64 in [1, 2, 3] {
            let appends = Self.appends(seed: seed)
            let direct = temporaryDatabase(), deferred = temporaryDatabase()
            try await Self.write(appends, to: direct, options: SQLiteStore.Options())
            try await Self.write(appends, to: deferred, options: Self.deferred())
            let want = try Self.snapshot(direct)
            let got = try Self.snapshot(deferred)
            #expect(got.count == want.count)
            #expect(got == want, "seed \(seed): \(zip(got, want).first { $0 != $1 }.map { "\n got \($0.0)\nwant \($0.1)" } ?? "")")
        }
    }

    /// A copy of the database files taken between two appends, while rows wait, is what a kill -9 leaves.
    @Test func aStoreLeftWithRowsUnwrittenRefoldsThemWhenOpened() async throws {
        let appends = Self.appends(seed: 7)
        let direct = temporaryDatabase()
        try await Self.write(appends, to: direct, options: SQLiteStore.Options())
        let want = try Self.snapshot(direct)

        let live = temporaryDatabase(), crashed = temporaryDatabase(), resumed = temporaryDatabase()
        // Large bounds: nothing is written before the copy.
        let s = try SQLiteStore(path: live, options: Self.deferred(events: 1_000_000, orders: 1_000_000), rollup: KPIFactsRollup())
        let cut = appends.count * 2 / 3
        for a in appends[..<cut] { _ = try await s.append(a) }
        let fm = FileManager.default
        for copy in [crashed, resumed] {
            for suffix in ["", "-wal"] where fm.fileExists(atPath: live + suffix) { try fm.copyItem(atPath: live + suffix, toPath: copy + suffix) }
        }
        s.close()
        do {
            let c = try Connection(path: crashed)
            let q = try c.prepare("SELECT (SELECT count(*) FROM orders), (SELECT value FROM meta WHERE key = 'facts_rollups_pending_from'), "
                                  + "(SELECT count(*) FROM rollups)")
            #expect(try q.step())
            #expect(q.int64(0) == 0, "rows were written before the copy")
            #expect(!q.isNull(1), "no pending marker in the copy")
            #expect(q.int64(2) == 0, "rollup rows were written before the copy: they must lag with the order rows")
            q.reset()
        }
        // Opened without deferral (as a server would) or with it (the load run again): the rows are
        // refolded at open, then the rest is appended.
        try await Self.write(Array(appends[cut...]), to: crashed, options: SQLiteStore.Options())
        #expect(try Self.snapshot(crashed) == want)
        try await Self.write(appends, to: resumed, options: Self.deferred())
        #expect(try Self.snapshot(resumed) == want)
    }

    /// A store opened while a load is running (`waybill kpi --db` during `waybill ingest --db`) leaves the
    /// load's open epoch to it: it used to refold the epoch's orders from their events at open, and the load
    /// then merged the same facts into the rows again. A second load of the same store is refused.
    @Test func aStoreOpenedDuringALoadLeavesTheLoadsRowsToIt() async throws {
        let appends = Self.appends(seed: 9)
        let direct = temporaryDatabase()
        try await Self.write(appends, to: direct, options: SQLiteStore.Options())
        let want = try Self.snapshot(direct)

        let path = temporaryDatabase()
        let load = try SQLiteStore(path: path, options: Self.deferred(events: 1_000_000, orders: 1_000_000), rollup: KPIFactsRollup())
        let cut = appends.count / 2
        for a in appends[..<cut] { _ = try await load.append(a) }
        // A reader of the same store, as another process opens it, while the epoch is open.
        let reader = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        reader.close()
        #expect(throws: StoreError.self) {
            _ = try SQLiteStore(path: path, options: Self.deferred(), rollup: KPIFactsRollup())
        }
        for a in appends[cut...] { _ = try await load.append(a) }
        load.close()
        #expect(try Self.snapshot(path) == want)
        // Once the load has closed, the next load may open the store.
        let again = try SQLiteStore(path: path, options: Self.deferred(), rollup: KPIFactsRollup())
        again.close()
    }

    /// Epochs of a few orders and events (the refold runs inside many appends), in the random order of a
    /// shuffled backfill: the same rows and rollup bytes as per-transaction writes.
    @Test func smallEpochsOfShuffledArrivalEndAsPerTransactionRows() async throws {
        for seed: UInt64 in [11, 12] {
            var rng = SplitMix64(seed: seed)
            var all = Self.appends(seed: seed).flatMap { $0 }
            for i in stride(from: all.count - 1, to: 0, by: -1) { all.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
            var appends: [[CloudEvent]] = []
            var i = 0
            while i < all.count {
                let n = min(Int(rng.next() % 50) + 1, all.count - i)
                appends.append(Array(all[i..<(i + n)]))
                i += n
            }
            let direct = temporaryDatabase(), deferred = temporaryDatabase(), wide = temporaryDatabase()
            try await Self.write(appends, to: direct, options: SQLiteStore.Options())
            try await Self.write(appends, to: deferred, options: Self.deferred(events: 37, orders: 9))
            try await Self.write(appends, to: wide, options: Self.deferred(events: 1_000_000, orders: 1_000_000))
            let want = try Self.snapshot(direct)
            #expect(try Self.snapshot(deferred) == want, "seed \(seed): small epochs")
            #expect(try Self.snapshot(wide) == want, "seed \(seed): one epoch")
        }
    }

    /// A store an earlier version left mid-load: `meta.facts_pending_from` with rows behind and the
    /// rollups already holding every event. Its rows are refolded at open, the rollups left as they are.
    @Test func theEarlierPendingMarkerRefoldsRowsOnly() async throws {
        let appends = Self.appends(seed: 5)
        let direct = temporaryDatabase(), old = temporaryDatabase()
        try await Self.write(appends, to: direct, options: SQLiteStore.Options())
        try await Self.write(appends, to: old, options: SQLiteStore.Options())
        let want = try Self.snapshot(direct)
        do {
            let c = try Connection(path: old)
            // Every row goes missing with the marker at the first block, as a deferred load of the
            // earlier version killed before it wrote any row left them.
            let m = try c.prepare("SELECT min(seq) FROM event_blocks")
            #expect(try m.step())
            let from = m.int64(0)
            m.reset()
            try c.exec("DELETE FROM orders")
            try c.prepare("INSERT INTO meta(key, value) VALUES('facts_pending_from', ?)").bind(1, String(from)).run()
        }
        #expect(try Self.snapshot(old) == want)
    }

    @Test func binaryFactsRoundTripAndOldFormsStayReadable() throws {
        var facts = OrderFacts.fold(StoreConformance.workload(orders: 150)).values.sorted { $0.orderID < $1.orderID }
        // Values a producer may send: fractional and huge quantities, negative zero, a missing sku,
        // non-ASCII text, an unknown source and type, times before 1970.
        func ev(_ id: String, _ type: String, _ time: Micros, source: String = "desk/1", _ data: JSONValue) -> CloudEvent {
            CloudEvent(id: id, source: source, type: type, time: time, subject: "ORD-ödd ☕", traceID: nil, data: data, raw: [])
        }
        var odd = OrderFacts(orderID: "ORD-ödd ☕")
        odd.apply(ev("x", "order.accepted", -5_000_000, ["channel": "", "region": "é", "promised_ship_by": "2999-01-01T00:00:00Z",
                                                         "lines": [["line": 1, "qty": 2.5], ["line": 2, "sku": "S", "qty": 1e300],
                                                                   ["line": 3, "sku": "S", "qty": .number(-0.0)], ["line": 4, "sku": "S", "qty": -3]]]))
        odd.apply(ev("y", "order.allocated", 7, source: "allocation", ["lines": [["line": 1, "qty_allocated": 0.1, "warehouse": "DC-Ä"]]]))
        odd.apply(ev("z", "custom.thing", Micros.max / 2, source: "odd source", ["x": 1]))
        odd.apply(ev("w", "order.cancelled", -1, ["reason": "test"]))
        facts.append(odd)
        facts.append(OrderFacts(orderID: ""))
        for f in facts {
            let b = FactsCodec.encode(f)
            #expect(b.first == 3)
            let back = try #require(FactsCodec.decode(b, orderID: f.orderID))
            #expect(OrderFactsBinary.decode(b) == nil, "the stored value leaves out the order id: a reader must pass it")
            #expect(FactsCodec.decode(b, orderID: "another")?.orderID == "another")
            #expect(OrderFactsBinary.decode(OrderFactsBinary.encode(f)) == f, "with the order id inside")
            #expect(back == f)
            #expect(back.accepted?.lines.map(\.qty.bitPattern) == f.accepted?.lines.map(\.qty.bitPattern))
            // The two older forms decode to the same facts.
            #expect(FactsCodec.decode(f.storageBytes, orderID: f.orderID) == OrderFacts(storageBytes: f.storageBytes))
            var v1 = ByteSink()
            v1.byte(1)
            v1.unsigned(UInt64(f.storageBytes.count))
            v1.bytes += Zlib.deflate(f.storageBytes, dictionary: FactsCodec.dictionaryV1, level: 1)
            #expect(FactsCodec.decode(v1.bytes, orderID: f.orderID) == OrderFacts(storageBytes: f.storageBytes))
        }
        // Format 2 (every string a literal), as a store of the previous version holds it: an order of nine
        // lines, each SKU written twice and its warehouse ten times. It decodes, and format 3 gives back the
        // same facts in fewer bytes.
        let v2hex =
            "023F0B534F2D303030303030303209A0A8DBAA92C3AE0600808996C9BF07B0E3BDA70D00076F6D732D322D310E047765"
            + "6209432D303238373839034E4501E09796A4C5070901310A534B552D30323436380201320A534B552D30303731360E01"
            + "330A534B552D30303036340601340A534B552D30303031381001350A534B552D30303134300601360A534B552D303034"
            + "38390C01370A534B552D30303030310401380A534B552D30313730390801390A534B552D303139323806A899AE620661"
            + "6C2D322D310F0944432D4E4F5254480901310A534B552D3032343638020944432D4E4F52544801320A534B552D303037"
            + "31360E0944432D4E4F52544801330A534B552D3030303634060944432D4E4F52544801340A534B552D30303031381009"
            + "44432D4E4F52544801350A534B552D3030313430060944432D4E4F52544801360A534B552D30303438390C0944432D4E"
            + "4F52544801370A534B552D3030303031040944432D4E4F52544801380A534B552D3031373039080944432D4E4F525448"
            + "01390A534B552D3031393238060944432D4E4F525448D0AEFCCA3507746D732D322D73110944432D4E4F525448045550"
            + "5313315A3030314545463030303030303030303209010002A0885B03A899AE6204B0E3BDA70D05B0E1CDE71B0680BAAF"
            + "FC1E07D0AEFCCA3508808996C9BF0709E0B69CFF510901040B0C0907060A02050F120E1115"
        let v2 = stride(from: 0, to: v2hex.count, by: 2).map { i in
            UInt8(v2hex[v2hex.index(v2hex.startIndex, offsetBy: i)..<v2hex.index(v2hex.startIndex, offsetBy: i + 2)], radix: 16)!
        }
        let old = try #require(FactsCodec.decode(v2, orderID: "ignored: format 2 holds its id"))
        #expect(old.orderID == "SO-00000002")
        #expect(old.accepted?.lines.count == 9 && old.firstAllocation?.lines.count == 9)
        #expect(old.firstAllocation?.lines.allSatisfy { $0.warehouse == "DC-NORTH" } == true)
        let v3 = FactsCodec.encode(old)
        #expect(FactsCodec.decode(v3, orderID: "SO-00000002") == old)
        #expect(v3.count < v2.count * 3 / 4, "format 3 takes \(v3.count) bytes against format 2's \(v2.count)")
        for n in 0..<v2.count { #expect(FactsCodec.decode(Array(v2[..<n]), orderID: "SO-00000002") == nil) }
        // Malformed values are refused, never a trap: every truncation, and bytes flipped.
        let b = FactsCodec.encode(facts[0])
        for n in 0..<b.count { #expect(FactsCodec.decode(Array(b[..<n]), orderID: "O") == nil) }
        var rng = SplitMix64(seed: 9)
        for _ in 0..<2000 {
            var c = b
            c[1 + Int(rng.next() % UInt64(c.count - 1))] = UInt8(truncatingIfNeeded: rng.next())
            _ = FactsCodec.decode(c, orderID: "O")
        }
        #expect(FactsCodec.decode([2, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F], orderID: "O") == nil)
        #expect(OrderFactsBinary.decode([3, 0, 3]) == nil, "a reference to a literal not yet written")
    }

    /// The stored form (format 4) leaves out what the row's columns hold and reads back equal with them;
    /// facts the columns do not hold exactly are stored as format 3.
    @Test func storedFactsLeaveOutTheRowsColumns() throws {
        var facts = OrderFacts.fold(StoreConformance.workload(orders: 150)).values.sorted { $0.orderID < $1.orderID }
        var saved = 0, shortened = 0
        for f in facts {
            let row = FactsCodec.encodeRow(f), memory = FactsCodec.encode(f)
            #expect(OrderFactsBinary.RowColumns.hold(f))
            #expect(row.first == 4)
            #expect(FactsCodec.decode(row, orderID: f.orderID, row: OrderFactsBinary.RowColumns(f)) == f)
            #expect(FactsCodec.decode(row, orderID: f.orderID) == nil, "format 4 needs its row's times")
            saved += memory.count - row.count
            shortened += 1
            // Every truncation and flipped byte is refused or read, never a trap.
            let times = OrderFactsBinary.RowColumns(f)
            for n in 0..<row.count { #expect(FactsCodec.decode(Array(row[..<n]), orderID: "O", row: times) == nil) }
            var rng = SplitMix64(seed: UInt64(row.count))
            for _ in 0..<50 {
                var c = row
                c[1 + Int(rng.next() % UInt64(c.count - 1))] = UInt8(truncatingIfNeeded: rng.next())
                _ = FactsCodec.decode(c, orderID: "O", row: times)
            }
        }
        #expect(saved / shortened >= 25, "format 4 saves \(saved / shortened) bytes an order")
        // What the columns do not hold: no event yet, a stage without its section (the accepted column
        // holds the section's time), a section earlier than its stage's time, a source with a `|`
        // (the column would read it back as two words). Format 3 keeps them.
        let shipped = try #require(facts.first { $0.firstShipment != nil })
        var noSection = shipped
        noSection.accepted = nil
        var earlier = shipped
        earlier.firstShipment?.ref.time -= 1
        var piped = shipped
        piped.sources.insert("a|b")
        facts = [OrderFacts(orderID: "O"), noSection, earlier, piped]
        for f in facts {
            #expect(!OrderFactsBinary.RowColumns.hold(f))
            let row = FactsCodec.encodeRow(f)
            #expect(row.first == 3)
            #expect(FactsCodec.decode(row, orderID: f.orderID, row: OrderFactsBinary.RowColumns(f)) == f)
        }
        // A section whose stage column is empty is malformed, not a trap.
        let row = FactsCodec.encodeRow(shipped)
        var times = OrderFactsBinary.RowColumns(shipped)
        #expect(FactsCodec.decode(row, orderID: shipped.orderID, row: times) == shipped)
        times.stages[Stage.shipped.rawValue - 1] = nil
        #expect(FactsCodec.decode(row, orderID: shipped.orderID, row: times) == nil)
    }

    /// The store writes format 4 and reads it back as the facts of the events; rows of format 3 (written by
    /// the previous version) read the same, and are rewritten as format 4 when their order is next written.
    @Test func storedFactsOfBothFormatsRead() async throws {
        let events = StoreConformance.workload(orders: 150)
        let want = OrderFacts.fold(events)
        let path = temporaryDatabase()
        let appends = Self.appends(seed: 7)
        try await Self.write(appends, to: path, options: SQLiteStore.Options())
        func formats() throws -> [Int: Int] {
            let c = try Connection(path: path)
            let q = try c.prepare("SELECT unicode(substr(facts, 1, 1)), count(*) FROM orders GROUP BY 1")
            var out: [Int: Int] = [:]
            while try q.step() { out[q.int(0)] = q.int(1) }
            q.reset()
            return out
        }
        #expect(try formats() == [4: want.count])
        let before = try Self.snapshot(path)
        do {
            let s = try SQLiteStore(path: path, rollup: KPIFactsRollup())
            for (k, f) in want { #expect(try s.facts(orderID: k) == f) }
            s.close()
        }
        // The previous version's values: format 3 without the order id.
        do {
            let c = try Connection(path: path)
            try c.transaction {
                let upd = try c.prepare("UPDATE orders SET facts = ? WHERE order_id = ?")
                for (k, f) in want {
                    upd.reset()
                    try upd.bindBlob(1, OrderFactsBinary.encode(f, omittingOrderID: true)).bind(2, k).run()
                }
            }
        }
        #expect(try formats() == [3: want.count])
        #expect(try Self.snapshot(path) == before)
        // Columns that disagree with a value of format 3 (as in a row written before a column existed, or
        // converted from an older layout): the next write rewrites them all, not only those that changed.
        try Connection(path: path).exec("UPDATE orders SET accepted_at = NULL, validated_at = NULL, shipped_at = shipped_at + 1, types = x'7c7c'")
        // Writing every order again (its first event resent plus one new event) rewrites it as format 4.
        let s = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        var later: [CloudEvent] = []
        for (i, k) in want.keys.sorted().enumerated() {
            later.append(CloudEvent(id: "late-\(i)", source: "oms", type: "order.note", time: want[k]!.lastEventAt! + 1, subject: k,
                                    data: ["note": "later"]))
        }
        _ = try await s.append(later)
        for (k, f) in want {
            var g = f
            g.apply(later.first { $0.subject == k }!)
            #expect(try s.facts(orderID: k) == g)
        }
        s.close()
        #expect(try formats() == [4: want.count])
        let c = try Connection(path: path)
        #expect(try c.scalarInt("SELECT count(*) FROM orders WHERE accepted_at IS NULL") == want.values.filter { $0.acceptedAt == nil }.count)
        #expect(try c.scalarInt("SELECT count(*) FROM orders WHERE types = x'7c7c'") == 0)
    }
}
