import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Testing
import WaybillAlerts
import WaybillKPI
import WaybillModel
import WaybillQuery
import WaybillReports
import WaybillSQLite
import WaybillStore
import WaybillTestSupport
@testable import WaybillServer

/// Orders interleaved over `days` days: accepted, allocated (some short) in three warehouses, shipped;
/// every 7th event resent and the whole set in shuffled order.
func reportEvents(start: Micros, days: Int, orders: Int) -> [CloudEvent] {
    var state: UInt64 = 11
    func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    var events: [CloudEvent] = []
    for i in 0..<orders {
        let id = "SO-\(i)"
        let accepted = start + Micros(next() % UInt64(days * 86_400)) * second
        let qty = Int(next() % 4) + 1
        let wh = ["DC-EAST", "DC-WEST", "DC-SOUTH"][Int(next() % 3)]
        let allocated = accepted + Micros(next() % 3600 + 30) * second
        let shipped = allocated + Micros(next() % (30 * 3600) + 600) * second
        events.append(CloudEvent(id: id + "-a", source: "oms", type: "order.accepted", time: accepted, subject: id,
                                 data: ["channel": "web", "promised_ship_by": .string(RFC3339.format(accepted + day)),
                                        "lines": [["line": 1, "sku": "A", "qty": .number(Double(qty))]]]))
        events.append(CloudEvent(id: id + "-al", source: "allocation", type: "order.allocated", time: allocated, subject: id,
                                 data: ["warehouse": .string(wh), "lines": [["line": 1, "sku": "A", "qty_allocated": .number(Double(i % 5 == 0 ? qty - 1 : qty))]]]))
        events.append(CloudEvent(id: id + "-s", source: "wms", type: "order.shipped", time: shipped, subject: id,
                                 data: ["warehouse": .string(wh), "carrier": "UPS", "tracking": .string("1Z\(i)")]))
    }
    events += events.enumerated().filter { $0.offset % 7 == 0 }.map(\.element)
    for i in stride(from: events.count - 1, to: 0, by: -1) { events.swapAt(i, Int(next() % UInt64(i + 1))) }
    return events
}

/// A queries folder with one scheduled report and one saved search, in a fresh temporary folder.
func writeQueries(_ dir: String, hookPort: Int) throws {
    try FileManager.default.createDirectory(atPath: dir + "/reports", withIntermediateDirectories: true)
    try FileManager.default.createDirectory(atPath: dir + "/searches", withIntermediateDirectories: true)
    try """
        title: Weekly executive report
        window: previous ISO week
        time_zone: Europe/Berlin
        by: warehouse
        step: 1d
        drilldowns: [allocation_delay.p95_s]
        schedule: "0 8 * * mon"
        deliver:
          - name: exec
            url: http://127.0.0.1:\(hookPort)/reports
            secret_env: TEST_REPORT_SECRET
            format: json
            timeout: 3s
        """.write(toFile: dir + "/reports/weekly.yaml", atomically: true, encoding: .utf8)
    try "title: Stuck\nfilters:\n  state: allocated\n  stuck: 4h\n".write(toFile: dir + "/searches/stuck.yaml", atomically: true, encoding: .utf8)
}

@Suite(.serialized) struct ReportServerTests {
    static let sunday = t("2026-11-22T12:00:00Z")
    static let monday = t("2026-11-23T07:00:00Z")  // 08:00 in Berlin

    /// The server's loops on a manual clock over a real store, delivering to a real hook on loopback:
    /// the Monday report arrives once and signed; a restart after it sends nothing; a Monday missed while
    /// the server was down arrives once when it is back, as of its own scheduled time.
    @Test func scheduledReportIsSentOnceAcrossRestartsAndAMissedRunOnce() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-report-sched-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let hookPort = Int.random(in: 20_000...40_000)
        let received = dir + "/hook.ndjson"
        try hookReceiverScript.write(toFile: dir + "/hook.py", atomically: true, encoding: .utf8)
        let hook = try Child("/usr/bin/env", ["python3", dir + "/hook.py", String(hookPort), received])
        defer { hook.stop(grace: 0) }
        try writeQueries(dir + "/queries", hookPort: hookPort)
        let saved = try SavedQueries.load(directory: dir + "/queries")
        let db = dir + "/w.db"
        do {
            let store = try SQLiteStore(path: db, rollup: KPIFactsRollup())
            _ = try await store.append(reportEvents(start: t("2026-11-09T00:00:00Z"), days: 28, orders: 800))
            store.close()
        }
        func notifications() -> [JSONValue] {
            ((try? String(contentsOfFile: received, encoding: .utf8)) ?? "").split(separator: "\n").compactMap { try? JSONParser.parse(String($0)) }
        }
        // One server run: the alert loops (no rules; the delivery worker knows the report's hook) and the
        // report scheduler, on `clock`, until `body` returns; then shut down and the store closed.
        func run(from start: Micros, _ body: (ManualClock) async throws -> Void) async throws {
            let store = try SQLiteStore(path: db, rollup: KPIFactsRollup())
            defer { store.close() }
            let clock = ManualClock(now: start)
            let lanes = ReadLanes(point: ReadExecutor(threads: 1, name: "rt-point"), scan: ReadExecutor(threads: 1, name: "rt-scan"))
            defer { lanes.stop() }
            let queries = LocalQueries(store: store, lanes: lanes, clock: { clock.now() })
            let worker = DeliveryWorker(store: store, hooks: saved.deliveryHooks, maxAttempts: 3, transport: HTTPNotificationTransport(),
                                        environment: ["TEST_REPORT_SECRET": "s3cret"])
            let scheduler = try #require(ReportScheduleService.make(saved, store: store, queries: queries, baseURL: "https://waybill.example",
                                                                    clock: clock, logger: Logger(label: "test")))
            let schedule = Task { try await scheduler.run() }
            let delivery = Task {
                while !Task.isCancelled {
                    _ = try? await worker.runOnce(now: clock.now())
                    try? await clock.sleep(for: second)
                }
            }
            defer {
                schedule.cancel()
                delivery.cancel()
            }
            try await clock.waitForSleepers(2)
            try await body(clock)
            schedule.cancel()
            delivery.cancel()
            _ = await schedule.result
            _ = await delivery.result
        }
        /// Moves the clock to `instant`, then one delivery second, waiting for both loops to park each time.
        func step(_ clock: ManualClock, to instant: Micros) async throws {
            clock.advance(to: instant)
            try await clock.waitForSleepers(2)
            clock.advance(by: second)
            try await clock.waitForSleepers(2)
        }

        // Sunday: the server starts; nothing is due. Monday 08:00 Berlin: the report goes out.
        try await run(from: Self.sunday) { clock in
            try await step(clock, to: Self.monday - minute)
            #expect(notifications().isEmpty)
            try await step(clock, to: Self.monday)
            #expect(notifications().count == 1)
        }
        let first = try #require(notifications().first)
        let body = Array((first["body"]?.stringValue ?? "").utf8)
        let ts = try #require(Int64(first["headers"]?["x-waybill-timestamp"]?.stringValue ?? ""))
        #expect(HookSignature.verify(secret: Array("s3cret".utf8), timestamp: ts, body: body,
                                     header: first["headers"]?["x-waybill-signature"]?.stringValue ?? ""))
        #expect(first["headers"]?["content-type"]?.stringValue == "application/json")
        let doc = try JSONCoding.decode(ReportDocument.self, from: body)
        #expect(doc.at == "2026-11-23T07:00:00Z")
        #expect(doc.window.from == "2026-11-15T23:00:00Z" && doc.window.to == "2026-11-22T23:00:00Z")
        #expect(doc.current.total.ordersAllocated > 100)
        #expect(doc.current.groups.map(\.value) == ["DC-EAST", "DC-SOUTH", "DC-WEST"])

        // Restarted the same morning: the Monday report is not sent again.
        try await run(from: Self.monday + 20 * minute) { clock in
            try await step(clock, to: Self.monday + 40 * minute)
            try await step(clock, to: Self.monday + 2 * hour)
        }
        #expect(notifications().count == 1)

        // Down over the next Monday, back on Wednesday: that Monday's report is sent once, as of Monday 08:00.
        let wednesday = t("2026-12-02T10:00:00Z")
        try await run(from: wednesday) { clock in
            try await step(clock, to: wednesday + second)
            try await step(clock, to: wednesday + hour)
        }
        #expect(notifications().count == 2)
        let missed = try JSONCoding.decode(ReportDocument.self, from: Array((notifications().last?["body"]?.stringValue ?? "").utf8))
        #expect(missed.at == "2026-11-30T07:00:00Z" && missed.window.from == "2026-11-22T23:00:00Z")
        // And once more back: nothing new until the following Monday, which is sent.
        try await run(from: wednesday + 2 * hour) { clock in
            try await step(clock, to: t("2026-12-07T06:59:00Z"))
            #expect(notifications().count == 2)
            try await step(clock, to: t("2026-12-07T07:00:00Z"))
        }
        #expect(notifications().count == 3)
    }

    /// `waybill serve --queries`: the report routes list and render; the CLI renders the same report byte
    /// for byte from the store (`--db`) and from the server (`--url`) in every format; bad parameters
    /// are 400 naming the field, an unknown report 404; `--saved` runs a saved search; `queries check`
    /// passes the folder and refuses a bad file naming file, line and field.
    @Test func reportRoutesAndCLIAgreeOverDbAndUrl() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-report-http-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeQueries(dir + "/queries", hookPort: 9)
        let db = dir + "/w.db"
        do {
            let store = try SQLiteStore(path: db, rollup: KPIFactsRollup())
            _ = try await store.append(reportEvents(start: t("2026-11-09T00:00:00Z"), days: 21, orders: 500))
            store.close()
        }
        let port = Int.random(in: 40_001...60_000)
        let server = try Child(ServerProcess.binary.path, ["serve", "--port", String(port), "--db", db, "--queries", dir + "/queries"],
                               env: ["TEST_REPORT_SECRET": "x"], log: dir + "/serve.log")
        defer { server.stop() }
        let base = "http://127.0.0.1:\(port)"
        _ = try await eventually(15) { try await httpGetJSON(base + "/healthz") }

        let list = try #require(try await httpGetJSON(base + "/api/v1/reports"))
        #expect(list["reports"]?.arrayValue?.map { $0["name"]?.stringValue } == ["weekly"])
        #expect(list["reports"]?.arrayValue?.first?["schedule"]?.stringValue == "0 8 * * mon")
        #expect(list["reports"]?.arrayValue?.first?["deliver"]?.arrayValue?.first?["format"]?.stringValue == "json")

        func get(_ path: String) async throws -> (Int, String, String) {
            let r = try await HTTPClient.shared.execute(HTTPClientRequest(url: base + path), timeout: .seconds(30))
            return (Int(r.status.code), r.headers.first(name: "content-type") ?? "", String(buffer: try await r.body.collect(upTo: 16 << 20)))
        }
        let at = "2026-11-25T10:00:00Z"
        for format in ["html", "csv", "json", "md"] {
            let (status, type, http) = try await get("/api/v1/reports/weekly?format=\(format)&at=\(at)")
            #expect(status == 200)
            #expect(type == ReportRenderer.contentType(ReportRenderer.Format(rawValue: format)!))
            let local = try await CLIRun.run(["report", "weekly", "--db", db, "--queries", dir + "/queries", "--at", at, "--format", format])
            let remote = try await CLIRun.run(["report", "weekly", "--url", base, "--queries", dir + "/queries", "--at", at, "--format", format])
            #expect(local.status == 0 && remote.status == 0, "\(local.stderr) \(remote.stderr)")
            #expect(local.stdout == remote.stdout, "format \(format)")
            #expect(local.stdout == http, "format \(format)")
            #expect(local.stdout.count > 500)
        }
        #expect(try await get("/api/v1/reports/weekly?format=pdf").0 == 400)
        #expect(try await get("/api/v1/reports/weekly?format=pdf").2.contains("format"))
        #expect(try await get("/api/v1/reports/weekly?at=yesterday-ish").2.contains("at"))
        #expect(try await get("/api/v1/reports/weekly?colour=red").0 == 400)
        #expect(try await get("/api/v1/reports/nope").0 == 404)
        #expect(try await get("/api/v1/reports?x=1").0 == 400)
        let page = try await get("/reports")
        #expect(page.0 == 200 && page.2.contains("/api/v1/reports/weekly?format=html"))
        let openapi = try #require(try await httpGetJSON(base + "/openapi.json"))
        #expect(openapi["paths"]?["/api/v1/reports/{name}"]?["get"] != nil && openapi["paths"]?["/api/v1/reports"]?["get"] != nil)

        // A saved search over the CLI, from the store and from the server; a flag beside --saved refines it.
        let saved = try await CLIRun.run(["search", "--saved", "stuck", "--queries", dir + "/queries", "--db", db, "--at", at, "--format", "json"])
        let flags = try await CLIRun.run(["search", "--state", "allocated", "--stuck", "4h", "--db", db, "--at", at, "--format", "json"])
        #expect(saved.status == 0 && saved.stdout == flags.stdout, "\(saved.stderr)")
        let viaURL = try await CLIRun.run(["search", "--saved", "stuck", "--queries", dir + "/queries", "--url", base, "--at", at, "--format", "json"])
        #expect(viaURL.stdout == saved.stdout)
        #expect(try await CLIRun.run(["search", "--saved", "nope", "--queries", dir + "/queries", "--db", db]).stderr.contains("stuck"))

        // queries check: the folder passes; a bad file is named with its line and field, exit 1.
        let ok = try await CLIRun.run(["queries", "check", dir + "/queries"])
        #expect(ok.status == 0 && ok.stdout.contains("ok: 1 reports, 1 searches"))
        try "title: Bad\nwindow: previous day\nkpis: [fill_rate, speed]\n".write(toFile: dir + "/queries/reports/bad.yaml", atomically: true, encoding: .utf8)
        let bad = try await CLIRun.run(["queries", "check", dir + "/queries"])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains(dir + "/queries/reports/bad.yaml:3") && bad.stderr.contains("kpis") && bad.stderr.contains("'speed' is not a KPI"))
        // The shipped folder passes.
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
        let shipped = try await CLIRun.run(["queries", "check", root + "/queries"])
        #expect(shipped.status == 0, "\(shipped.stderr)")
    }

    /// The report routes go through access control like the others: read scope (admin implies it).
    @Test func reportRoutesNeedAReadToken() async throws {
        let store = try await AccessControlTests.store()
        defer { store.close() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-report-acl-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try writeQueries(dir, hookPort: 9)
        var config = ServerConfig()
        config.savedQueries = try SavedQueries.load(directory: dir)
        let app = buildApplication(store: store, config: config)
        try await app.test(.router) { client in
            for path in ["/api/v1/reports", "/api/v1/reports/weekly?format=json&at=2026-11-25T10:00:00Z", "/reports"] {
                for (token, status) in [(nil, HTTPResponse.Status.unauthorized), (AccessControlTests.secret("ing"), .forbidden),
                                        (AccessControlTests.secret("gone"), .unauthorized), (AccessControlTests.secret("rd"), .ok),
                                        (AccessControlTests.secret("adm"), .ok)] {
                    try await client.execute(uri: path, method: .get, headers: AccessControlTests.headers(nil, token: token)) { r in
                        #expect(r.status == status, "\(path) with \(token ?? "no token")")
                    }
                }
            }
            try await client.execute(uri: "/api/v1/reports/weekly", method: .post, headers: AccessControlTests.headers(nil, token: AccessControlTests.secret("rd"))) {
                #expect($0.status == .methodNotAllowed)
            }
            // Sending now posts to the report's hooks: admin only. This server runs no delivery worker: 409.
            for (token, status) in [(nil, HTTPResponse.Status.unauthorized), (AccessControlTests.secret("ing"), .forbidden),
                                    (AccessControlTests.secret("rd"), .forbidden), (AccessControlTests.secret("adm"), .conflict)] {
                try await client.execute(uri: "/api/v1/reports/weekly/send", method: .post, headers: AccessControlTests.headers(nil, token: token)) { r in
                    #expect(r.status == status, "POST /api/v1/reports/weekly/send with \(token ?? "no token")")
                }
            }
            try await client.execute(uri: "/api/v1/reports/nope/send", method: .post, headers: AccessControlTests.headers(nil, token: AccessControlTests.secret("adm"))) {
                #expect($0.status == .notFound)
            }
        }
    }

    /// `waybill report NAME --send`: through the store's outbox, signed; with --url the server queues it and its
    /// delivery worker sends it; a hook nobody listens on is retried, reported, and left pending in the outbox;
    /// a missing secret is refused before anything is queued.
    @Test func sendDeliversNowSignedAndReportsFailures() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-report-send-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let hookPort = Int.random(in: 20_000...40_000)
        let received = dir + "/hook.ndjson"
        try hookReceiverScript.write(toFile: dir + "/hook.py", atomically: true, encoding: .utf8)
        let hook = try Child("/usr/bin/env", ["python3", dir + "/hook.py", String(hookPort), received])
        defer { hook.stop(grace: 0) }
        try writeQueries(dir + "/queries", hookPort: hookPort)
        let db = dir + "/w.db"
        do {
            let store = try SQLiteStore(path: db, rollup: KPIFactsRollup())
            _ = try await store.append(reportEvents(start: t("2026-11-09T00:00:00Z"), days: 21, orders: 200))
            store.close()
        }
        _ = try await eventually(10) { () -> Bool? in
            (try? await HTTPClient.shared.execute(HTTPClientRequest(url: "http://127.0.0.1:\(hookPort)/"), timeout: .seconds(1))) != nil ? true : nil
        }
        unsetenv("TEST_REPORT_SECRET")
        let noSecret = try await CLIRun.run(["report", "weekly", "--send", "--db", db, "--queries", dir + "/queries"])
        #expect(noSecret.status != 0 && noSecret.stderr.contains("TEST_REPORT_SECRET"))
        #expect(!FileManager.default.fileExists(atPath: received))
        // The CLI reads the secret from its environment, which it inherits (only this suite names this variable).
        setenv("TEST_REPORT_SECRET", "k3y", 1)
        defer { unsetenv("TEST_REPORT_SECRET") }
        let sent = try await CLIRun.run(["report", "weekly", "--send", "--db", db, "--queries", dir + "/queries", "--at", "2026-11-25T10:00:00Z",
                                   "--external-url", "https://w.example"])
        #expect(sent.status == 0, "\(sent.stderr)")
        #expect(sent.stdout.contains("exec: delivered after 1 attempt"))
        let lines = try String(contentsOfFile: received, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 1)
        let n = try JSONParser.parse(String(lines[0]))
        let body = Array((n["body"]?.stringValue ?? "").utf8)
        let ts = try #require(Int64(n["headers"]?["x-waybill-timestamp"]?.stringValue ?? ""))
        #expect(HookSignature.verify(secret: Array("k3y".utf8), timestamp: ts, body: body, header: n["headers"]?["x-waybill-signature"]?.stringValue ?? ""))
        #expect(try JSONCoding.decode(ReportDocument.self, from: body).window.from == "2026-11-15T23:00:00Z")
        func outbox() throws -> [OutboxItem] {
            let store = try SQLiteStore(path: db, rollup: KPIFactsRollup())
            defer { store.close() }
            return try store.recentNotifications(limit: 100).filter { $0.kind == "report" }.sorted { $0.id < $1.id }
        }
        var items = try outbox()
        #expect(items.count == 1 && items[0].status == .delivered && items[0].attempts == 1 && items[0].fingerprint.hasPrefix("report:weekly@send:"))
        // --url: the server renders and queues it; its delivery worker sends it.
        let server = try await ServerProcess.start(db: db, extra: ["--queries", dir + "/queries"])
        let queued = try await CLIRun.run(["report", "weekly", "--send", "--url", server.base, "--at", "2026-11-25T10:00:00Z"])
        #expect(queued.status == 0, "\(queued.stderr)")
        #expect(queued.stdout.contains("queued by \(server.base) as report:weekly@send:") && queued.stdout.contains("exec (pending)"))
        let second = try await eventually(20) { () -> [Substring]? in
            let l = ((try? String(contentsOfFile: received, encoding: .utf8)) ?? "").split(separator: "\n")
            return l.count >= 2 ? l : nil
        }
        server.stop()
        #expect(second?.count == 2)
        if let s = second?.last, let n = try? JSONParser.parse(String(s)) {
            let b = Array((n["body"]?.stringValue ?? "").utf8)
            let ts2 = Int64(n["headers"]?["x-waybill-timestamp"]?.stringValue ?? "") ?? 0
            #expect(HookSignature.verify(secret: Array("k3y".utf8), timestamp: ts2, body: b, header: n["headers"]?["x-waybill-signature"]?.stringValue ?? ""))
        }
        items = try outbox()
        #expect(items.count == 2 && items.allSatisfy { $0.status == .delivered })
        // A hook nobody listens on: retried, then reported as not delivered, exit 1; the notification stays pending.
        try writeQueries(dir + "/dead", hookPort: hookPort + 1)
        let dead = try await CLIRun.run(["report", "weekly", "--send", "--db", db, "--queries", dir + "/dead"])
        #expect(dead.status != 0)
        #expect(dead.stdout.contains("exec: NOT delivered after 3 attempts"))
        #expect(dead.stdout.contains("left pending in the store's outbox"))
        items = try outbox()
        #expect(items.count == 3 && items[2].status == .pending && items[2].attempts == 3)
    }
}
