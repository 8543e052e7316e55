import AsyncHTTPClient
import Foundation
import Testing
import WaybillModel
import WaybillTestSupport

/// The OpenTelemetry Python SDK's OTLP/HTTP exporter, unchanged (protobuf, its default), against the real server.
@Suite(.serialized) struct OTelPythonSDKTests {
    static let script = """
        import sys
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.trace import Status, StatusCode
        provider = TracerProvider(resource=Resource.create({"service.name": "py-erp"}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=sys.argv[1] + "/v1/traces")))
        tracer = provider.get_tracer("waybill.test")
        with tracer.start_as_current_span("post_invoice") as s:
            s.set_attribute("order.id", "ORD-PY")
            s.set_attribute("amount", 12.5)
            with tracer.start_as_current_span("db.write") as d:
                d.set_status(Status(StatusCode.ERROR, "deadlock"))
        provider.shutdown()
        """

    static func shell(_ args: [String]) async -> (Int32, String) { await PythonVenv.run(args) }

    /// A throwaway venv with the SDK and its OTLP/HTTP exporter; nil (after printing why the test is
    /// skipped) when no venv can be made or PyPI is unreachable.
    static func sdkVenv(test: String) async -> String? {
        await PythonVenv.make("otel", packages: ["opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-http"], test: test)?.path
    }

    @Test func spansExportedByThePythonSDKComeBackInTheTrace() async throws {
        guard FileManager.default.fileExists(atPath: ServerProcess.binary.path) else { Issue.record("waybill binary missing"); return }
        guard let venv = await Self.sdkVenv(test: "spansExportedByThePythonSDK") else { return }
        let server = try await ServerProcess.start(db: temporaryDatabase())
        defer { server.stop() }
        let scriptPath = venv + "/export.py"
        try Self.script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        let (rc, log) = await Self.shell([venv + "/bin/python", scriptPath, server.base])
        #expect(rc == 0, "exporter failed: \(log)")
        let trace = try await CLIRun.run(["trace", "ORD-PY", "--url", server.base, "--json"])
        #expect(trace.status == 0, "\(trace.stderr)")
        let spans = trace.json?["spans"]?.arrayValue ?? []
        #expect(spans.count == 2)
        #expect(Set(spans.compactMap { $0["name"]?.stringValue }) == ["post_invoice", "db.write"])
        #expect(spans.allSatisfy { $0["service"] == "py-erp" })
        #expect(spans.contains { $0["status"] == "error" && $0["status_message"] == "deadlock" })
        #expect(spans.contains { $0["attributes"]?["amount"] == 12.5 })
    }

    /// With tokens, the exporter authenticates through `OTEL_EXPORTER_OTLP_HEADERS`, as OpenTelemetry
    /// exporters are configured; without the header its spans are refused (401) and nothing is stored.
    @Test func theExporterSendsItsTokenThroughOTELHeaders() async throws {
        guard FileManager.default.fileExists(atPath: ServerProcess.binary.path) else { Issue.record("waybill binary missing"); return }
        guard let venv = await Self.sdkVenv(test: "theExporterSendsItsToken") else { return }
        let db = temporaryDatabase()
        let ingest = try await CLIRun.run(["tokens", "create", "--scope", "ingest", "--db", db])
        let token = try #require(ingest.stdout.split(separator: "\n").last.map(String.init))
        let read = try await CLIRun.run(["tokens", "create", "--scope", "read", "--db", db])
        let readToken = try #require(read.stdout.split(separator: "\n").last.map(String.init))
        let server = try await ServerProcess.start(db: db)
        defer { server.stop() }
        let scriptPath = venv + "/export.py"
        try Self.script.write(toFile: scriptPath, atomically: true, encoding: .utf8)
        _ = await Self.shell([venv + "/bin/python", scriptPath, server.base])  // no header: refused
        let refused = try await CLIRun.run(["trace", "ORD-PY", "--url", server.base, "--token", readToken, "--json"])
        #expect(refused.status != 0, "no span may be stored without a token")
        let (rc, log) = await Self.shell(["OTEL_EXPORTER_OTLP_HEADERS=Authorization=Bearer%20" + token, venv + "/bin/python", scriptPath, server.base])
        #expect(rc == 0, "exporter failed: \(log)")
        let trace = try await CLIRun.run(["trace", "ORD-PY", "--url", server.base, "--token", readToken, "--json"])
        #expect(trace.json?["spans"]?.arrayValue?.count == 2, "\(trace.stderr)")
    }
}
