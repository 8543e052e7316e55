import Foundation
import Testing
import WaybillTestSupport

/// A body over the limit from a client that writes it whole before reading (Python's urllib, as the
/// OpenTelemetry Python exporter does) gets its 413 at once, not at the client's timeout.
@Suite struct BodyLimitTests {
    static let script = """
        import sys, time, urllib.request, urllib.error
        body = b"x" * (64 << 20)
        t = time.time()
        for path, ctype in (("/v1/events", "application/x-ndjson"), ("/v1/traces", "application/x-protobuf")):
            req = urllib.request.Request(sys.argv[1] + path, data=body, headers={"Content-Type": ctype})
            try:
                urllib.request.urlopen(req, timeout=20)
                print(path, "accepted")
            except urllib.error.HTTPError as e:
                print(path, e.code)
            except Exception as e:
                print(path, "error", type(e).__name__)
        print("seconds %.2f" % (time.time() - t))
        """

    @Test func aWholeBodyWriterSeesThe413AtOnce() async throws {
        let server = try await ServerProcess.start(db: temporaryDatabase())
        defer { server.stop() }
        guard let text = try CLIRun.python(Self.script, [server.base], test: "aWholeBodyWriterSeesThe413AtOnce") else { return }
        #expect(text.contains("/v1/events 413"), "\(text)")
        #expect(text.contains("/v1/traces 413"), "\(text)")
        let seconds = text.split(separator: "\n").last.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 99
        #expect(seconds < 10, "both answers came within seconds, not at the client's 20 s timeout: \(text)")
    }
}
