import Foundation
import Testing
import WaybillTestSupport

/// A client that trickles its request is cut off after `--request-timeout` while others are served, and
/// `--max-connections` closes the connection one over the limit.
@Suite struct SlowClientTests {
    static let script = """
        import socket, sys, time, urllib.request
        host, port = "127.0.0.1", int(sys.argv[1])
        def healthz():
            try:
                return urllib.request.urlopen("http://%s:%d/healthz" % (host, port), timeout=5).status
            except Exception as e:
                return type(e).__name__
        # A trickler: headers one byte every 100 ms.
        s = socket.create_connection((host, port))
        t0 = time.time()
        request = b"POST /v1/events HTTP/1.1\\r\\nHost: x\\r\\nContent-Type: application/x-ndjson\\r\\nContent-Length: 1000\\r\\n\\r\\n" + b"x" * 1000
        cut = None
        served_meanwhile = healthz()
        for b in request:
            try:
                s.send(bytes([b]))
            except OSError:
                cut = time.time() - t0
                break
            s.settimeout(0.1)
            try:
                if s.recv(1) == b"":
                    cut = time.time() - t0
                    break
            except socket.timeout:
                pass
            except OSError:
                cut = time.time() - t0
                break
            if time.time() - t0 > 8:
                break
        print("trickler cut after", "never" if cut is None else "%.1f" % cut)
        print("served meanwhile", served_meanwhile)
        # Connection cap of 3: three idle connections hold the slots; a fourth request is closed.
        idle = [socket.create_connection((host, port)) for _ in range(3)]
        time.sleep(0.3)
        print("over the cap", healthz())
        for c in idle: c.close()
        time.sleep(0.3)
        print("after closing", healthz())
        """

    @Test func aTricklingClientIsCutOffWhileOthersAreServedAndTheConnectionCapHolds() async throws {
        let server = try await ServerProcess.start(db: temporaryDatabase(),
                                                   extra: ["--request-timeout", "1s", "--max-connections", "3"])
        defer { server.stop() }
        guard let text = try CLIRun.python(Self.script, [String(server.port)], test: "aTricklingClientIsCutOff") else { return }
        let cut = text.split(separator: "\n").first { $0.hasPrefix("trickler cut after") }.flatMap { Double($0.split(separator: " ").last ?? "") }
        #expect(cut.map { $0 >= 0.9 && $0 < 4 } == true, "the trickler is cut off about 1 s after its first byte: \(text)")
        #expect(text.contains("served meanwhile 200"), "\(text)")
        #expect(!text.contains("over the cap 200"), "the connection over the cap is not served: \(text)")
        #expect(text.contains("after closing 200"), "\(text)")
    }
}
