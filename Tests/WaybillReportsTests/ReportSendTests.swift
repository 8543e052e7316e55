import Foundation
import Testing
import WaybillAlerts
import WaybillKPI
import WaybillModel
import WaybillQuery
import WaybillSQLite
import WaybillStore
import WaybillTestSupport
@testable import WaybillReports

/// A hook stand-in: answers each POST to a URL from a script (the last answer repeats), records what it got.
final class ScriptedTransport: NotificationTransport, @unchecked Sendable {
    struct Post { var url: String; var headers: [(String, String)]; var body: [UInt8] }
    private let lock = NSLock()
    private var answers: [String: [TransportResult]]
    private(set) var posts: [Post] = []
    init(_ answers: [String: [TransportResult]]) { self.answers = answers }
    func post(url: String, headers: [(String, String)], body: [UInt8], timeout: Micros) async -> TransportResult {
        lock.withLock {
            posts.append(Post(url: url, headers: headers, body: body))
            var list = answers[url] ?? [.failure("connection refused")]
            let a = list.count > 1 ? list.removeFirst() : list[0]
            answers[url] = list
            return a
        }
    }
    var all: [Post] { lock.withLock { posts } }
}

/// A clock that only moves when the code under test sleeps.
final class SteppedClock: @unchecked Sendable {
    private let lock = NSLock()
    private var t: Micros
    init(_ t: Micros) { self.t = t }
    var now: Micros { lock.withLock { t } }
    func sleep(_ d: Micros) { lock.withLock { t += d } }
}

/// `waybill report NAME --send` through the outbox (`ReportOutbox`): committed first, then signed, sent and
/// retried by a delivery worker that sees only the report's notifications; what it cannot deliver stays
/// pending for the server's worker.
@Suite struct ReportSendTests {
    static let now = t("2026-11-25T10:00:00Z")

    func definition() throws -> ReportDefinition {
        try SavedQueries.parseReport(yaml: """
            title: Weekly report
            window: previous ISO week
            time_zone: Europe/Berlin
            by: warehouse
            kpis: [orders_allocated, allocation_delay.p95_s, on_time_rate]
            drilldowns: [allocation_delay.p95_s, on_time_rate]
            deliver:
              - {name: exec, url: "http://hooks.test/exec", secret_env: REPORT_SECRET, format: json}
              - {name: page, url: "http://hooks.test/page", format: html}
            """, file: "queries/reports/weekly.yaml")
    }

    func withStore(_ body: (SQLiteStore, LocalQueries) async throws -> Void) async throws {
        let store = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
        let lanes = ReadLanes(point: ReadExecutor(threads: 1, name: "s-point"), scan: ReadExecutor(threads: 1, name: "s-scan"))
        defer {
            lanes.stop()
            store.close()
        }
        _ = try await store.append(reportWorkload(start: t("2026-11-09T00:00:00Z"), days: 16, orders: 400))
        try await body(store, LocalQueries(store: store, lanes: lanes, clock: { Self.now }))
    }

    @Test("Queued in the outbox first, signed, retried on 5xx until delivered; other notifications are left to the server")
    func sendGoesThroughTheOutbox() async throws {
        try await withStore { store, q in
            let def = try definition()
            // An alert notification of another hook, due now: not the command's to send.
            var other = AlertCommit()
            other.notifications.append(OutboxItem(hook: "ops", fingerprint: "alert:x", kind: "firing", body: Array("{}".utf8), created: Self.now, nextAt: Self.now))
            try await store.commitAlerts(other)
            let doc = try await ReportRenderer.document(def, at: Self.now, using: q)
            let fp = try await ReportOutbox.queue(doc, def, base: "https://w.example", outbox: store, now: Self.now)
            let queued = try ReportOutbox.notifications(fp, in: store)
            #expect(queued.map(\.status) == [.pending, .pending] && queued.map(\.kind) == ["report", "report"])
            #expect(queued.map(\.hook) == ["report:weekly:exec", "report:weekly:page"])
            let hooks = ScriptedTransport(["http://hooks.test/exec": [.status(503, body: "busy"), .failure("timeout"), .status(200, body: "ok")],
                                           "http://hooks.test/page": [.status(200, body: "ok")]])
            let clock = SteppedClock(Self.now)
            let done = try await ReportOutbox.deliver(fp, hooks: def.deliver.map(\.hook), outbox: store, transport: hooks, attempts: 3,
                                                      environment: ["REPORT_SECRET": "k3y"], clock: { clock.now }, sleep: { clock.sleep($0) })
            #expect(done.map(\.status) == [.delivered, .delivered])
            #expect(done.map(\.attempts) == [3, 1])
            #expect(clock.now > Self.now, "the retries waited for their backoff")
            let posts = hooks.all
            #expect(posts.count == 4)
            for p in posts where p.url.hasSuffix("/exec") {
                let ts = try #require(p.headers.first { $0.0 == "X-Waybill-Timestamp" }.flatMap { Int64($0.1) })
                let sig = p.headers.first { $0.0 == "X-Waybill-Signature" }?.1 ?? ""
                #expect(HookSignature.verify(secret: Array("k3y".utf8), timestamp: ts, body: p.body, header: sig))
                let sent = try JSONCoding.decode(ReportDocument.self, from: p.body)
                #expect(sent.report == doc.report && sent.window == doc.window && sent.drilldowns == doc.drilldowns)
            }
            #expect(posts.filter { $0.url.hasSuffix("/page") }.allSatisfy { p in !p.headers.contains { $0.0 == "X-Waybill-Signature" } })
            let left = try store.recentNotifications(limit: 10).first { $0.fingerprint == "alert:x" }
            #expect(left?.status == .pending && left?.attempts == 0)
        }
    }

    @Test("A 4xx is given up at once; a hook still failing after the command's attempts stays pending and the server's worker delivers it")
    func failuresStayInTheOutbox() async throws {
        try await withStore { store, q in
            let def = try definition()
            let doc = try await ReportRenderer.document(def, at: Self.now, using: q)
            let fp = try await ReportOutbox.queue(doc, def, base: "https://w.example", outbox: store, now: Self.now)
            let down = ScriptedTransport(["http://hooks.test/exec": [.status(404, body: "no such hook")], "http://hooks.test/page": [.failure("connection refused")]])
            let clock = SteppedClock(Self.now)
            let done = try await ReportOutbox.deliver(fp, hooks: def.deliver.map(\.hook), outbox: store, transport: down, attempts: 2,
                                                      environment: [:], clock: { clock.now }, sleep: { clock.sleep($0) })
            #expect(done.map(\.status) == [.failed, .pending])
            #expect(done.map(\.attempts) == [1, 2])
            #expect(done[1].lastError == "connection refused")
            #expect(down.all.count == 3)
            // The server's worker drains the whole outbox, report hooks included: the pending one goes out once.
            let up = ScriptedTransport(["http://hooks.test/page": [.status(200, body: "ok")]])
            let worker = DeliveryWorker(store: store, hooks: def.deliver.map(\.hook), maxAttempts: 12, transport: up, environment: [:])
            try await worker.runOnce(now: clock.now + 3_600_000_000)
            try await worker.runOnce(now: clock.now + 7_200_000_000)
            #expect(up.all.count == 1)
            #expect(try ReportOutbox.notifications(fp, in: store).map(\.status) == [.failed, .delivered])
        }
    }
}
