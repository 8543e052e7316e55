import AsyncHTTPClient
import Foundation
import Testing
import WaybillModel
import WaybillTestSupport

/// Every front-end (CLI `--db`, CLI `--url`, the HTTP API and the pages) answers through the one query
/// layer, so they take the same keys and give the same documents.
@Suite(.serialized) struct QueryLayerTests {
    /// Keys a collector accepts that need encoding in a URL: space, quotes, `;`, `%`, `/`, `?`, `#`, `+`, `&`, non-ASCII.
    static let awkwardKeys = ["SO 1 \"q\" ü", "SO;%41/b", "SO?x=1&y#z+w", "注文-7"]

    static func event(_ id: String, _ type: String, _ time: String, _ subject: String, data: JSONValue) -> String {
        JSONValue.object(["specversion": "1.0", "id": .string(id), "source": "oms", "type": .string(type), "time": .string(time),
                          "subject": .string(subject), "data": data]).jsonString
    }

    @Test func everyFrontEndFindsAnyKeyTheCollectorAccepted() async throws {
        let db = temporaryDatabase()
        var lines: [String] = []
        for (i, key) in Self.awkwardKeys.enumerated() {
            lines.append(Self.event("a\(i)", "order.accepted", "2026-11-23T14:00:0\(i)Z", key,
                                    data: ["lines": [["line": 1, "sku": "A", "qty": 1]]]))
            lines.append(Self.event("s\(i)", "order.shipped", "2026-11-23T15:00:0\(i)Z", key,
                                    data: ["warehouse": "DC-EAST", "links": [.string("shipment:" + key)]]))
        }
        let file = URL(fileURLWithPath: db).deletingLastPathComponent().appendingPathComponent("awkward.ndjson")
        try (lines.joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
        let ingest = try await CLIRun.run(["ingest", file.path, "--db", db])
        #expect(ingest.status == 0, "\(ingest.stderr)")

        let server = try await ServerProcess.start(db: db)
        defer { server.stop() }
        for key in Self.awkwardKeys {
            for asked in [key, "shipment:" + key] {
                let local = try await CLIRun.run(["trace", asked, "--db", db, "--json"])
                #expect(local.status == 0, "CLI --db: \(asked): \(local.stderr)")
                #expect(local.json?["correlation_id"]?.stringValue == key)
                let remote = try await CLIRun.run(["trace", asked, "--url", server.base, "--json"])
                #expect(remote.status == 0, "CLI --url: \(asked): \(remote.stderr)")
                #expect(remote.stdout == local.stdout)
                let api = try await httpGetJSON(server.base + "/api/v1/traces/" + URLText.pathSegment(asked))
                #expect(api?["correlation_id"]?.stringValue == key, "API: \(asked)")
                let page = try await HTTPClient.shared.execute(HTTPClientRequest(url: server.base + "/traces/" + URLText.pathSegment(asked)),
                                                               timeout: .seconds(10))
                let html = String(buffer: try await page.body.collect(upTo: 1 << 20))
                #expect(page.status == .ok)
                #expect(html.contains("Order " + HTMLText.escape(key)), "page: \(asked)")
            }
        }
        // The search box redirects to the page of the key, encoded once.
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))
        let redirect = try await client.execute(HTTPClientRequest(url: server.base + "/?key=" + URLText.pathSegment(Self.awkwardKeys[0])),
                                                timeout: .seconds(10))
        try await client.shutdown()
        #expect(redirect.status == .seeOther)
        #expect(redirect.headers.first(name: "location") == "/traces/" + URLText.pathSegment(Self.awkwardKeys[0]))
    }

    @Test func localAndRemoteGiveTheSameDocuments() async throws {
        let db = temporaryDatabase()
        let sim = try await CLIRun.run(["simulate", "--orders", "300", "--days", "1", "--seed", "7", "--start", "2026-11-20T00:00:00Z", "--db", db])
        #expect(sim.status == 0, "\(sim.stderr)")
        let server = try await ServerProcess.start(db: db)
        defer { server.stop() }
        let window = ["--from", "2026-11-20T00:00:00Z", "--to", "2026-11-22T00:00:00Z"]
        let commands: [[String]] = [
            ["kpi", "--by", "warehouse", "--step", "6h", "--json"] + window,
            ["kpi", "--explain", "allocation_delay.p90_s", "--limit", "5", "--json"] + window,
            ["kpi", "--split", "errors", "--json"] + window,
            ["kpi", "--by", "channel", "--format", "csv"] + window,
            ["kpi", "--by", "warehouse", "--format", "table"] + window,
            ["search", "--warehouse", "DC-EAST", "--limit", "7", "--json"] + window,
            ["services", "--json"] + window,
        ]
        for c in commands {
            let local = try await CLIRun.run(c + ["--db", db])
            let remote = try await CLIRun.run(c + ["--url", server.base])
            #expect(local.status == 0, "\(c): \(local.stderr)")
            #expect(!local.stdout.isEmpty)
            #expect(remote.stdout == local.stdout, "\(c) differs between --db and --url")
        }
        // Relative times start with a dash and are values, not flags (the README's `kpi --from -3d`).
        for c in [["kpi", "--from", "-30d", "--to", "-1d", "--json"], ["search", "--from", "-30d", "--at", "-1m", "--json"],
                  ["services", "--from", "-30d", "--to", "-1s", "--json"]] {
            let local = try await CLIRun.run(c + ["--db", db])
            #expect(local.status == 0, "\(c): \(local.stderr)")
        }
        // A bad parameter is refused with the same words by both, naming the flag.
        for c in [["kpi", "--explain", "fill_rate", "--limit", "0"], ["kpi", "--by", "planet"], ["search", "--state", "lost"],
                  ["services", "--from", "yesterday-ish"]] {
            let local = try await CLIRun.run(c + ["--db", db])
            let remote = try await CLIRun.run(c + ["--url", server.base])
            #expect(local.status != 0 && remote.status != 0, "\(c)")
            #expect(local.stderr == remote.stderr, "\(c): \(local.stderr) vs \(remote.stderr)")
            #expect(local.stderr.contains("--" + (c[1] == "--explain" ? "limit" : String(c[1].dropFirst(2)))), "\(c): \(local.stderr)")
        }
    }
}
