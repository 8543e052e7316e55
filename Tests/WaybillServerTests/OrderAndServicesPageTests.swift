import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import WaybillKPI
import WaybillModel
import WaybillSQLite
import WaybillStore
import WaybillStoreConformance
import WaybillTestSupport
@testable import WaybillServer

/// `/orders/{key}` and `/services` over HTTP against `waybill serve` on a store with nine days of
/// history (three warehouses, each with its own pace; late re-allocations, resends, shuffled arrival),
/// and `waybill trace` over the same store: what the pages show equals the API's documents.
@Suite(.serialized) struct OrderAndServicesPageTests {
    /// The history ends an hour ago, so the probes' steps ended in the past and the shipped ones are compared.
    static let end = (currentMicros() / 3_600_000_000) * 3_600_000_000 - 3_600_000_000

    /// Spans of SO-SLOW's orchestration: an API call, the allocation it calls (which fails once), the WMS.
    static func spans(start: Micros) -> [Span] {
        func span(_ id: String, parent: String?, service: String, name: String, at: Micros, ms: Micros, error: Bool = false) -> Span {
            Span(traceID: "4bf92f3577b34da6a3ce929d0e0e4736", spanID: id, parentSpanID: parent, service: service, name: name,
                 start: start + at, end: start + at + ms * 1000, status: error ? .error : .ok, statusMessage: error ? "stock service timed out" : nil,
                 attributes: ["order.id": "SO-SLOW"], resourceAttributes: ["service.name": .string(service)])
        }
        return [
            span("00f067aa0ba902b1", parent: nil, service: "orchestrator", name: "POST /orders", at: 0, ms: 900),
            span("00f067aa0ba902b2", parent: "00f067aa0ba902b1", service: "allocation", name: "allocate", at: 100_000, ms: 300, error: true),
            span("00f067aa0ba902b3", parent: "00f067aa0ba902b1", service: "allocation", name: "allocate", at: 450_000, ms: 200),
            span("00f067aa0ba902b4", parent: "00f067aa0ba902b3", service: "wms", name: "reserve", at: 500_000, ms: 100),
        ]
    }

    static func makeStore() async throws -> (db: String, probes: [String], spanStart: Micros) {
        let db = temporaryDatabase()
        let store = try SQLiteStore(path: db, rollup: KPIFactsRollup())
        let (events, probes) = StoreConformance.stepHistory(end: end)
        for i in stride(from: 0, to: events.count, by: 500) { _ = try await store.append(Array(events[i..<min(i + 500, events.count)])) }
        let slowAccepted = events.first { $0.subject == "SO-SLOW" && $0.type == "order.accepted" }!.time
        _ = try await store.appendSpans(spans(start: slowAccepted))
        store.close()
        return (db, probes, slowAccepted)
    }

    static func get(_ url: String) async throws -> (status: Int, body: String) {
        let r = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(20))
        return (Int(r.status.code), String(buffer: try await r.body.collect(upTo: 16 << 20)))
    }

    static func seconds(_ v: JSONValue?) -> String { v?.doubleValue.map { DurationText.format(Micros(($0 * 1e6).rounded())) } ?? "–" }

    @Test func orderPageShowsTheAPIsStepsTimelineAndSpans() async throws {
        let (db, probes, _) = try await Self.makeStore()
        let server = try await ServerProcess.start(db: db)
        defer { server.stop() }
        for key in probes {
            let api = try #require(try await httpGetJSON(server.base + "/api/v1/traces/" + URLText.pathSegment(key)))
            let steps = api["steps"]?.arrayValue ?? []
            #expect(!steps.isEmpty, "\(key): no steps")
            let page = try await Self.get(server.base + "/orders/" + URLText.pathSegment(key))
            #expect(page.status == 200)
            let html = page.body
            #expect(html.contains("<h1>Order \(key) "), "\(key)")
            #expect(html.contains("<svg class=\"timeline\""), "\(key): no timeline")
            // Each step's row: the same name, p50, p90 and number of steps compared as the API's document.
            for s in steps {
                let name = (s["from"]?.stringValue ?? "") + " → " + (s["to"]?.stringValue ?? "…")
                let cells = "<td>\(HTMLText.escape(name))</td><td>\(s["started_at"]?.stringValue ?? "")</td>"
                #expect(html.contains(cells), "\(key): row of \(name)")
                let numbers = "<td class=\"num\">\(Self.seconds(s["p50_s"]))</td><td class=\"num\">\(Self.seconds(s["p90_s"]))</td>"
                    + "<td class=\"num\">\(s["samples"]?.doubleValue.map { String(Int($0)) } ?? "")</td>"
                #expect(html.contains(numbers), "\(key): \(name) p50/p90/samples \(numbers)")
            }
            // Every event: its words and its JSON one click away (escaped).
            for e in api["events"]?.arrayValue ?? [] {
                #expect(html.contains("<details><summary>JSON</summary><pre>" + HTMLText.escape(e.jsonString) + "</pre></details>"), "\(key): JSON of an event")
            }
            // The same page under /traces/.
            let old = try await Self.get(server.base + "/traces/" + URLText.pathSegment(key))
            #expect(old.status == 200 && old.body.contains("<h1>Order \(key) "))
        }
        // SO-SLOW: shipped after 20 h where DC-EAST ships in 1-3 h: the last step very slow, said in words at the top.
        let slow = try await Self.get(server.base + "/orders/SO-SLOW").body
        let api = try #require(try await httpGetJSON(server.base + "/api/v1/traces/SO-SLOW"))
        #expect(api["steps"]?.arrayValue?.first { $0["to"] == "shipped" }?["verdict"] == "very_slow")
        #expect(slow.contains("<tr class=\"step very_slow\"><td>released → shipped</td>"))
        #expect(slow.contains("Why it is late"))
        #expect(slow.contains("released → shipped took 20h"))
        #expect(slow.contains("href=\"/search?warehouse=DC-EAST\""), "the warehouse fact links to its orders")
        // The spans on the same axis, the error marked and listed with its message.
        #expect(slow.contains("✗ allocation allocate"))
        #expect(slow.contains("<td class=\"error\">stock service timed out</td>"))
        #expect(slow.contains("4 spans in 1 traces"))
        // SO-TYPICAL: no finding; SO-STUCK: the step in progress.
        let typical = try await Self.get(server.base + "/orders/SO-TYPICAL").body
        #expect(!typical.contains("Why it is late"))
        #expect(typical.contains("<tr class=\"step typical\"><td>released → shipped</td>"))
        let stuck = try await Self.get(server.base + "/orders/SO-STUCK").body
        #expect(stuck.contains("<td>released → …</td>"))
        // The CLI over the same store, by the store and by the server: the same steps as the API.
        let local = try await CLIRun.run(["trace", "SO-SLOW", "--db", db, "--format", "json"])
        let remote = try await CLIRun.run(["trace", "SO-SLOW", "--url", server.base, "--format", "json"])
        #expect(local.status == 0 && remote.status == 0, "\(local.stderr) \(remote.stderr)")
        let l = try JSONParser.parse(Array(local.stdout.utf8)), r = try JSONParser.parse(Array(remote.stdout.utf8))
        #expect(l["steps"] == api["steps"] && r["steps"] == api["steps"])
        let table = try await CLIRun.run(["trace", "SO-SLOW", "--db", db])
        #expect(table.stdout.contains("Steps (each against the same step at DC-EAST, 7 days before it)"), "\(table.stdout)")
        #expect(table.stdout.split(separator: "\n").contains { $0.contains("released → shipped") && $0.contains("VERY SLOW") }, "\(table.stdout)")
    }

    @Test func servicesPageShowsTheAPIsMapAndFigures() async throws {
        let (db, _, spanStart) = try await Self.makeStore()
        let server = try await ServerProcess.start(db: db)
        defer { server.stop() }
        let q = URLText.query(["from": RFC3339.format(spanStart - 60_000_000), "to": RFC3339.format(spanStart + 3_600_000_000)])
        let api = try #require(try await httpGetJSON(server.base + "/api/v1/services?" + q))
        let page = try await Self.get(server.base + "/services?" + q)
        #expect(page.status == 200)
        let html = page.body
        #expect(html.contains("<svg class=\"map\""))
        let services = api["services"]?.arrayValue ?? []
        #expect(services.count == 3)
        for s in services {
            let name = s["service"]?.stringValue ?? ""
            let row = "<td>\(name)</td><td class=\"num\">\(Int(s["spans"]?.doubleValue ?? -1))</td>"
                + "<td class=\"num\">\(WaybillAPI.rateLabel(s["per_second"]?.doubleValue ?? -1))</td><td class=\"num\">\(Int(s["errors"]?.doubleValue ?? -1))</td>"
            #expect(html.contains(row), "row of \(name): \(row)")
            #expect(html.contains("<text x=") && html.contains(">\(name)</text>"), "node \(name)")
        }
        let edges = api["edges"]?.arrayValue ?? []
        #expect(edges.count == 2)
        for e in edges {
            let calls = Int(e["calls"]?.doubleValue ?? -1), errors = Int(e["errors"]?.doubleValue ?? -1)
            let label = "\(calls) · " + String(format: "%.1f%%", Double(errors) / Double(calls) * 100)
            #expect(html.contains(">\(label)</text>"), "edge label \(label)")
            #expect(html.contains("<tr><td>\(e["from"]?.stringValue ?? "")</td><td>\(e["to"]?.stringValue ?? "")</td><td class=\"num\">\(calls)</td>"))
        }
        // orchestrator → allocation: 2 calls, 1 failed: red.
        #expect(html.contains("2 · 50.0%"))
        #expect(html.contains("class=\"el bad\">2 · 50.0%"))
        // A window of centuries: the page answers, its chart in weeks (at most 60 points, one query each).
        let centuries = try await Self.get(server.base + "/services?" + URLText.query(["from": "0660-09-06T04:17:12Z", "to": "now"]))
        #expect(centuries.status == 200)
        #expect(centuries.body.contains("<svg class=\"map\""))
        // A bad window: the reason, 400.
        let bad = try await Self.get(server.base + "/services?from=yesterday")
        #expect(bad.status == 400 && bad.body.contains("from: must be RFC 3339"))
    }

    /// The rate chart's step keeps any window to at most 60 points: a step of the list where one does,
    /// else whole weeks.
    @Test func theRateChartHasAtMostSixtyPointsForAnyWindow() {
        let week: Micros = 7 * day
        for length: Micros in [1, minute, hour, day, 30 * day, 60 * week, 61 * week, 26 * 365 * day, 1366 * 365 * day, 9999 * 365 * day] {
            let step = WaybillAPI.rateStep(length)
            #expect((length + step - 1) / step <= 60, "\(length): step \(step)")
            #expect(step <= week || step % week == 0)
            // The smallest such step: half of it (or the list's step before it) would need more points.
            if step > week { #expect((length + step - week - 1) / (step - week) > 60) }
        }
        #expect(WaybillAPI.rateStep(hour) == minute)
        #expect(WaybillAPI.rateStep(30 * day) == 43_200 * second)
    }

    /// A quiet service's rate keeps two significant digits on the chart (a span a day is not 0.0000/s).
    @Test func tinyRatesKeepTwoSignificantDigits() {
        #expect(WaybillAPI.rateLabel(0) == "0")
        #expect(WaybillAPI.rateLabel(1.0 / 86_400) == "0.000012")
        #expect(WaybillAPI.rateLabel(1.7e-6) == "0.0000017")
        #expect(WaybillAPI.rateLabel(0.05) == "0.0500")
        #expect(WaybillAPI.rateLabel(0.25) == "0.25")
        #expect(WaybillAPI.rateLabel(123.45) == "123.5")
        #expect(WaybillAPI.rateLabel(1e-12) == "0.000000000")
        // The map's boxes change the unit instead.
        #expect(WaybillAPI.rateText(12.345) == "12.3/s")
        #expect(WaybillAPI.rateText(0.5) == "30.0/min")
        #expect(WaybillAPI.rateText(0.001) == "3.60/h")
        #expect(WaybillAPI.rateText(1.0 / 86_400) == "1.00/d")
        #expect(WaybillAPI.rateText(0) == "0/s")
    }
}
