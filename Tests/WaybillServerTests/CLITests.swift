import AsyncHTTPClient
import Foundation
import Testing
import WaybillModel
import WaybillTestSupport

/// Runs the `waybill` binary and captures its output.
typealias CLIRun = ProcessRun

extension ProcessRun {
    /// Runs the `waybill` binary built with the tests.
    static func run(_ args: [String], stdin: String? = nil) throws -> ProcessRun {
        try run(ServerProcess.binary, args, stdin: stdin)
    }

    /// `run` awaited off the cooperative pool (`offThePool`): a test waiting for a child process in place
    /// holds one of the pool's two threads meanwhile, and with many tests doing so the loops and clocks
    /// of the others were not scheduled for minutes on a loaded machine (CI: manual-clock waits of 300 s).
    static func run(_ args: [String], stdin: String? = nil) async throws -> ProcessRun {
        try await offThePool { try run(ServerProcess.binary, args, stdin: stdin) }
    }

    var json: JSONValue? { try? JSONParser.parse(stdout) }

    /// Runs a Python script (`python3` from the PATH) with its output going to a file; nil when python3
    /// cannot be started, after printing why the calling test is skipped.
    static func python(_ script: String, _ args: [String], test: String) throws -> String? {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-py-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let scriptURL = dir.appendingPathComponent("script.py"), out = dir.appendingPathComponent("out")
        try script.write(to: scriptURL, atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: out.path, contents: nil)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", scriptURL.path] + args
        let handle = try FileHandle(forWritingTo: out)
        p.standardOutput = handle
        p.standardError = handle
        do { try p.run() } catch {
            print("SKIPPED \(test): python3 is not available: \(error)")
            return nil
        }
        p.waitUntilExit()
        try handle.close()
        return try String(contentsOf: out, encoding: .utf8)
    }
}

@Suite(.serialized) struct CLITests {
    static let events = [
        ce("a1", "order.accepted", "2026-11-23T14:00:00Z", "ORD-CLI", data: #"{"channel":"web","lines":[{"line":1,"sku":"A","qty":2}]}"#),
        ce("al1", "order.allocated", "2026-11-23T14:05:00Z", "ORD-CLI", source: "allocation", data: #"{"warehouse":"DC-EAST","lines":[{"line":1,"qty_allocated":2}]}"#),
        ce("s1", "order.shipped", "2026-11-23T16:00:00Z", "ORD-CLI", source: "wms", data: #"{"warehouse":"DC-EAST","tracking":"1ZCLI","links":["shipment:1ZCLI"]}"#),
    ]

    @Test func ingestTraceAndSearchAgainstTheEmbeddedStoreAndARemoteServer() async throws {
        guard FileManager.default.fileExists(atPath: ServerProcess.binary.path) else {
            Issue.record("waybill binary not found at \(ServerProcess.binary.path)")
            return
        }
        let db = temporaryDatabase()
        let dir = URL(fileURLWithPath: db).deletingLastPathComponent()
        let file = dir.appendingPathComponent("events.ndjson")
        try (Self.events.joined(separator: "\n") + "\n{\"specversion\":\"1.0\"}\n").write(to: file, atomically: true, encoding: .utf8)

        // Embedded store: the bad line is reported with its line number, the good ones are kept, exit status 1.
        let ingest = try await CLIRun.run(["ingest", file.path, "--db", db])
        #expect(ingest.status == 1)
        #expect(ingest.stdout.contains("accepted 3, duplicates 0, rejected 1"))
        #expect(ingest.stderr.contains("line 4: id: required attribute is missing"))

        let local = try await CLIRun.run(["trace", "shipment:1ZCLI", "--db", db, "--format", "json"])
        #expect(local.status == 0)
        #expect(local.json?["correlation_id"] == "ORD-CLI")
        #expect(local.json?["facts"]?["allocation_delay_s"] == 300)

        let timeline = try await CLIRun.run(["trace", "ORD-CLI", "--db", db])
        #expect(timeline.stdout.contains("state: shipped"))
        #expect(timeline.stdout.contains("+5m"))
        #expect(timeline.stdout.contains("allocation delay  5m"))

        let search = try await CLIRun.run(["search", "--db", db, "--warehouse", "DC-EAST", "--json"])
        #expect(search.json?["orders"]?.arrayValue?.count == 1)

        let kpi = try await CLIRun.run(["kpi", "--db", db, "--from", "2026-11-23T00:00:00Z", "--to", "2026-11-24T00:00:00Z", "--by", "warehouse", "--json"])
        #expect(kpi.status == 0)
        #expect(kpi.json?["total"]?["orders_allocated"] == 1)
        #expect(kpi.json?["groups"]?.arrayValue?.first?["key"]?["warehouse"] == "DC-EAST")
        let kpiTable = try await CLIRun.run(["kpi", "--db", db, "--from", "2026-11-23T00:00:00Z", "--to", "2026-11-24T00:00:00Z"])
        #expect(kpiTable.stdout.contains("Fill rate"))
        let badKPI = try await CLIRun.run(["kpi", "--db", db, "--by", "planet"])
        #expect(badKPI.status != 0)
        #expect(badKPI.stderr.contains("--by"))

        let bad = try await CLIRun.run(["search", "--db", db, "--state", "lost"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("state"))

        let missing = try await CLIRun.run(["trace", "ORD-NONE", "--db", db])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("ORD-NONE"))

        // The same store served over HTTP: remote reads give the same documents; remote ingest from stdin.
        let server = try await ServerProcess.start(db: db)
        defer { server.stop() }
        let remote = try await CLIRun.run(["trace", "shipment:1ZCLI", "--url", server.base, "--json"])
        #expect(remote.status == 0)
        #expect(remote.stdout == local.stdout)
        let more = ce("d1", "order.delivered", "2026-11-24T10:00:00Z", "ORD-CLI", source: "carrier")
        let remoteIngest = try await CLIRun.run(["ingest", "-", "--url", server.base], stdin: more + "\n" + Self.events[0] + "\n")
        #expect(remoteIngest.status == 0)
        #expect(remoteIngest.stdout.contains("accepted 1, duplicates 1, rejected 0"))
        let remoteSearch = try await CLIRun.run(["search", "--url", server.base, "--state", "delivered", "--json"])
        #expect(remoteSearch.json?["orders"]?.arrayValue?.first?["correlation_id"] == "ORD-CLI")
        let remoteKPI = try await CLIRun.run(["kpi", "--url", server.base, "--from", "2026-11-23T00:00:00Z", "--to", "2026-11-24T00:00:00Z", "--format", "csv"])
        #expect(remoteKPI.status == 0)
        #expect(remoteKPI.stdout.contains("orders_allocated"))
        let unreachable = try await CLIRun.run(["trace", "ORD-CLI", "--url", "http://127.0.0.1:1"])
        #expect(unreachable.status != 0)
        #expect(unreachable.stderr.contains("cannot reach"))
    }
}
