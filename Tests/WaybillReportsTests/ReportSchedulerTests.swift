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

/// Orders interleaved over `days` days from `start`: accepted, allocated (some short) from two
/// warehouses, shipped (some late); every 7th event resent, and the whole set stored in shuffled order
/// (stragglers). Order ids and warehouses hold characters that need escaping.
func reportWorkload(start: Micros, days: Int, orders: Int, seed: UInt64 = 7) -> [CloudEvent] {
    var rng = SplitMix(seed)
    var events: [CloudEvent] = []
    let warehouses = ["DC-EAST", "DC-WEST", "<DC \"north\">"]
    for i in 0..<orders {
        let id = i % 50 == 0 ? "SO-<\(i)>&\"q\"" : "SO-\(i)"
        let accepted = start + Micros(rng.next() % UInt64(days * 86_400)) * 1_000_000
        let qty = Int(rng.next() % 5) + 1
        let wh = warehouses[Int(rng.next() % 3)]
        let allocated = accepted + Micros(rng.next() % 3600 + 30) * 1_000_000
        let short = rng.next() % 6 == 0
        let shipped = allocated + Micros(rng.next() % (30 * 3600) + 600) * 1_000_000
        events.append(CloudEvent(id: id + "-a", source: "oms", type: "order.accepted", time: accepted, subject: id,
                                 data: ["channel": i % 3 == 0 ? "web" : "edi", "region": "west",
                                        "promised_ship_by": .string(RFC3339.format(accepted + 24 * 3_600_000_000)),
                                        "lines": [["line": 1, "sku": "A", "qty": .number(Double(qty))]]]))
        events.append(CloudEvent(id: id + "-al", source: "allocation", type: "order.allocated", time: allocated, subject: id,
                                 data: ["warehouse": .string(wh), "lines": [["line": 1, "sku": "A", "qty_allocated": .number(Double(short ? qty - 1 : qty))]]]))
        events.append(CloudEvent(id: id + "-s", source: "wms", type: "order.shipped", time: shipped, subject: id,
                                 data: ["warehouse": .string(wh), "carrier": "UPS", "tracking": .string("1Z\(i)"), "links": [.string("shipment:1Z\(i)")]]))
    }
    var resent = events.enumerated().filter { $0.offset % 7 == 0 }.map(\.element)
    events += resent
    resent.removeAll()
    for i in stride(from: events.count - 1, to: 0, by: -1) { events.swapAt(i, Int(rng.next() % UInt64(i + 1))) }
    return events
}

struct SplitMix {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func weeklyDefinition(hookURL: String = "http://127.0.0.1:9/hook") throws -> ReportDefinition {
    try SavedQueries.parseReport(yaml: """
        title: Weekly <executive> report
        window: previous ISO week
        time_zone: Europe/Berlin
        by: warehouse
        step: 1d
        kpis: [orders_allocated, fill_rate, allocation_delay.p95_s, on_time_rate]
        drilldowns: [allocation_delay.p95_s, {kpi: fill_rate, group: DC-EAST, limit: 3}]
        schedule: "0 8 * * mon"
        deliver:
          - {name: exec, url: "\(hookURL)", format: json}
          - {name: page, url: "\(hookURL)", format: html}
        """, file: "queries/reports/weekly.yaml")
}

@Suite("Report scheduler and rendering")
struct ReportSchedulerTests {
    static let monday = utc("2026-11-23T07:00:00Z")  // 08:00 in Berlin

    func withStore(_ body: (SQLiteStore, LocalQueries) async throws -> Void) async throws {
        let path = temporaryDatabase()
        let store = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        let lanes = ReadLanes(point: ReadExecutor(threads: 1, name: "t-point"), scan: ReadExecutor(threads: 1, name: "t-scan"))
        defer {
            lanes.stop()
            store.close()
        }
        _ = try await store.append(reportWorkload(start: utc("2026-11-09T00:00:00Z"), days: 21, orders: 600))
        try await body(store, LocalQueries(store: store, lanes: lanes, clock: { Self.monday }, alerting: nil))
    }

    @Test("The document covers the resolved window and agrees with the KPI query over it")
    func documentMatchesKPIs() async throws {
        try await withStore { _, q in
            let def = try weeklyDefinition()
            let doc = try await ReportRenderer.document(def, at: Self.monday, using: q)
            #expect(doc.window.from == "2026-11-15T23:00:00Z" && doc.window.to == "2026-11-22T23:00:00Z")
            let direct = try await q.kpis(KPIRequest(from: doc.window.from, to: doc.window.to, by: "warehouse", step: "1d"))
            #expect(doc.current == direct)
            #expect(doc.current.total.ordersAllocated > 100)
            #expect(doc.previous?.query.to == direct.query.from)
            #expect(doc.drilldowns.count == 2 && doc.drilldowns[0].orders.count > 0 && doc.drilldowns[1].orders.count <= 3)
            // The JSON document reads back equal.
            let back = try JSONCoding.decode(ReportDocument.self, from: Array(ReportRenderer.render(doc, format: .json).utf8))
            #expect(back == doc)
        }
    }

    @Test("Every format escapes what the data holds")
    func formatsEscape() async throws {
        try await withStore { _, q in
            let doc = try await ReportRenderer.document(try weeklyDefinition(), at: Self.monday, using: q)
            let html = ReportRenderer.render(doc, format: .html, linkBase: "https://w.example")
            #expect(html.hasPrefix("<!DOCTYPE html>") && html.hasSuffix("</body></html>\n"))
            #expect(!html.contains("<DC \"north\">") && html.contains("&lt;DC &quot;north&quot;&gt;"))
            #expect(!html.contains("Weekly <executive>"))
            #expect(!html.contains("<script") && !html.contains("src=\"http"))
            let csv = ReportRenderer.render(doc, format: .csv)
            let lines = csv.split(separator: "\r\n")
            #expect(lines.first == "scope,warehouse,start,end,orders_allocated,fill_rate,allocation_delay_p95_s,on_time_rate")
            #expect(lines.contains { $0.hasPrefix("group,\"<DC \"\"north\"\">\"") || $0.hasPrefix("group,<DC \"\"north\"\">") })
            #expect(lines.filter { $0.hasPrefix("total,") }.count == 1 && lines.filter { $0.hasPrefix("previous_total,") }.count == 1)
            let md = ReportRenderer.render(doc, format: .md, linkBase: "https://w.example")
            #expect(md.hasPrefix("# Weekly <executive> report\n"))
            #expect(md.contains("| Orders allocated | \(doc.current.total.ordersAllocated) |"))
            #expect(md.contains("](https://w.example/traces/"))
        }
    }

    @Test("A due time is queued once: a restart, a crash before the checkpoint, and a missed run each send at most once")
    func exactlyOnce() async throws {
        try await withStore { store, q in
            let def = try weeklyDefinition()
            func scheduler() -> ReportScheduler { ReportScheduler(reports: [def], queries: q, outbox: store, checkpoints: store, baseURL: "https://w.example") }
            func queued() throws -> [OutboxItem] { try store.recentNotifications(limit: 100).filter { $0.kind == "report" }.sorted { $0.id < $1.id } }

            // First start on Sunday: nothing due, the start is remembered; the next look is Monday 08:00 Berlin.
            #expect(await scheduler().runDue(now: utc("2026-11-22T12:00:00Z")) == Self.monday)
            #expect(try queued().isEmpty)
            // Monday 08:00: one notification per hook, rendered as of 08:00.
            _ = await scheduler().runDue(now: Self.monday)
            let first = try queued()
            #expect(first.map(\.hook) == ["report:weekly:exec", "report:weekly:page"])
            #expect(first.allSatisfy { $0.fingerprint == "report:weekly@2026-11-23T07:00:00Z" })
            let doc = try JSONCoding.decode(ReportDocument.self, from: first[0].body)
            #expect(doc.at == "2026-11-23T07:00:00Z" && doc.window.from == "2026-11-15T23:00:00Z")
            #expect(String(decoding: first[1].body, as: UTF8.self).contains("https://w.example/traces/"))
            // A restart later that morning (new scheduler, same store): nothing more.
            _ = await scheduler().runDue(now: Self.monday + 30 * minute)
            #expect(try queued().count == 2)
            // A crash after the outbox commit but before the checkpoint: the checkpoint still says Sunday.
            try await store.saveCheckpoint(name: ReportScheduler.checkpointName("weekly"),
                                           bytes: Array(#"{"lastScheduled":\#(utc("2026-11-22T12:00:00Z"))}"#.utf8))
            _ = await scheduler().runDue(now: Self.monday + 31 * minute)
            #expect(try queued().count == 2)
            #expect(try scheduler().lastSent("weekly") == Self.monday)
            // Down from Monday until the Wednesday after the next Monday: the missed run is sent once, as of its time.
            let wednesday = utc("2026-12-02T10:00:00Z")
            let wake = await scheduler().runDue(now: wednesday)
            #expect(RFC3339.format(wake) == "2026-12-03T10:00:00Z")  // the next Monday is further than a day: it looks again in a day
            let after = try queued()
            #expect(after.count == 4)
            #expect(after.suffix(2).allSatisfy { $0.fingerprint == "report:weekly@2026-11-30T07:00:00Z" })
            _ = await scheduler().runDue(now: wednesday + minute)
            #expect(try queued().count == 4)
        }
    }

    @Test("The Slack body is a text message with the KPIs and a link to the HTML report")
    func slackBody() async throws {
        try await withStore { _, q in
            let doc = try await ReportRenderer.document(try weeklyDefinition(), at: Self.monday, using: q)
            let slack = ReportBodies.slack(doc, base: "https://w.example")
            let text = slack["text"]?.stringValue ?? ""
            #expect(text.hasPrefix("*Weekly &lt;executive&gt; report*"))
            #expect(text.contains("• Fill rate: "))
            #expect(text.contains("<https://w.example/api/v1/reports/weekly?at=2026-11-23T07%3A00%3A00Z&format=html|Open the report>"))
        }
    }
}
