import Foundation
import Testing
import WaybillModel
import WaybillTestSupport

/// `serve --tls-cert --tls-key [--tls-client-ca]` with a CA made in the test (openssl): the handshake,
/// a client that does not trust the CA refused, mutual TLS with and without a client certificate, and a
/// certificate rotated on disk served from the next connection on, without a restart.
@Suite(.serialized) struct TLSTests {
    static func sh(_ command: String, in dir: String) -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", command]
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let log = URL(fileURLWithPath: dir).appendingPathComponent("sh-\(UUID().uuidString).log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        guard let out = try? FileHandle(forWritingTo: log) else { return (-1, "no log") }
        p.standardOutput = out
        p.standardError = out
        do { try p.run() } catch { return (-1, "\(error)") }
        p.waitUntilExit()
        try? out.close()
        return (p.terminationStatus, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }

    /// A CA, two server certificates for 127.0.0.1 (`first`, `rotated`) and a client certificate.
    static func makeCertificates(in dir: String) -> Bool {
        let script = """
            set -e
            openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=waybill-test-ca 2>/dev/null
            printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext
            for n in first rotated client; do
              openssl req -newkey rsa:2048 -nodes -keyout $n.key -out $n.csr -subj /CN=$n 2>/dev/null
              openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out $n.pem -days 2 -extfile san.ext 2>/dev/null
            done
            cp first.pem server.pem; cp first.key server.key
            """
        return sh(script, in: dir).0 == 0
    }

    static func start(_ args: [String], dir: String, port: Int) throws -> Process {
        let p = Process()
        p.executableURL = ServerProcess.binary
        p.arguments = ["serve", "--port", String(port), "--db", dir + "/w.db"] + args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }

    static func curl(_ opts: String, port: Int, dir: String) -> (Int32, String) {
        sh("curl -s -S --max-time 5 \(opts) https://127.0.0.1:\(port)/healthz", in: dir)
    }

    @Test func handshakeMutualTLSAndRotationWithoutRestart() async throws {
        let dir = URL(fileURLWithPath: temporaryDatabase()).deletingLastPathComponent().path
        guard Self.sh("command -v openssl && command -v curl", in: dir).0 == 0 else {
            print("SKIPPED TLSTests: openssl or curl is not installed")
            return
        }
        try #require(Self.makeCertificates(in: dir), "openssl could not make the test certificates")
        let port = Int.random(in: 20_000...60_000)
        let server = try Self.start(["--tls-cert", "server.pem", "--tls-key", "server.key"], dir: dir, port: port)
        defer { server.terminate(); server.waitUntilExit() }
        var up = false
        for _ in 0..<200 where !up {
            up = Self.curl("--cacert ca.pem", port: port, dir: dir).0 == 0
            if !up { try await Task.sleep(nanoseconds: 50_000_000) }
        }
        #expect(up, "the TLS server answered /healthz to a client trusting the CA")
        let untrusted = Self.curl("", port: port, dir: dir)
        #expect(untrusted.0 != 0, "a client that does not trust the CA refuses the server: \(untrusted.1)")
        let plain = Self.sh("curl -s --max-time 5 http://127.0.0.1:\(port)/healthz", in: dir)
        #expect(!plain.1.contains("\"status\""), "plain HTTP gets no answer from a TLS port")
        let old12 = Self.sh("openssl s_client -connect 127.0.0.1:\(port) -tls1_1 -CAfile ca.pem </dev/null", in: dir)
        #expect(old12.0 != 0, "TLS 1.1 is refused")

        func servedSubject() -> String {
            Self.sh("openssl s_client -connect 127.0.0.1:\(port) -CAfile ca.pem </dev/null 2>/dev/null | openssl x509 -noout -subject", in: dir).1
        }
        #expect(servedSubject().contains("first"))
        // Rotate: the new files are seen by the next connection.
        try await Task.sleep(nanoseconds: 20_000_000)
        _ = Self.sh("cp rotated.key server.key.new && cp rotated.pem server.pem.new && mv server.key.new server.key && mv server.pem.new server.pem", in: dir)
        #expect(servedSubject().contains("rotated"), "the rotated certificate is served without a restart")
        #expect(Self.curl("--cacert ca.pem", port: port, dir: dir).0 == 0)

        // Mutual TLS: a client certificate from the CA is required.
        let mport = port + 1
        let mtls = try Self.start(["--tls-cert", "first.pem", "--tls-key", "first.key", "--tls-client-ca", "ca.pem"], dir: dir, port: mport)
        defer { mtls.terminate(); mtls.waitUntilExit() }
        var withCert = (Int32(1), "")
        for _ in 0..<200 where withCert.0 != 0 {
            withCert = Self.curl("--cacert ca.pem --cert client.pem --key client.key", port: mport, dir: dir)
            if withCert.0 != 0 { try await Task.sleep(nanoseconds: 50_000_000) }
        }
        #expect(withCert.0 == 0 && withCert.1.contains("ok"), "a client with a certificate from the CA is served: \(withCert.1)")
        let without = Self.curl("--cacert ca.pem", port: mport, dir: dir)
        #expect(without.0 != 0 || !without.1.contains("ok"), "a client without a certificate is refused: \(without.1)")
    }
}
