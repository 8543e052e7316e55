import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import WaybillModel
@testable import WaybillReports
import WaybillSQLite
import WaybillTestSupport

/// The export against the reference implementation (pm4py), the standard's JSON schema, and the real
/// binary: `waybill export ocel` over `--db` and `--url`, and `GET /api/v1/export/ocel`.
@Suite("OCEL 2.0 export, reference and front-ends", .serialized)
struct OCELReferenceTests {
    static let pm4pyScript = #"""
        import json, sys
        import jsonschema, pm4py
        path, schema_path = sys.argv[1], sys.argv[2]
        ocel = pm4py.read_ocel2_json(path)
        res = {"events": int(len(ocel.events)), "objects": int(len(ocel.objects)), "e2o": int(len(ocel.relations)),
               "o2o": int(0 if ocel.o2o is None else len(ocel.o2o))}
        res["object_types"] = sorted(set(ocel.objects["ocel:type"]))
        res["qualifiers"] = sorted(set(ocel.relations["ocel:qualifier"].dropna()))
        dfg = pm4py.discover_ocdfg(ocel)
        res["ocdfg_types"] = sorted(dfg["object_types"])
        res["order_edges"] = sorted("%s > %s" % k for k in dfg["edges"]["event_couples"].get("order", {}).keys())
        with open(schema_path) as f:
            schema = json.load(f)
        with open(path) as f:
            doc = json.load(f)
        v = jsonschema.Draft7Validator(schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
        res["schema_errors"] = [e.message[:200] for e in v.iter_errors(doc)][:5]
        # The checker checks: a time that is not one, or a typed value, is refused.
        bad = {"eventTypes": [], "objectTypes": [], "objects": [],
               "events": [{"id": "x", "type": "t", "time": "yesterday", "attributes": [{"name": "n", "value": 3}]}]}
        res["bad_refused"] = len(list(v.iter_errors(bad)))
        print(json.dumps(res))
        """#

    @Test func pm4pyReadsTheExportWithWaybillsCountsAndTheSchemaAcceptsIt() async throws {
        guard let venv = await PythonVenv.make("pm4py", packages: ["pm4py", "jsonschema", "rfc3339-validator"],
                                         test: "pm4pyReadsTheExportWithWaybillsCountsAndTheSchemaAcceptsIt") else { return }
        let (store, events, window) = try await OCELExportTests.store(orders: 150, tail: 45 * hour)
        defer { store.close() }
        let (bytes, summary) = try OCELExportTests.export(store, window)
        let path = try OCELExportTests.write(bytes)
        let expected = OCELTestData.expected(events, window: window)
        let (rc, out) = try await venv.script(Self.pm4pyScript, [path, OCELExportTests.fixtures.appendingPathComponent("ocel20-schema-json.json").path])
        try #require(rc == 0, "\(out.suffix(2000))")
        let res = try JSONParser.parse(String(out.split(separator: "\n").last ?? ""))
        // pm4py drops events without objects and relationships to unknown objects: equal counts mean it dropped nothing.
        #expect(res["events"]?.doubleValue == Double(summary.events))
        #expect(res["objects"]?.doubleValue == Double(summary.objects))
        #expect(res["e2o"]?.doubleValue == Double(summary.e2o))
        #expect(res["o2o"]?.doubleValue == Double(summary.o2o))
        #expect(summary.events == expected.eventIDs.count && summary.objects == expected.objectTypes.count)
        #expect(summary.e2o == expected.e2o && summary.o2o == expected.o2o.count)
        #expect(res["object_types"] == .array(Set(expected.objectTypes.values).sorted().map { .string($0) }))
        #expect(res["qualifiers"] == ["carrier", "customer", "line", "line warehouse", "link", "subject", "warehouse"])
        let edges = Set(res["order_edges"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        for e in ["order.accepted > order.validated", "order.allocated > order.note.added", "order.picked > order.shipped",
                  "order.shipped > order.invoiced", "order.credit_checked > order.cancelled"] {
            #expect(edges.contains(e), "the object-centric DFG of orders lacks \(e): \(edges.sorted())")
        }
        #expect(res["ocdfg_types"]?.arrayValue?.count == Set(expected.objectTypes.values).count)
        #expect(res["schema_errors"] == [], "schema: \(res["schema_errors"]!)")
        #expect((res["bad_refused"]?.doubleValue ?? 0) >= 2, "the validator does not check formats and value types")
    }

    // MARK: The binary: CLI over --db and --url, and the HTTP route

    static var binary: String {
        ProcessInfo.processInfo.environment["WAYBILL_BINARY"] ?? Bundle.main.bundleURL.appendingPathComponent("waybill").path
    }

    static func waybill(_ args: [String]) -> (Int32, String) { PythonVenv.run([binary] + args) }

    static func get(_ url: String) async throws -> (Int, [UInt8]) {
        let (data, response) = try await URLSession.shared.data(from: URL(string: url)!)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, Array(data))
    }

    static func gunzip(_ path: String) throws -> [UInt8] {
        let out = path + ".plain"
        let (rc, log) = PythonVenv.run(["python3", "-c", "import gzip,sys; open(sys.argv[2],'wb').write(gzip.open(sys.argv[1]).read())", path, out])
        guard rc == 0 else { throw OCELExportError.temporary("gunzip \(path): \(log)") }
        return Array(try Data(contentsOf: URL(fileURLWithPath: out)))
    }

    @Test func cliOverDBAndURLAndTheHTTPRouteGiveTheSameLog() async throws {
        guard FileManager.default.fileExists(atPath: Self.binary) else {
            Issue.record("waybill binary not found at \(Self.binary): build with `swift build --build-tests` first")
            return
        }
        let (store, events, window) = try await OCELExportTests.store(orders: 60)
        let (reference, summary) = try OCELExportTests.export(store, window)
        let db = store.path
        store.close()
        let from = RFC3339.format(window.lowerBound), to = RFC3339.format(window.upperBound)
        let dir = (db as NSString).deletingLastPathComponent

        let (rc, log) = Self.waybill(["export", "ocel", "--db", db, "--from", from, "--to", to, "--out", dir + "/db.json"])
        try #require(rc == 0, "\(log)")
        #expect(log.contains("wrote \(summary.events) events, \(summary.objects) objects"), "\(log)")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/db.json"))) == reference)
        #expect(Self.waybill(["export", "ocel", "--db", db, "--from", from, "--to", to, "--out", dir + "/db.json.gz", "--quiet"]).0 == 0)
        #expect(try Self.gunzip(dir + "/db.json.gz") == reference)
        // One thread writes the same bytes; a bad thread count is refused, naming the variable.
        let args = ["export", "ocel", "--db", db, "--from", from, "--to", to, "--quiet", "--out"]
        #expect(await PythonVenv.run(["env", "WAYBILL_OCEL_THREADS=1", Self.binary] + args + [dir + "/one.json"]).0 == 0)
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/one.json"))) == reference)
        let (threadsRC, threadsLog) = await PythonVenv.run(["env", "WAYBILL_OCEL_THREADS=0", Self.binary] + args + [dir + "/zero.json"])
        #expect(threadsRC != 0 && threadsLog.contains("WAYBILL_OCEL_THREADS: must be a whole number from 1 to 64"), "\(threadsLog)")
        let (badRC, badLog) = Self.waybill(["export", "ocel", "--db", db, "--from", "last tuesday", "--out", dir + "/bad.json"])
        #expect(badRC != 0 && badLog.contains("--from: must be RFC 3339 or relative like -7d"), "\(badLog)")
        #expect(!FileManager.default.fileExists(atPath: dir + "/bad.json") && !FileManager.default.fileExists(atPath: dir + "/bad.json.partial"))

        let port = Int.random(in: 20_000...60_000)
        let server = Process()
        server.executableURL = URL(fileURLWithPath: Self.binary)
        server.arguments = ["serve", "--port", String(port), "--db", db]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        defer {
            server.terminate()
            server.waitUntilExit()
        }
        let base = "http://127.0.0.1:\(port)"
        let healthy = try await eventually(30) { try await Self.get(base + "/healthz").0 == 200 ? true : nil }
        try #require(healthy == true, "server on \(port) did not come up")

        let (urlRC, urlLog) = Self.waybill(["export", "ocel", "--url", base, "--from", from, "--to", to, "--out", dir + "/url.json"])
        try #require(urlRC == 0, "\(urlLog)")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: dir + "/url.json"))) == reference)
        #expect(Self.waybill(["export", "ocel", "--url", base, "--from", from, "--to", to, "--out", dir + "/url.json.gz"]).0 == 0)
        #expect(try Self.gunzip(dir + "/url.json.gz") == reference)
        // gzip on the wire when asked for (curl leaves the body as sent).
        let (curlRC, curlLog) = await PythonVenv.run(["curl", "-sS", "-D", dir + "/headers", "-H", "Accept-Encoding: gzip", "-o", dir + "/wire.gz",
                                                base + "/api/v1/export/ocel?" + URLText.query(["from": from, "to": to])])
        if curlRC == 0 {
            #expect(try String(contentsOfFile: dir + "/headers", encoding: .utf8).lowercased().contains("content-encoding: gzip"))
            #expect(try Self.gunzip(dir + "/wire.gz") == reference)
        } else {
            print("SKIPPED gzip on the wire: curl: \(curlLog)")
        }
        let (remoteBad, remoteBadLog) = Self.waybill(["export", "ocel", "--url", base, "--from", "last tuesday"])
        #expect(remoteBad != 0 && remoteBadLog.contains("--from: must be RFC 3339 or relative like -7d"), "\(remoteBadLog)")

        let (status, body) = try await Self.get(base + "/api/v1/export/ocel?" + URLText.query(["from": from, "to": to]))
        #expect(status == 200 && body == reference)
        let (missing, missingBody) = try await Self.get(base + "/api/v1/export/ocel?to=now")
        #expect(missing == 400 && (try? JSONParser.parse(missingBody))?["error"] == "from: is required (RFC 3339 or relative like -7d)")
        let (unknown, unknownBody) = try await Self.get(base + "/api/v1/export/ocel?from=-1d&format=xml")
        #expect(unknown == 400 && (try? JSONParser.parse(unknownBody))?["error"] == "format: unknown parameter; known: from, to")
        let (_, openapi) = try await Self.get(base + "/openapi.json")
        #expect((try JSONParser.parse(openapi))["paths"]?["/api/v1/export/ocel"]?["get"]?["parameters"] != nil)
        #expect(events.count > 500)
    }
}
