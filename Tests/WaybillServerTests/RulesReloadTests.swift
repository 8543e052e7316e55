import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import WaybillAlerts
import WaybillKPI
import WaybillModel
import WaybillQuery
import WaybillSQLite
@testable import WaybillServer
import WaybillTestSupport

/// A running `waybill serve --config DIR` reads its rules again on `POST /api/v1/rules/reload` (admin
/// token) and on SIGHUP, keeps the rules in force when the files are bad, and records who reloaded.
@Suite(.serialized) struct RulesReloadTests {
    static func rule(_ name: String, within: String = "15m") -> String {
        "  - name: \(name)\n    after: order.accepted\n    expect: order.allocated\n    within: \(within)\n    severity: ticket\n"
    }

    static func post(_ url: String, token: String?) async throws -> (status: Int, body: JSONValue?) {
        var req = HTTPClientRequest(url: url)
        req.method = .POST
        if let token { req.headers.add(name: "Authorization", value: "Bearer " + token) }
        let r = try await HTTPClient.shared.execute(req, timeout: .seconds(10))
        let bytes = Array((try await r.body.collect(upTo: 1 << 20)).readableBytesView)
        return (Int(r.status.code), try? JSONParser.parse(bytes))
    }

    static func ruleNames(_ base: String, token: String) async throws -> [String] {
        var req = HTTPClientRequest(url: base + "/api/v1/rules")
        req.headers.add(name: "Authorization", value: "Bearer " + token)
        let r = try await HTTPClient.shared.execute(req, timeout: .seconds(10))
        let doc = try JSONParser.parse(Array((try await r.body.collect(upTo: 1 << 20)).readableBytesView))
        return (doc["rules"]?.arrayValue ?? []).compactMap { $0["name"]?.stringValue }
    }

    @Test func rulesReloadOverHTTPAndOnSIGHUPAndBadFilesChangeNothing() async throws {
        guard FileManager.default.fileExists(atPath: ServerProcess.binary.path) else { Issue.record("waybill binary missing"); return }
        let db = temporaryDatabase()
        let dir = (db as NSString).deletingLastPathComponent + "/rules-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let file = dir + "/sla.yaml"
        try ("rules:\n" + Self.rule("First")).write(toFile: file, atomically: true, encoding: .utf8)
        let admin = try #require(try await CLIRun.run(["tokens", "create", "--scope", "admin", "--name", "ops", "--db", db]).stdout
            .split(separator: "\n").last.map(String.init))
        let reader = try #require(try await CLIRun.run(["tokens", "create", "--scope", "read", "--db", db]).stdout
            .split(separator: "\n").last.map(String.init))
        let server = try await ServerProcess.start(db: db, extra: ["--config", dir])
        defer { server.stop() }
        #expect(try await Self.ruleNames(server.base, token: reader) == ["First"])

        // A read token may not reload; none at all is refused.
        #expect(try await Self.post(server.base + "/api/v1/rules/reload", token: reader).status == 403)
        #expect(try await Self.post(server.base + "/api/v1/rules/reload", token: nil).status == 401)

        // Unchanged files: nothing to do, nothing audited again.
        let same = try await Self.post(server.base + "/api/v1/rules/reload", token: admin)
        #expect(same.status == 200)
        #expect(same.body?["status"]?.stringValue == "unchanged")
        #expect(same.body?["audited"] == .bool(false))

        // A new rule, a changed one and a hook, over HTTP.
        try ("rules:\n" + Self.rule("First", within: "30m") + Self.rule("Second")
             + "hooks:\n  - name: pager\n    url: http://127.0.0.1:9/hook\n").write(toFile: file, atomically: true, encoding: .utf8)
        let changed = try await Self.post(server.base + "/api/v1/rules/reload", token: admin)
        #expect(changed.status == 200)
        #expect(changed.body?["status"]?.stringValue == "reloaded")
        #expect(changed.body?["rules"]?.arrayValue?.compactMap(\.stringValue) == ["First", "Second"])
        #expect(changed.body?["audited"] == .bool(true))
        #expect(try await Self.ruleNames(server.base, token: reader) == ["First", "Second"])
        // The new hook is on /metrics at 0 before its first delivery.
        var metricsRequest = HTTPClientRequest(url: server.base + "/metrics")
        metricsRequest.headers.add(name: "Authorization", value: "Bearer " + reader)
        let metrics = String(buffer: try await HTTPClient.shared.execute(metricsRequest, timeout: .seconds(10)).body.collect(upTo: 4 << 20))
        #expect(metrics.contains("waybill_alert_delivery_attempts_total{hook=\"pager\"} 0"), "\(metrics.prefix(300))")

        // A bad file: 422 naming the field and the rule; the rules in force stay.
        try ("rules:\n" + Self.rule("First", within: "soon")).write(toFile: file, atomically: true, encoding: .utf8)
        let bad = try await Self.post(server.base + "/api/v1/rules/reload", token: admin)
        #expect(bad.status == 422)
        let message = bad.body?["error"]?.stringValue ?? ""
        #expect(message.contains("sla.yaml") && message.contains("within") && message.contains("unchanged"), "\(message)")
        #expect(try await Self.ruleNames(server.base, token: reader) == ["First", "Second"])

        // SIGHUP: the server reloads and keeps running.
        try ("rules:\n" + Self.rule("Third")).write(toFile: file, atomically: true, encoding: .utf8)
        kill(server.process.processIdentifier, SIGHUP)
        var names: [String] = []
        _ = try await eventually(30) { () async throws -> Bool? in
            names = try await Self.ruleNames(server.base, token: reader)
            return names == ["Third"] ? true : nil
        }
        #expect(names == ["Third"])
        #expect(server.process.isRunning)

        // The audit log says who reloaded: the admin token over HTTP, the signal.
        let audit = try await CLIRun.run(["audit", "--db", db, "--json"])
        let entries = (audit.json?["entries"]?.arrayValue ?? []).filter { $0["action"]?.stringValue == "rules.load" }
        let actors = entries.compactMap { $0["actor"]?.stringValue }
        #expect(actors.contains("token:ops"), "\(actors)")
        #expect(actors.contains("signal:SIGHUP"), "\(actors)")
        #expect(entries.count == 3, "the start, the HTTP change and the signal: \(actors)")
    }

    /// A server that only answers for rules (a shared ClickHouse store's servers without `--alerts`)
    /// reloads them too: the view's rules change, and a bad file leaves them.
    @Test func rulesAnsweredWithoutEvaluationReloadToo() async throws {
        let path = temporaryDatabase()
        let store = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        defer { store.close() }
        let dir = (path as NSString).deletingLastPathComponent + "/view-rules-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ("rules:\n" + Self.rule("First")).write(toFile: dir + "/a.yaml", atomically: true, encoding: .utf8)
        let view = AlertRulesView(config: try AlertConfig.load(paths: [dir]), source: StoreAlertSource(store: store), baseURL: "http://w")
        let reloader = RulesReloader(paths: [dir], alerting: nil, view: view, store: store)
        try ("rules:\n" + Self.rule("First") + Self.rule("Second")).write(toFile: dir + "/a.yaml", atomically: true, encoding: .utf8)
        let doc = try await reloader.reload(actor: "test", at: 1)
        #expect(doc.status == "reloaded")
        #expect(view.config.rules.map(\.name) == ["First", "Second"])
        try "rules: [".write(toFile: dir + "/a.yaml", atomically: true, encoding: .utf8)
        await #expect(throws: RulesReloader.Failure.self) { try await reloader.reload(actor: "test", at: 2) }
        #expect(view.config.rules.map(\.name) == ["First", "Second"])
    }

    @Test func aServerWithoutRulesFilesAnswers409() async throws {
        guard FileManager.default.fileExists(atPath: ServerProcess.binary.path) else { Issue.record("waybill binary missing"); return }
        let server = try await ServerProcess.start(db: temporaryDatabase())
        defer { server.stop() }
        let r = try await Self.post(server.base + "/api/v1/rules/reload", token: nil)
        #expect(r.status == 409)
        #expect(r.body?["error"]?.stringValue?.contains("--config") == true)
    }
}
