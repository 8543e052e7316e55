import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillStore
import WaybillTestSupport
@testable import WaybillClickHouse

/// What the write path sends: the rollup index rows of an order go once per bucket from one writer
/// (a later call writes only the buckets its new facts add), and the write path's reads are answered in
/// RowBinary, which `RowBinaryReader` reads and refuses when cut short.
@Suite struct ClickHouseIngestRowsTests {
    @Test func rowBinaryAnswersAreReadAndTruncatedOnesRefused() throws {
        // "oms", "oms-1" | "é\u{0}x" (a NUL inside a value), "" | UInt64 300
        var bytes: [UInt8] = [3] + Array("oms".utf8) + [5] + Array("oms-1".utf8)
        let odd = Array("é\u{0}x".utf8)
        bytes += [UInt8(odd.count)] + odd + [0]
        bytes += [44, 1, 0, 0, 0, 0, 0, 0]
        var r = RowBinaryReader(bytes)
        #expect(try r.string() == "oms")
        #expect(try r.string() == "oms-1")
        #expect(try r.string() == "é\u{0}x")
        #expect(try r.string() == "")
        // A NUL inside a value cannot make two (source, id) pairs one key.
        #expect(ClickHouseStore.PairKey(source: "a\u{0}b", id: "c") != ClickHouseStore.PairKey(source: "a", id: "b\u{0}c"))
        #expect(try r.uint64() == 300)
        #expect(r.atEnd)

        // A length of 200 (two varint bytes) and a value of 200 bytes.
        let long = [UInt8](repeating: UInt8(ascii: "a"), count: 200)
        var v = RowBinaryReader([0xC8, 0x01] + long)
        #expect(try v.string() == String(repeating: "a", count: 200))
        #expect(v.atEnd)

        // Cut short: inside a string, inside a length, inside an integer.
        for cut in [[3, 0x6F, 0x6D], [0x80]] as [[UInt8]] {
            var t = RowBinaryReader(cut)
            #expect(throws: StoreError.self) { _ = try t.stringBytes() }
        }
        var t = RowBinaryReader([1, 2, 3])
        #expect(throws: StoreError.self) { _ = try t.uint64() }
    }

    /// Facts rows are written binary (`OrderFactsBinary`) and read back in hex; a row written as JSON
    /// (before 2026-12-04) is still read. `Hex.decode` takes ClickHouse's `hex()` (upper case) and refuses anything else.
    @Test func factsAreStoredBinaryAndReadInEitherForm() async throws {
        #expect(Hex.decode("00ff7A0a") == [0x00, 0xFF, 0x7A, 0x0A])
        #expect(Hex.decode("") == [])
        for bad in ["0", "0g", "{\"order\":1}"] { #expect(Hex.decode(bad) == nil, "\(bad)") }
        try await TestThreads.run {
            guard let base = await TestClickHouse.url(test: "ClickHouseIngestRowsTests/factsAreStoredBinary") else { return }
            let url = TestClickHouse.fresh(base, "wbf")
            let store = try ClickHouseStore(url: url, rollup: KPIFactsRollup())
            defer { store.close() }
            let events = ClickHouseExactnessTests.history(orders: 20, seed: 5)
            _ = try await store.append(events)
            var facts: [String: OrderFacts] = [:]
            for e in events where e.isOrderEvent { facts[e.subject, default: OrderFacts(orderID: e.subject)].apply(e) }
            #expect(facts.count == 20)
            let first = try store.query("SELECT DISTINCT substring(hex(facts), 1, 2) AS b FROM \(store.t.table("orders"))")
            #expect(first.compactMap { $0["b"]?.stringValue } == ["03"])
            for (id, f) in facts { #expect(try store.facts(orderID: id) == f, "\(id)") }
            // A newer version of one order's facts, written as JSON.
            let id = facts.keys.sorted()[0]
            var newer = facts[id]!
            newer.eventCount += 1
            var row = RowWriter()
            row.begin()
            row.str("order_id", id)
            row.uint("ver", UInt64(newer.eventCount))
            row.str("facts", String(decoding: newer.storageBytes, as: UTF8.self))
            row.end()
            _ = try store.client.sendBlocking("INSERT INTO \(store.t.table("orders")) FORMAT JSONEachRow", rows: row.bytes)
            #expect(try store.facts(orderID: id) == newer)
        }
    }

    @Test func oneWriterSendsEachIndexRowOnce() async throws {
        try await TestThreads.run { try await indexRowsOnce() }
    }

    func indexRowsOnce() async throws {
        guard let base = await TestClickHouse.url(test: "ClickHouseIngestRowsTests/oneWriterSendsEachIndexRowOnce") else { return }
        let url = TestClickHouse.fresh(base, "wbr")
        let store = try ClickHouseStore(url: url, rollup: KPIFactsRollup())
        defer { store.close() }
        // Every order's lifecycle over three calls in time order: acceptance and allocations, then
        // release and shipment, then the rest. Each call moves the orders' facts into more buckets
        // (the shipment part, later steps) and keeps them in those of the calls before.
        let events = ClickHouseExactnessTests.history(orders: 60, seed: 3).sorted { ($0.time, $0.id) < ($1.time, $1.id) }
        var calls: [[CloudEvent]] = [[], [], []]
        for e in events {
            switch e.type {
            case "order.accepted", "order.allocated", "order.cancelled": calls[0].append(e)
            case "order.released", "order.shipped": calls[1].append(e)
            default: calls[2].append(e)
            }
        }
        var written = Set<[String]>()
        var facts: [String: OrderFacts] = [:]
        var repeated = 0
        for call in calls {
            let before = store.insertedRows["rollup_keys"]
            let r = try await store.append(call)
            #expect(r.accepted == call.count && r.duplicates == 0)
            var buckets = Set<[String]>()
            for e in call where e.isOrderEvent { facts[e.subject, default: OrderFacts(orderID: e.subject)].apply(e) }
            for f in facts.values {
                for k in try store.indexKeys(f) { buckets.insert([k.dimension, String(k.bucketStart), f.orderID]) }
            }
            repeated += buckets.intersection(written).count
            let fresh = buckets.subtracting(written)
            written.formUnion(buckets)
            // Only the buckets the new facts add: the ones the earlier calls' facts fell in are indexed.
            #expect(store.insertedRows["rollup_keys"] - before == fresh.count)
        }
        #expect(repeated > 0, "the later calls keep orders in buckets of the earlier ones")
        // The index holds every bucket every version of the facts fell in, each once.
        let stored = try store.query("SELECT dim, bucket, order_id FROM \(store.t.table("rollup_keys"))")
        let rows = stored.map { [$0["dim"]?.stringValue ?? "", String($0["bucket"]?.int64 ?? 0), $0["order_id"]?.stringValue ?? ""] }
        #expect(Set(rows) == written)
        #expect(rows.count == written.count)
        // The KPI documents are those of the facts.
        for q in try ClickHouseExactnessTests.kpiQueries() {
            let got = try KPIService(reader: store).document(q)
            #expect(got.json == KPIReport.compute(facts: Array(facts.values), query: q, quantiles: .sketched).json, "\(q)")
        }
    }
}
