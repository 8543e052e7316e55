import AsyncHTTPClient
import Foundation
import Testing
import WaybillModel
import WaybillTestSupport

/// Hostile input found by a machine: schemathesis (PyPI) generates requests from the live server's own
/// `/openapi.json`, valid and invalid, with every check on (no 5xx, every status and body as documented,
/// schema-valid requests accepted, invalid ones refused, auth enforced, 405 with Allow), and
/// openapi-spec-validator checks the document itself. Skipped, saying why, where PyPI is unreachable.
@Suite(.serialized) struct SchemathesisTests {
    /// Rules between parameters, which OpenAPI 3.0 cannot state (docs/http-api.md "Parameters"): a
    /// generated request that breaks one is not schema-valid in our terms, so it is not sent as a
    /// positive case. Each rule here answers 400 naming its field, which the HTTP tests check.
    static let hooks = #"""
        import re, time
        from datetime import datetime
        import schemathesis

        UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

        def seconds(text):
            m = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)(us|ms|s|m|h|d|w)", text or "")
            return float(m.group(1)) * UNITS[m.group(2)] if m else None

        def instant(text, now):
            if text is None: return None
            if text == "now": return now
            if text[:1] in "+-":
                d = seconds(text[1:])
                return None if d is None else now + (d if text[0] == "+" else -d)
            try:
                return datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00")).timestamp()
            except Exception:
                return None

        @schemathesis.hook
        def filter_case(ctx, case):
            # filter_case runs in every phase (coverage included); filter_query does not.
            query = case.query
            if not query: return True
            # A repeated parameter counts by its last value (as the server reads it); an empty one is absent.
            query = {k: (v[-1] if isinstance(v, list) and v else v) for k, v in query.items()}
            query = {k: v for k, v in query.items() if isinstance(v, str) and v != ""}
            now = time.time()
            if "cursor" in query: return False                      # a cursor is one this server issued
            if "split" in query and "explain" in query: return False # split is not combined with explain
            path = case.operation.path
            base = instant(query.get("at"), now) if "at" in query else now
            base = now if base is None else base
            start, end = instant(query.get("from"), base), instant(query.get("to"), base)
            # Where `to` defaults to now, and the window `from` defaults to.
            defaults = {"/api/v1/kpis": 7 * 86400, "/kpis": 7 * 86400, "/api/v1/services": 3600, "/services": 3600,
                        "/api/v1/export/ocel": None}
            if path in defaults:
                end = now if end is None else end
                if start is None and defaults[path] is not None: start = end - defaults[path]
            if start is not None and end is not None and end <= start: return False   # to after from
            step = seconds(query.get("step"))
            if step and start is not None and end is not None and (end - start) / step > 9990: return False  # <= 10,000 points
            return True
        """#

    static let rules = """
        evaluation_interval: 1m
        rules:
          - name: OrderNotShipped
            after: order.released
            expect: order.shipped
            within: 24h
            by: warehouse
            severity: page
          - name: FillRateLow
            kpi: fill_rate
            op: "<"
            threshold: 0.9
            window: 6h
            by: warehouse
            severity: ticket
        """

    @Test func theLiveServerKeepsToItsOpenAPIDocument() async throws {
        guard FileManager.default.fileExists(atPath: ServerProcess.binary.path) else { Issue.record("waybill binary missing"); return }
        guard let venv = await PythonVenv.make("schemathesis", packages: ["schemathesis>=4,<5", "openapi-spec-validator"],
                                         test: "theLiveServerKeepsToItsOpenAPIDocument") else { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-fuzz-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir + "/hooks", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = dir + "/fuzz.db"
        let sim = try await CLIRun.run(["simulate", "--orders", "200", "--days", "2", "--db", db])
        #expect(sim.status == 0, "\(sim.stderr)")
        func token(_ scope: String) async throws -> String {
            let r = try await CLIRun.run(["tokens", "create", "--scope", scope, "--name", "fuzz-\(scope)", "--db", db])
            return r.stdout.split(separator: "\n").last.map(String.init) ?? ""
        }
        let admin = try await token("admin"), read = try await token("read"), ingest = try await token("ingest")
        try Self.hooks.write(toFile: dir + "/hooks/waybill_hooks.py", atomically: true, encoding: .utf8)
        try Self.rules.write(toFile: dir + "/rules.yaml", atomically: true, encoding: .utf8)
        let server = try await ServerProcess.start(db: db, extra: ["--config", dir + "/rules.yaml"])
        defer { server.stop() }

        // The document itself.
        var req = HTTPClientRequest(url: server.base + "/openapi.json")
        req.headers.add(name: "Authorization", value: "Bearer \(read)")
        let resp = try await HTTPClient.shared.execute(req, timeout: .seconds(10))
        #expect(resp.status == .ok)
        let body = try await resp.body.collect(upTo: 4 << 20)
        try Data(body.readableBytesView).write(to: URL(fileURLWithPath: dir + "/openapi.json"))
        let (vrc, vlog) = await PythonVenv.run([venv.bin("openapi-spec-validator"), dir + "/openapi.json"])
        #expect(vrc == 0, "openapi-spec-validator: \(vlog)")

        // Every operation, positive and negative cases, every check. The query and admin routes with an
        // admin token (admin implies read); the collector routes with an ingest token. One worker: with two,
        // hypothesis builds strategies on two threads at once, where CPython 3.11's ast module fails now and
        // then (below; CI on b3d535b's successor failed both runs with a Python traceback inside schemathesis's
        // strategy code). One worker ran the suite in 72 s against 85 s with two, alone on this machine.
        // Responses may take up to 60 s: this checks the document, not latency, and the debug build on a CI
        // machine at load 15 answered `GET /api/v1/kpis?split=errors` (a trace read per order of the window:
        // 5.5 s for this store's 200 orders at load 14 here) after more than 20 s, `/metrics` after 10.7 s.
        let env = ["SCHEMATHESIS_HOOKS": "waybill_hooks", "PYTHONPATH": dir + "/hooks"]
        let common = ["run", dir + "/openapi.json", "--url", server.base, "--checks", "all", "--max-examples", "25",
                      "--seed", "20261130", "--no-color", "--workers", "1", "--request-timeout", "60", "--max-response-time", "60",
                      "--generation-database", "none", "--report-dir", dir + "/report"]
        let runs: [(String, [String])] = [
            ("admin token, query routes", ["-H", "Authorization: Bearer \(admin)", "--exclude-path-regex", "^/v1/|^/api/v1/orders$"]),
            ("ingest token, collector routes", ["-H", "Authorization: Bearer \(ingest)", "--include-path-regex", "^/v1/"]),
        ]
        for (name, args) in runs {
            var (rc, log) = await PythonVenv.run([venv.bin("schemathesis")] + common + args, environment: env)
            // CPython 3.11's ast module can fail inside hypothesis while it builds a strategy on a worker
            // thread ("SystemError: AST constructor recursion depth mismatch", a Python bug fixed in later
            // releases): schemathesis reports it as a runtime error of its own, not as a finding about the
            // server. That one error is retried, up to three runs in all (it hit two runs in a row in a
            // clean-clone CI run of 31ac62a); anything else counts.
            var runsDone = 1
            while rc != 0, runsDone < 3, log.contains("SystemError: AST constructor recursion depth mismatch") {
                print("note: schemathesis (\(name)) hit CPython's AST recursion bug; running it again")
                (rc, log) = await PythonVenv.run([venv.bin("schemathesis")] + common + args, environment: env)
                runsDone += 1
            }
            #expect(rc == 0, "schemathesis (\(name)) found failures:\n\(log.suffix(6000))")
            #expect(log.contains("Test cases:"), "schemathesis (\(name)) did not run:\n\(log.suffix(2000))")
        }
        let health = try await HTTPClient.shared.execute(HTTPClientRequest(url: server.base + "/healthz"), timeout: .seconds(5))
        #expect(health.status == .ok, "the server must still be healthy after the fuzzing")
    }
}
