import Foundation
import Testing
import WaybillTestSupport

/// The scale-out set-up end to end, with real processes: `waybill simulate` makes a few days of orders
/// (duplicates, reordering, late arrivals, short picks); two `waybill serve --store` on the same two-shard
/// ClickHouse cluster each ingest half of the events, and some batches are sent to both; the same events go
/// into an embedded SQLite store. Then every server (and the CLI with `--store`) must give the SQLite
/// store's traces, searches and KPI documents (quantiles within the sketch's error), the server started with
/// `--alerts` must evaluate the rules and be the only one to deliver notifications, and the other must
/// answer the same alerts from the shared store.
@Suite(.serialized) struct ClusterEndToEndTests {
    /// The sketch's relative accuracy is 0.5%; two sketches built from the same values in another order
    /// or merged across shards may land one bucket apart.
    static let quantileTolerance = 0.011

    @Test func twoServersOnOneClusterAnswerAsTheEmbeddedStoreAndOneEvaluatesAlerts() async throws {
        guard WaybillBinary.exists else {
            Issue.record("waybill binary not found at \(WaybillBinary.url.path)")
            return
        }
        guard let cluster = await ClickHouseCluster.shared(test: "ClusterEndToEndTests") else { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-ch-e2e-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func file(_ name: String) -> String { dir.appendingPathComponent(name).path }
        var lap = Date()
        func clock(_ what: String) {
            print("ClusterEndToEndTests: \(what) took \(String(format: "%.1f", Date().timeIntervalSince(lap))) s")
            lap = Date()
        }

        // 1. The workload.
        // Starting 14 days back: the simulated lifecycles (backorders retried daily) last up to about 8 days, and
        // from the default start (9 days back) an order's last events could lie in the future, which live
        // evaluation and a replay rightly see differently (docs/alerts.md): two of four local runs here found the
        // live NotInvoicedWithin1d alert of an order invoiced in the future missing against the replay.
        let sim = try CLIResult.run(["simulate", "--orders", "300", "--days", "2", "--seed", "41", "--start", "-14d",
                                     "--faults", "duplicate=0.03,reorder=0.1,late-arrival=0.02,short-pick=0.05,erp-latency=2s@10:00-11:00",
                                     "--out", file("simulated.ndjson")])
        #expect(sim.status == 0, "\(sim.stderr)")
        clock("simulate")
        // And four orders released hours ago and never shipped, for the SLA rule to fire on now.
        let iso = ISO8601DateFormatter()
        iso.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        func ago(_ minutes: Double) -> String { iso.string(from: Date().addingTimeInterval(-minutes * 60)) }
        var stuck: [String] = []
        for (i, warehouse) in ["DC-EAST", "DC-EAST", "DC-WEST", "DC-WEST"].enumerated() {
            let order = "STUCK-\(i)"
            stuck.append(#"{"specversion":"1.0","id":"\#(order)-1","source":"oms","type":"order.accepted","time":"\#(ago(360 - Double(i)))","subject":"\#(order)","data":{"channel":"web","region":"west","lines":[{"line":1,"qty":2,"sku":"SKU-1"}]}}"#)
            stuck.append(#"{"specversion":"1.0","id":"\#(order)-2","source":"allocation","type":"order.allocated","time":"\#(ago(355 - Double(i)))","subject":"\#(order)","data":{"warehouse":"\#(warehouse)","lines":[{"line":1,"qty_allocated":2,"sku":"SKU-1","warehouse":"\#(warehouse)"}]}}"#)
            stuck.append(#"{"specversion":"1.0","id":"\#(order)-3","source":"wms","type":"order.released","time":"\#(ago(330 - Double(i)))","subject":"\#(order)","data":{"warehouse":"\#(warehouse)"}}"#)
        }
        let lines = try String(contentsOfFile: file("simulated.ndjson"), encoding: .utf8).split(separator: "\n").map(String.init) + stuck
        try (lines.joined(separator: "\n") + "\n").write(toFile: file("all.ndjson"), atomically: true, encoding: .utf8)
        #expect(lines.count > 2000)
        let latest = lines.compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }.compactMap { $0["time"] as? String }.max()
        #expect(latest.map { $0 < iso.string(from: Date().addingTimeInterval(-3600)) } ?? false, "no event later than an hour ago: \(latest ?? "-")")
        // Half to each server (interleaved, so one order's events arrive through both); a batch of each half
        // is re-sent to the other server too (a client that retried elsewhere after a timeout).
        let half0 = lines.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
        let half1 = lines.enumerated().filter { $0.offset % 2 == 1 }.map(\.element)
        let resend = Array(half0[100..<400]) + Array(half1[800..<1000])
        for (name, part) in [("a.ndjson", half0), ("b.ndjson", half1), ("resend.ndjson", resend)] {
            try (part.joined(separator: "\n") + "\n").write(toFile: file(name), atomically: true, encoding: .utf8)
        }

        // 2. Rules: SLA rules (with orders behind them) and a KPI rule; a hook on loopback counts deliveries.
        let hook = try HookReceiver.start(directory: dir)
        defer { hook?.stop() }
        let hookYAML = hook.map { "hooks:\n  - name: e2e\n    url: http://127.0.0.1:\($0.port)/hook\n    format: waybill\n" } ?? ""
        let rules = """
            rules:
              - name: NotShippedWithin2h
                after: order.released
                expect: order.shipped
                within: 2h
                by: warehouse
                severity: page
              - name: NotInvoicedWithin1d
                after: order.shipped
                expect: order.invoiced
                within: 1d
                severity: ticket
              - name: FillRateBelow99
                kpi: fill_rate
                op: "<"
                threshold: 0.99
                window: 30d
                by: warehouse
                severity: ticket
            \(hookYAML)evaluation_interval: 15s
            group_wait: 1s
            group_interval: 1m
            repeat_interval: 4h

            """
        try rules.write(toFile: file("rules.yaml"), atomically: true, encoding: .utf8)

        // 3. Two servers on one cluster (the password only in the environment), one of them evaluating alerts.
        let database = ClickHouseCluster.freshDatabase("e2e")
        let store = cluster.url(database: database, withPassword: false)
        let env = ["WAYBILL_CLICKHOUSE_PASSWORD": cluster.password]
        let alerting = try await WaybillServerProcess.start(["--store", store, "--alerts", "--config", file("rules.yaml"), "--request-timeout", "300s"], environment: env)
        defer { alerting.stop(removeLog: true) }
        let serving = try await WaybillServerProcess.start(["--store", store, "--config", file("rules.yaml"), "--request-timeout", "300s"], environment: env)
        defer { serving.stop(removeLog: true) }
        #expect(serving.log.contains("not evaluated by this server"), "\(serving.log)")

        func ingest(_ name: String, _ target: [String], _ environment: [String: String] = [:]) throws -> (accepted: Int, duplicates: Int) {
            let r = try CLIResult.run(["ingest", file(name), "--json"] + target, environment: environment)
            #expect(r.status == 0, "ingest \(name) \(target): \(r.stderr)")
            let doc = (try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))) as? [String: Any] ?? [:]
            return ((doc["accepted"] as? NSNumber)?.intValue ?? -1, (doc["duplicates"] as? NSNumber)?.intValue ?? -1)
        }
        let a = try ingest("a.ndjson", ["--url", alerting.base])
        let b = try ingest("b.ndjson", ["--url", serving.base])
        let r1 = try ingest("resend.ndjson", ["--url", serving.base])
        let r2 = try ingest("resend.ndjson", ["--url", alerting.base])
        let reference = try ingest("all.ndjson", ["--db", file("reference.db")])
        #expect(reference.accepted > 2000 && reference.duplicates > 0)
        // Exactly once across servers: every distinct event accepted once, every other copy a duplicate.
        #expect(a.accepted + b.accepted + r1.accepted + r2.accepted == reference.accepted,
                "accepted \(a) \(b) \(r1) \(r2) vs \(reference)")
        #expect(r1.accepted == 0 && r2.accepted == 0, "re-sent batches are all duplicates: \(r1) \(r2)")
        #expect(a.duplicates + b.duplicates + r1.duplicates + r2.duplicates == lines.count + 2 * resend.count - reference.accepted)
        clock("ingest")

        // 4. The same answers everywhere: SQLite, either server, and the CLI reading the cluster directly.
        let readers: [(String, [String], [String: String])] = [
            ("alerting server", ["--url", alerting.base], [:]), ("serving server", ["--url", serving.base], [:]), ("--store", ["--store", store], env),
        ]
        func json(_ args: [String], _ target: [String], _ environment: [String: String] = [:]) throws -> Any? {
            let r = try CLIResult.run(args + target, environment: environment)
            #expect(r.status == 0, "\(args) \(target): \(r.stderr)")
            return try? JSONSerialization.jsonObject(with: Data(r.stdout.utf8))
        }
        // An absolute window (a relative one would be another instant for each command).
        let window = ["--from", iso.string(from: Date().addingTimeInterval(-30 * 86_400)), "--to", iso.string(from: Date().addingTimeInterval(86_400))]
        let kpiQueries: [[String]] = [
            ["kpi", "--json"] + window, ["kpi", "--json", "--by", "warehouse", "--step", "1d"] + window,
            ["kpi", "--json", "--by", "channel"] + window, ["kpi", "--json", "--by", "region", "--step", "6h"] + window,
        ]
        for q in kpiQueries {
            let expected = try json(q, ["--db", file("reference.db")])
            #expect(expected != nil)
            for (name, target, environment) in readers {
                let got = try json(q, target, environment)
                let diffs = JSONCompare.differences(expected, got, tolerance: Self.tolerance)
                #expect(diffs.isEmpty, "\(q.joined(separator: " ")) from \(name): \(diffs.prefix(5))")
            }
        }
        // Traces of a sample of orders, by order id and by a linked key, and searches.
        clock("KPIs")
        let orders = Array(Set(lines.compactMap { Self.subject($0) }.filter { !$0.contains(":") })).sorted()
        let shipments = Array(Set(lines.compactMap { Self.subject($0) }.filter { $0.hasPrefix("shipment:") })).sorted()
        #expect(orders.count == 304)
        let sample = stride(from: 0, to: orders.count, by: 43).map { orders[$0] } + shipments.prefix(3)
        for key in sample {
            let expected = try json(["trace", key, "--json"], ["--db", file("reference.db")])
            #expect(expected != nil, "\(key)")
            for (name, target, environment) in readers {
                let got = try json(["trace", key, "--json"], target, environment)
                let diffs = JSONCompare.differences(expected, got, tolerance: { _ in 1e-9 })
                #expect(diffs.isEmpty, "trace \(key) from \(name): \(diffs.prefix(5))")
            }
        }
        for q in [["search", "--json", "--limit", "500"], ["search", "--json", "--state", "invoiced", "--limit", "50"],
                  ["search", "--json", "--warehouse", "DC-EAST", "--type", "order.short_picked"], ["search", "--json", "--channel", "edi"]] {
            let expected = try json(q, ["--db", file("reference.db")])
            for (name, target, environment) in readers {
                let got = try json(q, target, environment)
                let diffs = JSONCompare.differences(expected, got, tolerance: { _ in 1e-9 })
                #expect(diffs.isEmpty, "\(q.joined(separator: " ")) from \(name): \(diffs.prefix(5))")
            }
        }

        clock("traces and searches")
        // 5. Alerts: the --alerts server evaluates (every rule has a last evaluation after the ingest), the other does not.
        let ingested = Date()
        var live: [[String: Any]] = []
        var liveEvaluatedAt: String?
        for _ in 0..<240 {
            let rulesDoc = (try? JSONSerialization.jsonObject(with: Data(try await alerting.get("/api/v1/rules").body.utf8))) as? [String: Any]
            let stamps = (rulesDoc?["rules"] as? [[String: Any]] ?? []).compactMap { $0["evaluated_at"] as? String }
            let evaluated = stamps.compactMap(Self.date)
            if evaluated.count == 3, evaluated.allSatisfy({ $0 > ingested.addingTimeInterval(1) }) {
                let doc = (try? JSONSerialization.jsonObject(with: Data(try await alerting.get("/api/v1/alerts").body.utf8))) as? [String: Any]
                live = doc?["alerts"] as? [[String: Any]] ?? []
                // The instant of that evaluation: the reference for the live alerts is evaluated as of it, since
                // an SLA deadline (e.g. an order shipped a day ago) may pass between it and a replay made later.
                liveEvaluatedAt = zip(stamps, evaluated).max { $0.1 < $1.1 }?.0
                break
            }
            try await Task.sleep(nanoseconds: 250_000_000)
        }
        let servingRules = (try JSONSerialization.jsonObject(with: Data(try await serving.get("/api/v1/rules").body.utf8))) as? [String: Any]
        #expect((servingRules?["rules"] as? [[String: Any]])?.count == 3)
        #expect((servingRules?["rules"] as? [[String: Any]] ?? []).allSatisfy { $0["evaluated_at"] == nil || $0["evaluated_at"] is NSNull },
                "the serving server does not evaluate")
        #expect(live.contains { $0["rule"] as? String == "NotShippedWithin2h" && $0["state"] as? String == "firing" }, "the stuck orders fire")
        clock("live alerts")
        // The serving server's answer and the SQLite replay as of one instant: an SLA deadline of the simulated
        // orders (placed relative to now) may pass between two replays made "now" (CI on 55b8e78: this test failed
        // with one issue). The replay took 0.3 s here, but CI at load 15-19 saw the server's 60 s request deadline
        // close the connection ("Empty reply from server"): the servers run with the test client's 300 s, and a
        // failed request shows the server's log.
        let replayAt = iso.string(from: Date())
        let replayAnswer: (status: Int, body: String)
        do {
            replayAnswer = try await serving.get("/api/v1/alerts?at=\(replayAt)")
        } catch {
            Issue.record("GET /api/v1/alerts?at=\(replayAt) on the serving server: \(error); its log ends: \(serving.log.suffix(3000))")
            throw error
        }
        let replayed = ((try JSONSerialization.jsonObject(with: Data(replayAnswer.body.utf8))) as? [String: Any])?["alerts"] as? [[String: Any]] ?? []
        clock("alerts answered by the serving server")
        let referenceAlerts = (try json(["alerts", "list", "--json", "--config", file("rules.yaml"), "--at", replayAt], ["--db", file("reference.db")]) as? [String: Any])?["alerts"]
            as? [[String: Any]] ?? []
        #expect(!referenceAlerts.isEmpty, "the workload makes some alerts")
        // The --alerts server evaluates every 15 s while the two halves arrive, so its history may hold alerts
        // that fired on part of the data and resolved once the rest came, and a KPI alert that fired early
        // keeps the order list of its first drill-down until the next refresh (at most every 5 minutes,
        // docs/alerts.md). What must agree with the replay over all the data: the alerts active now, their
        // states, and the orders of the SLA alerts.
        let liveReference = try liveEvaluatedAt.map { at in
            (try json(["alerts", "list", "--json", "--config", file("rules.yaml"), "--at", at], ["--db", file("reference.db")]) as? [String: Any])?["alerts"]
                as? [[String: Any]] ?? []
        }
        #expect(liveEvaluatedAt != nil, "the --alerts server evaluated every rule after the ingest")
        #expect(Self.activeAlertSummary(live) == Self.activeAlertSummary(liveReference ?? referenceAlerts),
                "live on the --alerts server vs SQLite replay as of the live evaluation (\(liveEvaluatedAt ?? "-"))")
        #expect(Self.alertSummary(replayed) == Self.alertSummary(referenceAlerts), "answered by the other server vs SQLite replay")

        // Deliveries: only from the --alerts server (the waybill body's url names the server it came from).
        if let hook {
            var bodies: [[String: Any]] = []
            for _ in 0..<120 {
                bodies = hook.bodies()
                if !bodies.isEmpty && bodies.count >= Set(live.compactMap { $0["fingerprint"] as? String }).count { break }
                try await Task.sleep(nanoseconds: 250_000_000)
            }
            #expect(!bodies.isEmpty, "notifications were delivered")
            for body in bodies {
                let url = body["url"] as? String ?? ""
                #expect(url.hasPrefix(alerting.base + "/alerts#"), "delivered by the --alerts server: \(url)")
            }
            let firing = Set(live.filter { $0["state"] as? String == "firing" }.compactMap { $0["fingerprint"] as? String })
            let notified = bodies.filter { $0["status"] as? String == "firing" }.compactMap { $0["fingerprint"] as? String }
            // Every alert firing at the compared evaluation was notified; the server kept evaluating since (every
            // 15 s), so a notification of an alert that fired later (a deadline passed meanwhile) must be of an
            // alert the server reports as firing or resolved now.
            #expect(firing.isSubset(of: Set(notified)), "one notification per firing alert: \(firing.subtracting(notified)) not notified")
            let later = (try JSONSerialization.jsonObject(with: Data(try await alerting.get("/api/v1/alerts").body.utf8))) as? [String: Any]
            let known = Set((later?["alerts"] as? [[String: Any]] ?? []).filter { $0["state"] as? String != "pending" }.compactMap { $0["fingerprint"] as? String })
            #expect(Set(notified).subtracting(firing).isSubset(of: known), "notifications only of alerts that fired: \(Set(notified).subtracting(firing).subtracting(known))")
            #expect(notified.count == Set(notified).count, "none twice: \(notified.count) notifications for \(Set(notified).count) alerts")
        }
        for node in 0..<cluster.nodes.count { _ = try? await cluster.query("DROP DATABASE IF EXISTS \(database)", node: node) }
    }

    static func tolerance(_ path: String) -> Double {
        let last = path.split(separator: ".").last.map(String.init) ?? path
        if last.range(of: #"^p\d+(_s)?$"#, options: .regularExpression) != nil { return quantileTolerance }
        return 1e-9
    }

    static func subject(_ line: String) -> String? {
        guard let doc = (try? JSONSerialization.jsonObject(with: Data(line.utf8))) as? [String: Any] else { return nil }
        return doc["subject"] as? String
    }

    static func date(_ s: String) -> Date? {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return f.date(from: s) ?? ISO8601DateFormatter().date(from: s)
    }

    /// What must agree between the live engine and a replay: rule, labels, state, the orders behind it.
    /// (`since` differs: the live engine saw the condition at its first evaluation, a replay at the instant it became true.)
    /// The alerts not resolved, each with its rule, labels and state; the orders of SLA alerts only.
    static func activeAlertSummary(_ alerts: [[String: Any]]) -> [String] {
        alerts.filter { $0["state"] as? String != "resolved" }.map { a in
            let labels = (a["labels"] as? [String: String] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            let sla = (a["rule"] as? String) != "FillRateBelow99"  // the one KPI rule of this test's rules.yaml
            let orders = sla ? " \(a["orders_total"] ?? "") [" + (a["orders"] as? [String] ?? []).sorted().joined(separator: ",") + "]" : ""
            return "\(a["rule"] ?? "") {\(labels)} \(a["state"] ?? "")" + orders
        }.sorted()
    }

    static func alertSummary(_ alerts: [[String: Any]]) -> [String] {
        alerts.map { a in
            let labels = (a["labels"] as? [String: String] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
            let orders = (a["orders"] as? [String] ?? []).sorted().joined(separator: ",")
            return "\(a["rule"] ?? "") {\(labels)} \(a["state"] ?? "") \(a["orders_total"] ?? "") [\(orders)]"
        }.sorted()
    }
}

/// Compares two JSON documents (as JSONSerialization reads them) and lists where they differ; numbers
/// within a relative tolerance that depends on their path.
enum JSONCompare {
    static func differences(_ a: Any?, _ b: Any?, path: String = "$", tolerance: (String) -> Double) -> [String] {
        switch (a, b) {
        case (nil, nil): return []
        case (let x as [String: Any], let y as [String: Any]):
            var out: [String] = []
            for k in Set(x.keys).union(y.keys).sorted() {
                out += differences(x[k], y[k], path: path + "." + k, tolerance: tolerance)
                if out.count > 20 { break }
            }
            return out
        case (let x as [Any], let y as [Any]):
            guard x.count == y.count else { return ["\(path): \(x.count) items vs \(y.count)"] }
            var out: [String] = []
            for i in x.indices {
                out += differences(x[i], y[i], path: path + "[\(i)]", tolerance: tolerance)
                if out.count > 20 { break }
            }
            return out
        case (let x as String, let y as String):
            return x == y ? [] : ["\(path): \(x.prefix(120)) vs \(y.prefix(120))"]
        case (let x as NSNumber, let y as NSNumber):
            let u = x.doubleValue, v = y.doubleValue
            if u == v { return [] }
            let rel = abs(u - v) / max(abs(u), abs(v))
            return rel <= tolerance(path) ? [] : ["\(path): \(u) vs \(v)"]
        case (is NSNull, is NSNull): return []
        default:
            return ["\(path): \(String(describing: a).prefix(120)) vs \(String(describing: b).prefix(120))"]
        }
    }
}

/// A webhook receiver on loopback (Python's http.server) that keeps every body it gets.
final class HookReceiver: @unchecked Sendable {
    let process: Process
    let port: Int
    let bodiesFile: String

    init(process: Process, port: Int, bodiesFile: String) {
        self.process = process
        self.port = port
        self.bodiesFile = bodiesFile
    }

    static let script = """
        import http.server, sys
        out, portfile = sys.argv[1], sys.argv[2]
        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get('Content-Length', 0)))
                with open(out, 'ab') as f:
                    f.write(body.replace(b'\\n', b' ') + b'\\n')
                self.send_response(200)
                self.end_headers()
            def log_message(self, *args):
                pass
        s = http.server.HTTPServer(('127.0.0.1', 0), H)
        with open(portfile + '.tmp', 'w') as f:
            f.write(str(s.server_port))
        import os
        os.rename(portfile + '.tmp', portfile)
        s.serve_forever()
        """

    /// Nil (with a note) when python3 cannot be started: the delivery part of the test is then left out.
    static func start(directory: URL) throws -> HookReceiver? {
        let scriptPath = directory.appendingPathComponent("hook.py").path, bodies = directory.appendingPathComponent("hook-bodies").path
        let portFile = directory.appendingPathComponent("hook-port").path
        try script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: bodies, contents: nil)
        let p = Process()
        (p.executableURL, p.arguments) = Unmasked.command(["/usr/bin/env", "python3", scriptPath, bodies, portFile])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch {
            print("note: python3 not available, the hook delivery part of ClusterEndToEndTests is left out: \(error)")
            return nil
        }
        for _ in 0..<200 {
            if let text = try? String(contentsOfFile: portFile, encoding: .utf8), let port = Int(text) {
                return HookReceiver(process: p, port: port, bodiesFile: bodies)
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        p.terminate()
        throw ProcessFailure("the hook receiver did not start")
    }

    func bodies() -> [[String: Any]] {
        let text = (try? String(contentsOfFile: bodiesFile, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { (try? JSONSerialization.jsonObject(with: Data($0.utf8))) as? [String: Any] }
    }

    func stop() {
        ProcessState.stop(process.processIdentifier, grace: 1)
    }
}
