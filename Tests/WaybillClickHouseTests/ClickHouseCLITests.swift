import Foundation
import Testing
import WaybillTestSupport

/// `--store clickhouse://...` on every command that opens a store: refused clearly when combined with
/// `--db` or malformed, and, against the test cluster, the password never shows in what Waybill prints,
/// logs or serves.
@Suite(.serialized) struct ClickHouseCLITests {
    static let storeCommands: [[String]] = [
        ["serve"], ["demo"], ["ingest", "-"], ["trace", "ORD-1"], ["search"], ["kpi"], ["alerts", "list", "--config", "queries/alerts"],
        ["services"], ["tokens", "list"], ["tokens", "create", "--scope", "read"], ["tokens", "revoke", "x"], ["audit"],
    ]

    @Test func dbAndStoreExcludeEachOtherAndABadURLIsNamedWithoutItsPassword() throws {
        guard WaybillBinary.exists else {
            Issue.record("waybill binary not found at \(WaybillBinary.url.path)")
            return
        }
        let db = temporaryDatabase()
        for command in Self.storeCommands {
            let both = try CLIResult.run(command + ["--db", db, "--store", "clickhouse://waybill@127.0.0.1:8123/waybill"])
            #expect(both.status != 0, "\(command)")
            #expect(both.stderr.contains("--db and --store exclude each other"), "\(command): \(both.stderr)")

            let scheme = try CLIResult.run(command + ["--store", "postgres://waybill:hunter2-secret@127.0.0.1/waybill"])
            #expect(scheme.status != 0, "\(command)")
            #expect(scheme.stderr.contains("--store: must be a ClickHouse URL"), "\(command): \(scheme.stderr)")
            #expect(!scheme.stderr.contains("hunter2-secret") && !scheme.stdout.contains("hunter2-secret"), "\(command)")

            let port = try CLIResult.run(command + ["--store", "clickhouse://waybill:hunter2-secret@127.0.0.1:99999/waybill"])
            #expect(port.status != 0, "\(command)")
            #expect(port.stderr.contains("--store: port"), "\(command): \(port.stderr)")
            #expect(!port.stderr.contains("hunter2-secret") && !port.stdout.contains("hunter2-secret"), "\(command)")

            let database = try CLIResult.run(command + ["--store", "clickhouse://waybill@127.0.0.1:8123/"])
            #expect(database.status != 0, "\(command)")
            #expect(database.stderr.contains("--store: database"), "\(command): \(database.stderr)")
        }
        let url = try CLIResult.run(["trace", "ORD-1", "--url", "http://127.0.0.1:4318", "--store", "clickhouse://waybill@127.0.0.1:8123/waybill"])
        #expect(url.status != 0)
        #expect(url.stderr.contains("--store and --url exclude each other"), "\(url.stderr)")
        let reset = try CLIResult.run(["demo", "--reset", "--store", "clickhouse://waybill@127.0.0.1:8123/waybill"])
        #expect(reset.status != 0)
        #expect(reset.stderr.contains("--reset applies to a --db file"), "\(reset.stderr)")
    }

    /// Every command against the cluster with the password from the environment, a server with the
    /// password in its URL, and a wrong password: the password shows nowhere (stdout, stderr, the server's
    /// log, /healthz, /metrics, the pages), and a wrong one is reported as an authentication failure.
    @Test func thePasswordNeverShows() async throws {
        guard WaybillBinary.exists else {
            Issue.record("waybill binary not found at \(WaybillBinary.url.path)")
            return
        }
        guard let cluster = await ClickHouseCluster.shared(test: "ClickHouseCLITests.thePasswordNeverShows") else { return }
        let database = ClickHouseCluster.freshDatabase("cli")
        let password = cluster.password
        let bare = cluster.url(database: database, withPassword: false)
        let env = ["WAYBILL_CLICKHOUSE_PASSWORD": password]
        var seen: [(String, String)] = []
        func look(_ what: String, _ text: String) { seen.append((what, text)) }

        func ce(_ id: String, _ type: String, _ time: String, _ subject: String, source: String = "oms", data: String) -> String {
            #"{"specversion":"1.0","id":"\#(id)","source":"\#(source)","type":"\#(type)","time":"\#(time)","subject":"\#(subject)","data":\#(data)}"#
        }
        let events = [
            ce("c1", "order.accepted", "2026-11-23T14:00:00Z", "ORD-CLI-1", data: #"{"channel":"web","lines":[{"line":1,"sku":"A","qty":2}]}"#),
            ce("c2", "order.allocated", "2026-11-23T14:05:00Z", "ORD-CLI-1", source: "allocation",
               data: #"{"warehouse":"DC-EAST","lines":[{"line":1,"qty_allocated":2}]}"#),
            ce("c3", "order.shipped", "2026-11-23T16:00:00Z", "ORD-CLI-1", source: "wms",
               data: #"{"warehouse":"DC-EAST","tracking":"1ZCLI","links":["shipment:1ZCLI"]}"#),
        ].joined(separator: "\n") + "\n"
        let ingest = try CLIResult.run(["ingest", "-", "--store", bare, "--json"], environment: env, stdin: events)
        #expect(ingest.status == 0, "\(ingest.stderr)")
        look("ingest", ingest.stdout + ingest.stderr)
        #expect(ingest.stdout.contains("\"accepted\":3"), "\(ingest.stdout)")
        let again = try CLIResult.run(["ingest", "-", "--store", bare, "--json"], environment: env, stdin: events)
        #expect(again.stdout.contains("\"duplicates\":3"), "a re-sent file changes nothing: \(again.stdout)")

        let trace = try CLIResult.run(["trace", "shipment:1ZCLI", "--store", bare, "--json"], environment: env)
        #expect(trace.status == 0, "\(trace.stderr)")
        #expect(trace.stdout.contains("ORD-CLI-1"))
        look("trace", trace.stdout + trace.stderr)
        for args in [["search", "--json"], ["kpi", "--from", "2026-11-23", "--to", "2026-11-24", "--json"],
                     ["alerts", "list", "--config", "queries/alerts", "--at", "2026-11-24T00:00:00Z"], ["audit"], ["services"]] {
            let r = try CLIResult.run(args + ["--store", bare], environment: env)
            #expect(r.status == 0, "\(args): \(r.stderr)")
            look(args.joined(separator: " "), r.stdout + r.stderr)
        }
        // A server with the password in its URL (as some would start it) and one with it in the environment.
        for (args, environment) in [(["--store", cluster.url(database: database)], [String: String]()), (["--store", bare], env)] {
            let server = try await WaybillServerProcess.start(args, environment: environment)
            defer { server.stop(removeLog: true) }
            for path in ["/healthz", "/metrics", "/api/v1/traces/ORD-CLI-1", "/", "/api/v1/kpis?from=2026-11-23&to=2026-11-24", "/alerts"] {
                let r = try await server.get(path)
                #expect(r.status == 200, "\(path): \(r.status) \(r.body.prefix(300))")
                look("GET \(path)", r.body)
            }
            server.stop()
            look("serve log", server.log)
            #expect(server.log.contains("store clickhouse://waybill"), "the log names the store: \(server.log)")
        }

        // Tokens last: once one exists, the servers above would ask for it.
        let token = try CLIResult.run(["tokens", "create", "--scope", "read", "--name", "cli-test", "--store", bare], environment: env)
        #expect(token.status == 0, "\(token.stderr)")
        look("tokens create", token.stdout + token.stderr)
        let tokens = try CLIResult.run(["tokens", "list", "--store", bare], environment: env)
        #expect(tokens.stdout.contains("cli-test"), "\(tokens.stdout) \(tokens.stderr)")
        look("tokens list", tokens.stdout + tokens.stderr)
        let revoke = try CLIResult.run(["tokens", "revoke", "cli-test", "--store", bare], environment: env)
        #expect(revoke.status == 0, "\(revoke.stderr)")

        // A wrong password: refused, named as such, and not echoed either.
        let wrong = "wrong-\(UUID().uuidString.prefix(8))"
        let refused = try CLIResult.run(["trace", "ORD-CLI-1", "--store", bare], environment: ["WAYBILL_CLICKHOUSE_PASSWORD": wrong])
        #expect(refused.status != 0)
        #expect(!refused.stderr.contains(wrong) && !refused.stdout.contains(wrong), "\(refused.stderr)")
        #expect(refused.stderr.lowercased().contains("password") || refused.stderr.lowercased().contains("authentication"), "\(refused.stderr)")

        for (what, text) in seen {
            #expect(!text.contains(password), "the password shows in \(what)")
        }
    }
}
