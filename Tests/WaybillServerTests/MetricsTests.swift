import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import WaybillAlerts
import WaybillCollectors
import WaybillKPI
import WaybillModel
import WaybillQuery
import WaybillSQLite
@testable import WaybillServer
import WaybillStore
import WaybillTestSupport

/// `/metrics`: the Prometheus exposition checked by promtool and by prometheus-client's parser, label
/// values escaped and bounded, the business figures equal to the KPI documents of the same windows,
/// and the shipped Grafana dashboards' PromQL valid and over metrics a running server exports.
@Suite struct MetricsTests {
    static let t0 = t("2026-11-20T10:00:00Z")
    /// The scrape's clock: two hours after the first order, so `1h` holds part of the data and `1d` all of it.
    static let now = t0 + 2 * 3_600_000_000
    static let hostileSource = "src \"quoted\" back\\slash\nnew line"
    static let hostileWarehouse = "DC \"North\"\\2\nB"

    static func iso(_ m: Micros) -> String { RFC3339.format(m) }

    /// Orders interleaved in time: accepted, allocated (partly short), released, shipped; across
    /// warehouses (one with quotes, a backslash and a newline), channels and sources.
    static func orderEvents(count: Int, warehouses: [String], channels: [String] = ["web", "store", "marketplace"]) -> [String] {
        var out: [String] = []
        for i in 0..<count {
            let id = "ORD-\(i)"
            let accepted = t0 + Micros(i) * 47_000_000 % 6_000_000_000
            let allocated = accepted + Micros(30 + (i * 7919) % 3000) * 1_000_000
            let released = allocated + 60_000_000
            let shipped = released + Micros(600 + (i * 104_729) % 5000) * 1_000_000
            let wh = warehouses[i % warehouses.count]
            let qty = i % 3 == 0 ? 2 : 4
            out.append(eventJSON("a-\(i)", "order.accepted", iso(accepted), id, source: i % 5 == 0 ? hostileSource : "oms",
                                 data: ["channel": .string(channels[i % channels.count]),
                                        "lines": [["line": 1, "sku": "A", "qty": 4]]]))
            out.append(eventJSON("al-\(i)", "order.allocated", iso(allocated), id, source: "allocation",
                                 data: ["warehouse": .string(wh), "lines": [["line": 1, "qty_allocated": .number(Double(qty))]]]))
            out.append(eventJSON("r-\(i)", "order.released", iso(released), id, source: "allocation", data: ["warehouse": .string(wh)]))
            if i % 4 != 0, shipped < now {
                out.append(eventJSON("s-\(i)", "order.shipped", iso(shipped), id, source: "wms", data: ["warehouse": .string(wh)]))
            }
        }
        return out
    }

    /// Posts the events shuffled (seeded), in batches, with some batches sent twice.
    static func post(_ events: [String], _ client: some TestClientProtocol, seed: UInt64 = 7) async throws {
        var rng = SplitMix64(seed: seed)
        let shuffled = events.shuffled(using: &rng)
        var i = 0
        var batchNumber = 0
        while i < shuffled.count {
            let batch = Array(shuffled[i..<min(i + 40, shuffled.count)])
            i += batch.count
            batchNumber += 1
            for _ in 0..<(batchNumber % 5 == 0 ? 2 : 1) {
                try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/x-ndjson"],
                                         body: ByteBuffer(string: batch.joined(separator: "\n"))) { r in
                    #expect(r.status == .ok)
                }
            }
        }
    }

    static func alertConfig() throws -> AlertConfig {
        var config = try DemoService.shippedAlertRules()
        config.hooks = try AlertConfig.parse(yaml: """
            rules:
              - name: Unused
                after: order.accepted
                expect: order.allocated
                within: 15m
            hooks:
              - name: ops "desk"
                url: http://127.0.0.1:9/hook
            """, file: "hooks.yaml").hooks
        return config
    }

    /// A server with data, alert rules and a hook, on a manual clock; `body` gets the client and the store.
    static func withLoadedServer(orders: Int = 300, warehouses: [String] = ["DC-EAST", "DC-WEST", hostileWarehouse],
                                 _ body: @Sendable (any TestClientProtocol, SQLiteStore) async throws -> Void) async throws {
        let store = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
        defer { store.close() }
        let clock = ManualClock(now: now)
        let alerting = Alerting(config: try alertConfig(), source: StoreAlertSource(store: store), store: store,
                                baseURL: "http://127.0.0.1:4318", transport: CountingTransport())
        let app = buildApplication(store: store, config: ServerConfig(), clock: clock, alerting: alerting)
        try await app.test(.router) { client in
            try await post(orderEvents(count: orders, warehouses: warehouses), client)
            // A bad event (its source known, its time invalid), a body of junk, spans, a 404, a keyed route.
            let bad = eventJSON("bad-1", "order.accepted", "not a time", "ORD-BAD", source: hostileSource)
            try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/x-ndjson"],
                                     body: ByteBuffer(string: bad + "\n{not json\n")) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/v1/traces", method: .post, headers: [.contentType: "application/json"],
                                     body: ByteBuffer(string: spansJSON)) { r in #expect(r.status == .ok) }
            try await client.execute(uri: "/no/such/path", method: .get) { r in #expect(r.status == .notFound) }
            try await client.execute(uri: "/api/v1/traces/ORD-1", method: .get) { r in #expect(r.status == .ok) }
            try await body(client, store)
        }
    }

    static let spansJSON = #"""
    {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"allocation \"svc\""}}]},
     "scopeSpans":[{"spans":[
      {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"allocate","kind":2,
       "startTimeUnixNano":"1763632800000000000","endTimeUnixNano":"1763632801000000000",
       "attributes":[{"key":"order.id","value":{"stringValue":"ORD-1"}}]}]}]}]}
    """#

    static func scrape(_ client: some TestClientProtocol) async throws -> String {
        try await client.execute(uri: "/metrics", method: .get) { r in
            #expect(r.status == .ok)
            #expect(r.headers[.contentType] == "text/plain; version=0.0.4")
            return String(buffer: r.body)
        }
    }

    /// Samples as (name, labels, value), parsed here only to compare figures (the strict checks are promtool's and prometheus-client's).
    static func samples(_ text: String) -> [(name: String, labels: [String: String], value: Double)] {
        var out: [(String, [String: String], Double)] = []
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            let s = String(line)
            guard let space = s.lastIndex(of: " "), let v = Double(s[s.index(after: space)...]) ?? (s.hasSuffix("+Inf") ? .infinity : nil) else { continue }
            let head = String(s[..<space])
            guard let brace = head.firstIndex(of: "{") else { out.append((head, [:], v)); continue }
            var labels: [String: String] = [:]
            var rest = head[head.index(after: brace)...].dropLast()
            while let eq = rest.firstIndex(of: "=") {
                let key = String(rest[..<eq]).trimmingCharacters(in: CharacterSet(charactersIn: ","))
                var value = ""
                var j = rest.index(eq, offsetBy: 2)
                while rest[j] != "\"" {
                    if rest[j] == "\\" {
                        j = rest.index(after: j)
                        value.append(rest[j] == "n" ? "\n" : rest[j])
                    } else {
                        value.append(rest[j])
                    }
                    j = rest.index(after: j)
                }
                labels[key] = value
                rest = rest[rest.index(after: j)...]
            }
            out.append((String(head[..<brace]), labels, v))
        }
        return out
    }

    // MARK: Tests

    @Test func exportsEveryFamilyAndPassesPromtoolAndPrometheusClient() async throws {
        try await Self.withLoadedServer { client, _ in
            let text = try await Self.scrape(client)
            let names = Set(Self.samples(text).map(\.name))
            for f in MetricFamily.all {
                let shown = f.kind == .histogram ? names.contains(f.name + "_count") : names.contains(f.name)
                #expect(shown, "\(f.name) is not in the exposition")
            }
            // Route patterns, never paths.
            let http = Self.samples(text).filter { $0.name == "waybill_http_request_duration_seconds_count" }
            #expect(http.contains { $0.labels["route"] == "/api/v1/traces/{key}" && $0.labels["status"] == "200" })
            #expect(http.contains { $0.labels["route"] == "/v1/events" && $0.labels["method"] == "POST" })
            #expect(http.contains { $0.labels["route"] == "unmatched" && $0.labels["status"] == "404" })
            #expect(!text.contains("ORD-1"))
            #expect(!text.contains("/no/such/path"))

            let file = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-metrics-\(UUID().uuidString).prom").path
            try text.write(toFile: file, atomically: true, encoding: .utf8)
            defer { try? FileManager.default.removeItem(atPath: file) }
            if let promtool = Self.promtool(test: "exportsEveryFamilyAndPassesPromtoolAndPrometheusClient") {
                let (rc, out) = await PythonVenv.run(["sh", "-c", "\(promtool) check metrics < '\(file)'"])
                #expect(rc == 0, "promtool check metrics: \(out)")
                #expect(out.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, "promtool warnings: \(out)")
            }
            guard let venv = await PythonVenv.make("prometheus-client", packages: ["prometheus-client"],
                                             test: "exportsEveryFamilyAndPassesPromtoolAndPrometheusClient") else { return }
            let (rc, out) = try await venv.script("""
                import json, sys
                from prometheus_client.parser import text_string_to_metric_families
                text = open(sys.argv[1]).read()
                out = []
                for fam in text_string_to_metric_families(text):
                    for s in fam.samples:
                        out.append([fam.name, fam.type, s.name, s.labels, s.value])
                print(json.dumps(out))
                """, [file])
            #expect(rc == 0, "prometheus-client: \(out)")
            guard rc == 0, let parsed = try? JSONParser.parse(Array(out.utf8)).arrayValue else { return }
            // The client's values for every sample equal ours, hostile label values included.
            var theirs: [String: Double] = [:]
            for s in parsed {
                guard let a = s.arrayValue, a.count == 5, let name = a[2].stringValue, let labels = a[3].objectValue else { continue }
                let key = name + "|" + labels.keys.sorted().map { "\($0)=\(labels[$0]?.stringValue ?? "")" }.joined(separator: "|")
                theirs[key] = a[4].doubleValue
            }
            let ours = Self.samples(text)
            #expect(theirs.count == ours.count)
            for s in ours {
                let key = s.name + "|" + s.labels.keys.sorted().map { "\($0)=\(s.labels[$0]!)" }.joined(separator: "|")
                #expect(theirs[key] == s.value, "\(key): ours \(s.value), prometheus-client \(String(describing: theirs[key]))")
            }
            let sources = Set(parsed.compactMap { $0.arrayValue?[3]["source"]?.stringValue })
            #expect(sources.contains(Self.hostileSource))
            let warehouses = Set(parsed.compactMap { $0.arrayValue?[3]["warehouse"]?.stringValue })
            #expect(warehouses.contains(Self.hostileWarehouse))
            let services = Set(parsed.compactMap { $0.arrayValue?[3]["service"]?.stringValue })
            #expect(services.contains("allocation \"svc\""))
            let hooks = Set(parsed.compactMap { $0.arrayValue?[3]["hook"]?.stringValue })
            #expect(hooks == ["ops \"desk\""])
        }
    }

    @Test func businessFiguresEqualTheKPIDocumentsOfTheSameWindows() async throws {
        try await Self.withLoadedServer { client, store in
            let samples = Self.samples(try await Self.scrape(client))
            func value(_ name: String, _ labels: [String: String]) -> Double? {
                samples.first { $0.name == name && $0.labels == labels }?.value
            }
            for (window, length) in MetricsFigures.windowLengths {
                let doc = try KPIService(reader: store).document(KPIQuery(from: Self.now - length, to: Self.now, by: .warehouse))
                #expect(!doc.groups.isEmpty)
                var allocated: Int64 = 0
                for g in doc.groups {
                    let l = ["warehouse": g.value ?? "unknown", "window": window]
                    allocated += g.kpis.ordersAllocated
                    #expect(value("waybill_orders_allocated", l) == Double(g.kpis.ordersAllocated))
                    #expect(value("waybill_fill_rate", l) == g.kpis.fillRate)
                    #expect(value("waybill_order_fill_rate", l) == g.kpis.orderFillRate)
                    #expect(value("waybill_shipments", l) == Double(g.kpis.shipments))
                    #expect(value("waybill_allocation_delay_seconds_count", l) == Double(g.kpis.allocationDelay.count))
                    if let mean = g.kpis.allocationDelay.meanSeconds {
                        let sum = try #require(value("waybill_allocation_delay_seconds_sum", l))
                        #expect(abs(sum / Double(g.kpis.allocationDelay.count) - mean) < 1e-6)
                    }
                    #expect(value("waybill_shipment_lag_seconds_count", l) == Double(g.kpis.shipmentLag.count))
                    // Buckets are cumulative and end at the count.
                    let buckets = samples.filter { $0.name == "waybill_allocation_delay_seconds_bucket" && $0.labels["warehouse"] == l["warehouse"]
                        && $0.labels["window"] == window }.map(\.value)
                    #expect(buckets == buckets.sorted())
                    #expect(buckets.last == Double(g.kpis.allocationDelay.count))
                }
                #expect(allocated > 0)
                let byChannel = try KPIService(reader: store).document(KPIQuery(from: Self.now - length, to: Self.now, by: .channel))
                for g in byChannel.groups {
                    let l = ["channel": g.value ?? "unknown", "window": window]
                    #expect(value("waybill_channel_orders_allocated", l) == Double(g.kpis.ordersAllocated))
                    #expect(value("waybill_channel_fill_rate", l) == g.kpis.fillRate)
                }
            }
            // Every order once in the state counts (all are released or shipped), and only open states are listed.
            let open = samples.filter { $0.name == "waybill_open_orders" }
            #expect(open.reduce(0) { $0 + $1.value } == Double(try store.stats().orders))
            #expect(value("waybill_open_orders", ["state": "released"])! > 0)
            #expect(value("waybill_open_orders", ["state": "shipped"])! > 0)
            #expect(!open.contains { $0.labels["state"] == "cancelled" })
            #expect(value("waybill_store_orders", [:]) == Double(try store.stats().orders))
            // Rejections by source and reason; the unparseable line's source is unknown.
            #expect(value("waybill_events_rejected_total", ["source": Self.hostileSource, "reason": "time"]) == 1)
            #expect(value("waybill_events_rejected_total", ["source": "unknown", "reason": "json"]) == 1)
            // Duplicates were sent: every fifth batch twice.
            #expect(samples.filter { $0.name == "waybill_events_duplicate_total" }.reduce(0) { $0 + $1.value } > 0)
            #expect(samples.filter { $0.name == "waybill_events_accepted_total" }.reduce(0) { $0 + $1.value } == Double(try store.stats().events))
        }
    }

    @Test func labelValuesAreBoundedAndFoldedExactly() async throws {
        let warehouses = (0..<230).map { "WH-\($0)" }
        try await Self.withLoadedServer(orders: 460, warehouses: warehouses) { client, store in
            // 230 sources as well, one event each.
            let many = (0..<230).map { eventJSON("x-\($0)", "note.seen", Self.iso(Self.t0), "K-\($0)", source: "source-\($0)") }
            try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/x-ndjson"],
                                     body: ByteBuffer(string: many.joined(separator: "\n"))) { r in #expect(r.json["accepted"] == 230) }
            let samples = Self.samples(try await Self.scrape(client))
            let sources = Set(samples.filter { $0.name == "waybill_events_accepted_total" }.compactMap { $0.labels["source"] })
            #expect(sources.count <= ServerMetrics.labelCap)
            #expect(sources.contains("other"))
            for window in ["1h", "1d"] {
                let rows = samples.filter { $0.name == "waybill_orders_allocated" && $0.labels["window"] == window }
                #expect(rows.count == ServerMetrics.labelCap)
                #expect(rows.contains { $0.labels["warehouse"] == "other" })
                // Folding merges: the total over labels is the total over warehouses.
                let length = MetricsFigures.windowLengths.first { $0.name == window }!.length
                let total = try KPIService(reader: store).document(KPIQuery(from: Self.now - length, to: Self.now)).total
                #expect(rows.reduce(0) { $0 + $1.value } == Double(total.ordersAllocated))
                let counts = samples.filter { $0.name == "waybill_allocation_delay_seconds_count" && $0.labels["window"] == window }
                #expect(counts.reduce(0) { $0 + $1.value } == Double(total.allocationDelay.count))
            }
        }
    }

    @Test func accumulatorsEqualTheDocumentGroups() async throws {
        let store = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
        defer { store.close() }
        let events = Self.orderEvents(count: 200, warehouses: ["A", "B", "C"]).map { try! CloudEvent.validate(JSONParser.parse(Array($0.utf8)), raw: Array($0.utf8)) }
        _ = try await store.append(events)
        // Windows on minute and hour edges and off them.
        for (from, to) in [(Self.t0, Self.now), (Self.t0 + 61_234_567, Self.now - 3_333_333), (Self.now - 3_600_000_000, Self.now)] {
            let q = try KPIQuery(from: from, to: to, by: .warehouse)
            let acc = try KPIService(reader: store).accumulators(q)
            let doc = try KPIService(reader: store).document(q)
            #expect(Set(acc.keys) == Set(doc.groups.map(\.value)))
            for g in doc.groups { #expect(acc[g.value]?.kpis == g.kpis) }
        }
    }

    /// Histogram buckets from a sketch: within the sketch's accuracy of the exact count at each bound,
    /// cumulative, and at most the count; sparse (few values) and dense (many) sketches alike.
    @Test(arguments: [5, 40, 5000]) func sketchCountsAtMostABoundWithinItsAccuracy(values n: Int) {
        var rng = SplitMix64(seed: UInt64(n))
        let values = (0..<n).map { _ in Int64(rng.next() % 90_000_000_000) } + [0, 0]
        let sketch = QuantileSketch(values)
        var previous: Int64 = 0
        for bound in MetricFamily.businessBuckets.map({ $0 * 1e6 }) + [1, 1e3, 1e5] {
            let got = sketch.count(atMost: bound)
            let low = values.filter { Double($0) <= bound * (1 - 2 * QuantileSketch.relativeAccuracy) }.count
            let high = values.filter { Double($0) <= bound * (1 + 2 * QuantileSketch.relativeAccuracy) }.count
            #expect(Int(got) >= low && Int(got) <= high, "bound \(bound): \(got) not in \(low)...\(high)")
            if bound >= 60e6 { #expect(got >= previous); previous = got }
        }
        #expect(sketch.count(atMost: .greatestFiniteMagnitude) == sketch.count)
        #expect(sketch.count(atMost: -1) == 0)
    }

    @Test func exposedWriterEscapesAndFormats() {
        #expect(ExpositionWriter.escape("a\"b\\c\nd") == #"a\"b\\c\nd"#)
        #expect(ExpositionWriter.format(3) == "3")
        #expect(ExpositionWriter.format(0.25) == "0.25")
        #expect(ExpositionWriter.format(.infinity) == "+Inf")
        #expect(ServerMetrics.reason("data.lines[3].qty") == "data.lines[].qty")
        #expect(ServerMetrics.reason(nil) == "invalid")
        let bounded = BoundedLabels(cap: 3)
        #expect(["a", "b", "c", "a", ""].map(bounded.value) == ["a", "b", "other", "a", "unknown"])
    }

    @Test func ingestHealthReportsRatesAndLagPerSourceOverTheLastMinute() async throws {
        let store = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
        defer { store.close() }
        let clock = ManualClock(now: Self.now)
        let metrics = ServerMetrics(clock: { clock.now() })
        var decoded = DecodedEvents()
        for i in 0..<30 {
            let json = eventJSON("e\(i)", "order.accepted", Self.iso(Self.now - Micros(i) * 1_000_000), "O\(i)", source: i < 20 ? "oms" : "edi")
            decoded.events.append(try CloudEvent.validate(JSONParser.parse(Array(json.utf8)), raw: Array(json.utf8)))
        }
        decoded.rejected = [RejectedEvent(index: 0, error: "x", source: "edi", reason: "time")]
        metrics.events(decoded, result: AppendResult(accepted: 30, duplicates: 0), arrivedAt: Self.now)
        let h = metrics.ingestHealth()
        let oms = try #require(h.sources.first { $0.source == "oms" })
        let edi = try #require(h.sources.first { $0.source == "edi" })
        #expect(oms.eventsPerSecond == 20.0 / 60)
        #expect(edi.eventsPerSecond == 10.0 / 60)
        #expect(edi.rejectionsPerSecond == 1.0 / 60)
        #expect(oms.lagMaxSeconds == 19)
        #expect(abs((edi.lagP50Seconds ?? 0) - 24.5) < 1)
        clock.advance(by: 61_000_000)
        let later = metrics.ingestHealth()
        #expect(later.sources.first { $0.source == "oms" }?.eventsPerSecond == 0)
        #expect(later.sources.first { $0.source == "oms" }?.acceptedTotal == 20)
    }

    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Every panel's PromQL, with Grafana's variables substituted as a dashboard user would have them.
    static func dashboardQueries(_ name: String) throws -> (doc: JSONValue, queries: [(panel: String, expr: String)]) {
        let doc = try JSONParser.parse(Array(try Data(contentsOf: URL(fileURLWithPath: repo + "/dashboards/grafana/\(name).json"))))
        var out: [(String, String)] = []
        func walk(_ panels: [JSONValue]) {
            for p in panels {
                walk(p["panels"]?.arrayValue ?? [])
                for target in p["targets"]?.arrayValue ?? [] {
                    guard let expr = target["expr"]?.stringValue else { continue }
                    out.append((p["title"]?.stringValue ?? "?", expr))
                }
            }
        }
        walk(doc["panels"]?.arrayValue ?? [])
        for v in doc["templating"]?["list"]?.arrayValue ?? [] {
            if let q = v["definition"]?.stringValue, q.hasPrefix("label_values(") {
                // label_values(metric, label) as a query over the metric.
                let metric = q.dropFirst("label_values(".count).prefix { $0 != "," && $0 != ")" }
                out.append(("variable " + (v["name"]?.stringValue ?? "?"), "count by (\(q.dropFirst("label_values(\(metric),".count).dropLast().trimmingCharacters(in: .whitespaces))) (\(metric))"))
            }
        }
        let substituted = out.map { panel, expr in
            var e = expr
            for (k, v) in [("$__rate_interval", "1m"), ("$__interval", "1m"), ("$__range", "1h"), ("$warehouse", "DC-EAST|DC-WEST"),
                           ("$channel", ".*"), ("$instance", ".*")] { e = e.replacingOccurrences(of: k, with: v) }
            return (panel, e)
        }
        return (doc, substituted)
    }

    @Test func grafanaDashboardsAreValidAndUseOnlyExportedMetrics() async throws {
        let test = "grafanaDashboardsAreValidAndUseOnlyExportedMetrics"
        var all: [(dashboard: String, panel: String, expr: String)] = []
        for name in ["operations", "executive"] {
            let (doc, queries) = try Self.dashboardQueries(name)
            #expect((doc["schemaVersion"]?.doubleValue ?? 0) >= 39)
            let vars = doc["templating"]?["list"]?.arrayValue ?? []
            func variable(_ n: String) -> JSONValue? { vars.first { $0["name"]?.stringValue == n } }
            #expect(variable("datasource")?["type"] == "datasource")
            #expect(variable("datasource")?["query"] == "prometheus")
            #expect(variable("warehouse")?["type"] == "query")
            #expect(variable("channel")?["type"] == "query")
            #expect(queries.count >= 10)
            for q in queries {
                #expect(!q.expr.contains("$"), "\(name) / \(q.panel): a variable left: \(q.expr)")
                all.append((name, q.panel, q.expr))
            }
            // Every panel reads the chosen data source.
            for p in doc["panels"]?.arrayValue ?? [] where p["type"]?.stringValue != "row" {
                #expect(p["datasource"]?["uid"] == "${datasource}", "\(name) / \(p["title"]?.stringValue ?? "?")")
            }
        }
        // The metrics the panels use, against a running server's exposition.
        let pattern = try NSRegularExpression(pattern: "waybill_[a-z0-9_]+")
        let queries = all
        try await Self.withLoadedServer(orders: 200) { client, _ in
            let exported = Set(Self.samples(try await Self.scrape(client)).map(\.name))
            for q in queries {
                let range = NSRange(q.expr.startIndex..., in: q.expr)
                let names = pattern.matches(in: q.expr, range: range).map { String(q.expr[Range($0.range, in: q.expr)!]) }
                #expect(!names.isEmpty)
                for n in names { #expect(exported.contains(n), "\(q.dashboard) / \(q.panel): \(n) is not exported") }
            }
        }
        guard let promtool = Self.promtool(test: test) else { return }
        // PromQL syntax: every query as a recording rule (JSON is YAML).
        let rules: JSONValue = ["groups": [["name": "dashboards", "rules": .array(all.enumerated().map { i, q in
            ["record": .string("waybill:dashboard_\(q.dashboard):panel_\(i)"), "expr": .string(q.expr)]
        })]]]
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-dash-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try rules.jsonString.write(toFile: dir + "/rules.yml", atomically: true, encoding: .utf8)
        let (rc, out) = await PythonVenv.run([promtool, "check", "rules", dir + "/rules.yml"])
        #expect(rc == 0, "promtool check rules: \(out)")
        #expect(out.contains("SUCCESS: \(all.count) rules found"), "\(out)")
        // The scrape config example, with its token file present.
        let scrape = try String(contentsOfFile: Self.repo + "/dashboards/prometheus/scrape.yml", encoding: .utf8)
        #expect(scrape.contains("/etc/prometheus/waybill-read.token"))
        try "token".write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        try scrape.replacingOccurrences(of: "/etc/prometheus/waybill-read.token", with: dir + "/token")
            .write(toFile: dir + "/prometheus.yml", atomically: true, encoding: .utf8)
        let (crc, cout) = await PythonVenv.run([promtool, "check", "config", dir + "/prometheus.yml"])
        #expect(crc == 0, "promtool check config: \(cout)")
    }

    /// docs/metrics.md lists every family with its labels.
    @Test func docsListEveryFamily() throws {
        let doc = try String(contentsOfFile: Self.repo + "/docs/metrics.md", encoding: .utf8)
        for f in MetricFamily.all {
            let row = doc.split(separator: "\n").first { $0.hasPrefix("| `\(f.name)") }
            #expect(row != nil, "\(f.name) is not in docs/metrics.md")
            if let row { #expect(row.contains("| \(f.kind.rawValue) |"), "\(f.name): type") }
            for l in f.labels { #expect(row?.contains("`\(l)`") == true, "\(f.name): label \(l)") }
        }
    }

    static func promtool(test: String) -> String? {
        for dir in ["/usr/bin", "/usr/local/bin", "/bin"] where FileManager.default.isExecutableFile(atPath: dir + "/promtool") {
            return dir + "/promtool"
        }
        print("SKIPPED \(test): promtool not installed (Debian package prometheus, .ci/setup.d/30-prometheus.sh)")
        return nil
    }
}
