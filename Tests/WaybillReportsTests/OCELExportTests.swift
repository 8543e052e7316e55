import Foundation
import Testing
import WaybillModel
import WaybillQuery
@testable import WaybillReports
import WaybillSQLite
import WaybillStore
import WaybillTestSupport

@Suite("OCEL 2.0 export")
struct OCELExportTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// A store holding the estate, appended in shuffled batches; and a window that cuts off the first
    /// orders' beginnings and the last orders' ends.
    static func store(orders: Int = 120, tail: Micros = 20 * hour) async throws -> (SQLiteStore, [CloudEvent], Range<Micros>) {
        let store = try SQLiteStore(path: temporaryDatabase())
        var events = OCELTestData.estate(orders: orders)
        var rng = SplitMix64(seed: 2026)
        events.shuffle(using: &rng)
        for start in stride(from: 0, to: events.count, by: 97) {
            _ = try await store.append(Array(events[start..<min(start + 97, events.count)]))
        }
        let window = (OCELTestData.t0 + 10 * minute)..<(OCELTestData.t0 + Micros(orders) * 90 * second + tail)
        return (store, events, window)
    }

    static func export(_ store: SQLiteStore, _ window: Range<Micros>, _ exporter: OCELExporter = OCELExporter()) throws -> ([UInt8], OCELExportSummary) {
        var bytes: [UInt8] = []
        let summary = try exporter.export(from: store, window: window) { bytes += $0 }
        return (bytes, summary)
    }

    @Test func theLogHoldsEveryEventObjectAndRelationshipOfTheWindowOnce() async throws {
        let (store, events, window) = try await Self.store(tail: 45 * hour)
        defer { store.close() }
        let (bytes, summary) = try Self.export(store, window)
        let doc = try JSONParser.parse(bytes, maxDepth: 16)
        let expected = OCELTestData.expected(events, window: window)

        #expect(Set(doc.objectValue!.keys) == ["events", "objects", "eventTypes", "objectTypes"])
        let outEvents = doc["events"]!.arrayValue!
        let outObjects = doc["objects"]!.arrayValue!
        let ids = outEvents.map { $0["id"]!.stringValue! }
        #expect(ids.count == Set(ids).count, "an event is listed twice")
        #expect(Set(ids) == expected.eventIDs)
        let times = outEvents.map { RFC3339.parse($0["time"]!.stringValue!)! }
        #expect(zip(times, times.dropFirst()).allSatisfy { $0 <= $1 }, "events are not in time order")
        #expect(times.allSatisfy { window.contains($0) })

        var objectTypes: [String: String] = [:]
        for o in outObjects {
            let id = o["id"]!.stringValue!
            #expect(objectTypes[id] == nil, "object \(id) listed twice")
            objectTypes[id] = o["type"]!.stringValue!
        }
        #expect(objectTypes == expected.objectTypes)
        var e2o = 0
        for e in outEvents {
            let rels = e["relationships"]!.arrayValue!
            e2o += rels.count
            let targets = rels.map { $0["objectId"]!.stringValue! }
            #expect(Set(targets).count == targets.count, "event \(e["id"]!) relates to an object twice")
            #expect(targets.allSatisfy { objectTypes[$0] != nil }, "event \(e["id"]!) relates to an object not listed")
        }
        #expect(e2o == expected.e2o)
        var o2o = Set<String>()
        for o in outObjects {
            for r in o["relationships"]!.arrayValue! {
                let target = r["objectId"]!.stringValue!
                #expect(objectTypes[target] != nil, "object-to-object relationship to \(target), which is not listed")
                o2o.insert(o["id"]!.stringValue! + " > " + target)
            }
        }
        #expect(o2o == expected.o2o)
        #expect(summary.events == ids.count && summary.objects == outObjects.count && summary.e2o == e2o && summary.o2o == o2o.count)
        #expect(summary.bytes == bytes.count)
        for (type, least) in [("order", 100), ("line", 200), ("shipment", 50), ("pod", 10), ("invoice", 10), ("payment", 10), ("customer", 7),
                              ("warehouse", 4), ("carrier", 2)] {
            #expect((summary.objectsByType[type] ?? 0) >= least, "\(type): \(summary.objectsByType)")
        }
    }

    @Test func attributesAreStringsOfTheirDeclaredTypes() async throws {
        let (store, _, window) = try await Self.store(orders: 60, tail: 45 * hour)
        defer { store.close() }
        let doc = try JSONParser.parse(try Self.export(store, window).0, maxDepth: 16)
        var declared: [String: [String: String]] = [:]
        for t in doc["eventTypes"]!.arrayValue! + doc["objectTypes"]!.arrayValue! {
            declared[t["name"]!.stringValue!] = Dictionary(uniqueKeysWithValues: t["attributes"]!.arrayValue!.map {
                ($0["name"]!.stringValue!, $0["type"]!.stringValue!)
            })
        }
        func check(_ type: String, _ a: JSONValue) {
            let name = a["name"]!.stringValue!
            guard let value = a["value"]?.stringValue else { Issue.record("\(type).\(name): value is not a string: \(a)"); return }
            guard let t = declared[type]?[name] else { Issue.record("\(type).\(name) is not declared"); return }
            switch t {
            case "integer": #expect(Int64(value) != nil, "\(type).\(name) = \(value)")
            case "float": #expect(Double(value) != nil, "\(type).\(name) = \(value)")
            case "boolean": #expect(value == "true" || value == "false")
            case "time": #expect(RFC3339.parse(value) != nil)
            case "string": break
            default: Issue.record("\(type).\(name) has type \(t), not one of OCEL's five")
            }
        }
        for e in doc["events"]!.arrayValue! { for a in e["attributes"]!.arrayValue! { check(e["type"]!.stringValue!, a) } }
        for o in doc["objects"]!.arrayValue! { for a in o["attributes"]!.arrayValue! { check(o["type"]!.stringValue!, a) } }
        // Types follow the values: 120 and 120.5 make a float, a boolean stays one, a time is a time,
        // nested data is JSON text, and a data field named like the event's own attribute keeps its value.
        #expect(declared["order.invoiced"]?["amount"] == "float")
        #expect(declared["payment.received"]?["amount"] == "integer")
        #expect(declared["order.credit_checked"]?["approved"] == "boolean")
        #expect(declared["order.accepted"]?["promised_ship_by"] == "time")
        #expect(declared["order.accepted"]?["lines"] == "string")
        #expect(declared["order.accepted"]?["data.source"] == "string" && declared["order.accepted"]?["source"] == "string")
        #expect(declared["order"]?["state"] == "string" && declared["line"]?["sku"] == "string")
        let accepted = doc["events"]!.arrayValue!.first { $0["id"] == "oms/ORD-1011-acc" }!
        let attrs = Dictionary(uniqueKeysWithValues: accepted["attributes"]!.arrayValue!.map { ($0["name"]!.stringValue!, $0["value"]!.stringValue!) })
        #expect(attrs["source"] == "oms" && attrs["data.source"] == "pos-17" && attrs["meta"] == #"{"campaign":"bf"}"#)
        #expect(attrs["links"] == nil)
    }

    @Test func anOrdersStateIsATimedAttributeThatOnlyRises() async throws {
        let (store, _, window) = try await Self.store(orders: 40, tail: 45 * hour)
        defer { store.close() }
        let doc = try JSONParser.parse(try Self.export(store, window).0, maxDepth: 16)
        func states(_ id: String) -> [String] {
            let o = doc["objects"]!.arrayValue!.first { $0["id"]?.stringValue == id }!
            return o["attributes"]!.arrayValue!.filter { $0["name"] == "state" }.map { "\($0["value"]!.stringValue!)@\($0["time"]!.stringValue!)" }
        }
        let s = { (i: Int, m: Micros) in RFC3339.format(OCELTestData.t0 + Micros(i) * 90 * second + m) }
        // ORD-1026: the straggling validation (stored last) still sits between accepted and allocated; the
        // note, the credit check and the re-allocation change nothing.
        #expect(states("ORD-1026") == ["accepted@\(s(26, 0))", "validated@\(s(26, minute))", "allocated@\(s(26, 5 * minute))",
                                      "picked@\(s(26, 2 * hour))", "shipped@\(s(26, 150 * minute))", "invoiced@\(s(26, 31 * hour))"])
        #expect(states("ORD-1013") == ["accepted@\(s(13, 0))", "validated@\(s(13, minute))", "cancelled@\(s(13, 20 * minute))"])
        // ORD-1000 began before the window: its state starts from what the window holds.
        #expect(states("ORD-1000").first == "allocated@\(s(0, 40 * minute))" || states("ORD-1000").first?.hasPrefix("picked@") == true)
        let line = doc["objects"]!.arrayValue!.first { $0["id"] == "ORD-1011#2" }!
        #expect(line["type"] == "line")
        #expect(line["attributes"]!.arrayValue!.map { "\($0["name"]!.stringValue!)=\($0["value"]!.stringValue!)" }.sorted() == ["qty=2.5", "sku=SKU-B"])
    }

    @Test func smallPagesAndSplitSpoolPartitionsGiveTheSameLog() async throws {
        let (store, _, window) = try await Self.store(orders: 80)
        defer { store.close() }
        let plain = try JSONParser.parse(try Self.export(store, window).0, maxDepth: 16)
        let spoolParent = (temporaryDatabase() as NSString).deletingLastPathComponent
        var tight = OCELExporter(temporaryDirectory: spoolParent)
        tight.pageSize = 3
        tight.partitions = 2
        tight.partitionLimit = 300
        tight.chunkBytes = 100
        var chunks = 0
        var bytes: [UInt8] = []
        _ = try tight.export(from: store, window: window) { bytes += $0; chunks += 1 }
        let split = try JSONParser.parse(bytes, maxDepth: 16)
        #expect(chunks > 100, "the document was not handed on in chunks")
        #expect(split["events"] == plain["events"])
        #expect(split["eventTypes"] == plain["eventTypes"] && split["objectTypes"] == plain["objectTypes"])
        func byID(_ d: JSONValue) -> [String: JSONValue] {
            Dictionary(uniqueKeysWithValues: d["objects"]!.arrayValue!.map { ($0["id"]!.stringValue!, $0) })
        }
        #expect(byID(split) == byID(plain))
        #expect(byID(plain).count > 250)
        // The spool's directory is gone afterwards.
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: spoolParent)
        #expect(leftovers.isEmpty, "temporary spool left behind: \(leftovers)")
    }

    /// The SQLite engine reads a whole window in one pass (`forEachEventPage`); it hands out the events
    /// and order that following `scanEvents` pages gives, whatever the page size (small ones take its
    /// burst fallback to pages), with resends, events of equal time in different blocks, and windows
    /// that start and end inside blocks.
    @Test func theOnePassScanGivesTheEventsOfThePagedScan() async throws {
        let store = try SQLiteStore(path: temporaryDatabase())
        defer { store.close() }
        var events = OCELTestData.estate(orders: 150)
        var rng = SplitMix64(seed: 15)
        // Events of equal time from different orders, arriving in different appends.
        for k in 0..<40 {
            events.append(OCELTestData.ev("tie-\(k)", "order.released", OCELTestData.t0 + Micros(k % 4) * 30 * minute, "ORD-\(1000 + k)", source: "wms"))
        }
        events.shuffle(using: &rng)
        for start in stride(from: 0, to: events.count, by: 61) {
            _ = try await store.append(Array(events[start..<min(start + 61, events.count)]))
        }
        // Resends: the same events again, some beside new ones in the same append.
        _ = try await store.append(Array(events.prefix(45)) + [OCELTestData.ev("late-1", "order.shipped", OCELTestData.t0 + 2 * hour, "ORD-1003", source: "wms")])
        let scanner: any EventScanner = store
        let windows = [(OCELTestData.t0 - hour)..<(OCELTestData.t0 + 400 * hour),
                       (OCELTestData.t0 + 17 * minute)..<(OCELTestData.t0 + 3 * hour + 7 * minute),
                       (OCELTestData.t0 + 30 * minute)..<(OCELTestData.t0 + 30 * minute + 1)]
        for window in windows {
            var paged: [String] = []
            var cursor: EventScanCursor?
            repeat {
                let p = try store.scanEvents(in: window, after: cursor, limit: 7)
                paged += p.events.map { "\($0.source)/\($0.id)@\($0.time)" }
                cursor = p.next
            } while cursor != nil
            #expect(paged.count == Set(paged).count)
            for pageSize in [1, 3, 50, 10_000] {
                var streamed: [String] = []
                var sizes: [Int] = []
                try scanner.forEachEventPage(in: window, pageSize: pageSize) { page in
                    sizes.append(page.count)
                    streamed += page.map { "\($0.source)/\($0.id)@\($0.time)" }
                }
                #expect(streamed == paged, "page size \(pageSize), window \(window)")
                #expect(sizes.allSatisfy { $0 >= 1 && $0 <= pageSize })
            }
        }
    }

    @Test func gzipFileDecompressesToTheSameDocument() async throws {
        let (store, _, window) = try await Self.store(orders: 30)
        defer { store.close() }
        let (plain, _) = try Self.export(store, window)
        let path = temporaryDatabase("log.json.gz")
        let file = try OCELFileOutput(path: path)
        _ = try OCELExporter().export(from: store, window: window) { try file.write($0) }
        #expect(!FileManager.default.fileExists(atPath: path), "the file appears before it is complete")
        try file.finish()
        #expect(!FileManager.default.fileExists(atPath: path + ".partial"))
        let (rc, out) = await PythonVenv.run(["python3", "-c", "import gzip,sys,hashlib; print(hashlib.sha256(gzip.open(sys.argv[1]).read()).hexdigest())", path])
        #expect(rc == 0, "\(out)")
        let (rc2, expected) = await PythonVenv.run(["python3", "-c", "import sys,hashlib; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())",
                                              try Self.write(plain)])
        #expect(rc2 == 0 && out == expected)
    }

    static func write(_ bytes: [UInt8], name: String = "log.json") throws -> String {
        let path = temporaryDatabase(name)
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func requestsNameTheFieldTheyBreak() {
        let now = t("2026-11-30T12:00:00Z")
        func refusal(_ body: () throws -> Any) -> String? {
            do {
                _ = try body()
                return nil
            } catch QueryFailure.badRequest(let f) {
                return f.description
            } catch {
                return "\(error)"
            }
        }
        #expect(refusal { try OCELRequest(from: nil, to: nil).window(now: now) } == "from: is required (RFC 3339 or relative like -7d)")
        #expect(refusal { try OCELRequest(from: "yesterday-ish", to: nil).window(now: now) } == "from: must be RFC 3339 or relative like -7d")
        #expect(refusal { try OCELRequest(from: "-1d", to: "-2d").window(now: now) } == "to: must be after from")
        #expect(refusal { try OCELRequest(parameters: ["from": "-1d", "limit": "3"]) } == "limit: unknown parameter; known: from, to")
        #expect((try? OCELRequest(from: "-1d", to: nil).window(now: now)) == (now - day)..<now)
    }
}
