import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import WaybillModel
import WaybillTestSupport

/// `waybill serve --collectors-config`: the correlation keys a real server joins spans to orders by.
@Suite(.serialized) struct CollectorsConfigServerTests {
    /// One OTLP/JSON span of its own trace, carrying one attribute.
    static func otlp(trace: String, attribute key: String, value: String) -> String {
        #"""
        {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"tenant-gw"}}]},
         "scopeSpans":[{"spans":[{"traceId":"\#(trace)","spanId":"00f067aa0ba902b7","name":"route",
          "startTimeUnixNano":"1795442400000000000","endTimeUnixNano":"1795442400500000000",
          "attributes":[{"key":"\#(key)","value":{"stringValue":"\#(value)"}}]}]}]}]}
        """#
    }

    static func post(_ s: ServerProcess, _ path: String, _ contentType: String, _ body: String) async throws -> JSONValue {
        var req = HTTPClientRequest(url: s.base + path)
        req.method = .POST
        req.headers.add(name: "Content-Type", value: contentType)
        req.body = .bytes(ByteBuffer(string: body))
        let r = try await HTTPClient.shared.execute(req, timeout: .seconds(10))
        return try JSONParser.parse(Array(try await r.body.collect(upTo: 1 << 20).readableBytesView))
    }

    /// The span ids' trace ids in the order's trace document.
    static func traceIDs(_ s: ServerProcess, order: String) async throws -> Set<String> {
        let r = try await HTTPClient.shared.execute(HTTPClientRequest(url: s.base + "/api/v1/traces/" + order), timeout: .seconds(10))
        let doc = try JSONParser.parse(Array(try await r.body.collect(upTo: 1 << 20).readableBytesView))
        return Set((doc["spans"]?.arrayValue ?? []).compactMap { $0["trace_id"]?.stringValue })
    }

    static let customTrace = "aaaabbbbccccddddeeeeffff00001111"
    static let defaultTrace = "11112222333344445555666677778888"

    /// Sends an order, a span carrying only the custom key and one carrying only `order.id`; returns the
    /// trace ids the order's trace shows.
    static func exercise(_ s: ServerProcess, order: String) async throws -> Set<String> {
        let accepted = try await post(s, "/v1/events", "application/cloudevents+json",
                                      ce("cfg-\(order)", "order.accepted", "2026-11-23T14:00:00Z", order))
        #expect(accepted["accepted"] == 1)
        for (trace, key) in [(customTrace, "tenant.order_ref"), (defaultTrace, "order.id")] {
            let r = try await post(s, "/v1/traces", "application/json", otlp(trace: trace, attribute: key, value: order))
            #expect(r == .object([:]), "no span may be rejected: \(r)")
        }
        return try await traceIDs(s, order: order)
    }

    @Test func aServerWithACustomKeyCorrelatesASpanCarryingOnlyThatKey() async throws {
        guard FileManager.default.fileExists(atPath: ServerProcess.binary.path) else {
            Issue.record("waybill binary not found at \(ServerProcess.binary.path)")
            return
        }
        let db = temporaryDatabase()
        let config = URL(fileURLWithPath: db).deletingLastPathComponent().appendingPathComponent("collectors.yaml").path
        try "spans:\n  correlation_keys: [tenant.order_ref]\n".write(toFile: config, atomically: true, encoding: .utf8)
        let server = try await ServerProcess.start(db: db, extra: ["--collectors-config", config])
        defer { server.stop() }
        // Only the configured key joins: `order.id` is not among the keys any more.
        #expect(try await Self.exercise(server, order: "SO-CFG-1") == [Self.customTrace])
    }

    @Test func withoutAConfigTheDefaultKeysApply() async throws {
        guard FileManager.default.fileExists(atPath: ServerProcess.binary.path) else {
            Issue.record("waybill binary not found at \(ServerProcess.binary.path)")
            return
        }
        let server = try await ServerProcess.start(db: temporaryDatabase())
        defer { server.stop() }
        #expect(try await Self.exercise(server, order: "SO-CFG-2") == [Self.defaultTrace])
    }

    @Test func aBadConfigStopsTheServerWithAnErrorNamingFileAndField() async throws {
        guard FileManager.default.fileExists(atPath: ServerProcess.binary.path) else {
            Issue.record("waybill binary not found at \(ServerProcess.binary.path)")
            return
        }
        let db = temporaryDatabase()
        let dir = URL(fileURLWithPath: db).deletingLastPathComponent()
        let cases: [(String, String)] = [
            ("spans:\n  corelation_keys: [order.id]\n", "spans.corelation_keys: unknown field"),
            ("spans:\n  correlation_keys: order.id\n", "spans.correlation_keys: must be a list"),
            ("spans:\n  correlation_keys: [order.id, 42]\n", "spans.correlation_keys[1]: must be a string"),
        ]
        for (i, (yaml, message)) in cases.enumerated() {
            let path = dir.appendingPathComponent("bad-\(i).yaml").path
            try yaml.write(toFile: path, atomically: true, encoding: .utf8)
            let run = try await CLIRun.run(["serve", "--port", "1", "--db", db, "--collectors-config", path])
            #expect(run.status != 0)
            #expect(run.stderr.contains(path) && run.stderr.contains(message), "\(run.stderr)")
        }
        let missing = try await CLIRun.run(["simulate", "--orders", "1", "--db", db, "--collectors-config", dir.appendingPathComponent("none.yaml").path])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("none.yaml: cannot read the file"), "\(missing.stderr)")
    }
}
