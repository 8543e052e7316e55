import Foundation
import Testing

/// The set-up that docs/clickhouse.md tells people to copy works on the ClickHouse installed here: its
/// users.xml (with the password's SHA-256 filled in) and its config.d file (ports moved to free ones,
/// data in a temporary directory) over Debian's own config.xml give a server that refuses the default
/// user and a wrong password, lets `waybill` in, lists only the two-shard `waybill` cluster (the example
/// clusters of Debian's config replaced), and listens on 127.0.0.1 only.
@Suite struct ClickHouseDocsTests {
    static var docsFile: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("docs/clickhouse.md")
    }

    @Test func theDocumentedUsersAndClusterConfigWork() async throws {
        let name = "ClickHouseDocsTests.theDocumentedUsersAndClusterConfigWork"
        guard let command = ClickHouseCluster.serverCommand() else {
            print("SKIPPED \(name): clickhouse-server not installed")
            return
        }
        let debianConfig = "/etc/clickhouse-server/config.xml"
        guard FileManager.default.fileExists(atPath: debianConfig) else {
            print("SKIPPED \(name): no \(debianConfig) to lay the documented config.d file over")
            return
        }
        let doc = try String(contentsOf: Self.docsFile, encoding: .utf8)
        let blocks = doc.components(separatedBy: "```xml\n").dropFirst().map { $0.components(separatedBy: "```")[0] }
        let users = try #require(blocks.first { $0.contains("<users>") }, "docs/clickhouse.md shows a users.xml")
        let cluster = try #require(blocks.first { $0.contains("<remote_servers") }, "docs/clickhouse.md shows a remote_servers config")
        #expect(users.contains("<password_sha256_hex>") && !users.contains("<ip>::/0</ip>"))
        #expect(cluster.contains("<listen_host>127.0.0.1</listen_host>"))

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-chdocs-\(UUID().uuidString.prefix(8))")
        for sub in ["config.d", "data", "tmp", "user_files", "format_schemas", "log"] {
            try FileManager.default.createDirectory(at: dir.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        defer { try? FileManager.default.removeItem(at: dir) }
        let password = "doc-" + UUID().uuidString.prefix(12)
        let ports = try ClickHouseCluster.freePorts(3)
        let d = dir.path
        try String(decoding: try Data(contentsOf: URL(fileURLWithPath: debianConfig)), as: UTF8.self)
            .write(to: dir.appendingPathComponent("config.xml"), atomically: true, encoding: .utf8)
        try users.replacingOccurrences(of: "SHA256-OF-THE-PASSWORD", with: Self.sha256Hex(password))
            .write(to: dir.appendingPathComponent("users.xml"), atomically: true, encoding: .utf8)
        // The documented file, with free ports and this test's directories (a real node keeps Debian's).
        let local = cluster.replacingOccurrences(of: "PASSWORD", with: password)
            .replacingOccurrences(of: "<http_port>8123</http_port>", with: "<http_port>\(ports[0])</http_port>")
            .replacingOccurrences(of: "<tcp_port>9000</tcp_port>", with: "<tcp_port>\(ports[1])</tcp_port>")
            .replacingOccurrences(of: "<interserver_http_port>9009</interserver_http_port>", with: "<interserver_http_port>\(ports[2])</interserver_http_port>")
            .replacingOccurrences(of: "<timezone>UTC</timezone>", with: """
                <timezone>UTC</timezone>
                  <path>\(d)/data/</path><tmp_path>\(d)/tmp/</tmp_path><user_files_path>\(d)/user_files/</user_files_path>
                  <format_schema_path>\(d)/format_schemas/</format_schema_path><users_config>\(d)/users.xml</users_config>
                  <logger><log>\(d)/log/server.log</log><errorlog>\(d)/log/server.err.log</errorlog></logger>
                """)
        #expect(local.contains("<http_port>\(ports[0])</http_port>") && local.contains("<tcp_port>\(ports[1])</tcp_port>"))
        try local.write(to: dir.appendingPathComponent("config.d/waybill.xml"), atomically: true, encoding: .utf8)

        // Through sh, which waits for the server (see ClickHouseCluster.Node.process) and writes its pid; a
        // watchdog kills it if this process dies first.
        let p = Process()
        (p.executableURL, p.arguments) = Unmasked.command(
            ["/bin/sh", "-c", "\"$@\" & echo $! > '\(d)/server.pid'; wait $!", "sh"] + command + ["--config-file=\(d)/config.xml"])
        p.currentDirectoryURL = dir
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        var pid: Int32 = 0
        for _ in 0..<200 where pid == 0 {
            pid = (try? String(contentsOfFile: "\(d)/server.pid", encoding: .utf8)).flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) } ?? 0
            if pid == 0 { try await Task.sleep(nanoseconds: 10_000_000) }
        }
        let watchdog = Process()
        (watchdog.executableURL, watchdog.arguments) = Unmasked.command(
            ["/bin/sh", "-c", "while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; kill -9 \(pid) 2>/dev/null"])
        try? watchdog.run()
        defer {
            kill(pid, SIGKILL)
            kill(p.processIdentifier, SIGKILL)
            kill(watchdog.processIdentifier, SIGKILL)
        }
        var clusters: String?
        for _ in 0..<600 where ProcessState.isAlive(pid) {
            clusters = try? await ClickHouseCluster.post("SELECT cluster, shard_num, host_address, port FROM system.clusters ORDER BY cluster, shard_num",
                                                         port: ports[0], password: password)
            if clusters != nil { break }
            try await Task.sleep(nanoseconds: 100_000_000)
        }
        let log = (try? String(contentsOfFile: "\(d)/log/server.err.log", encoding: .utf8)) ?? ""
        let answer = try #require(clusters, "the documented config starts: \(log.suffix(1000))")
        #expect(answer == "waybill\t1\t10.0.0.1\t9000\nwaybill\t2\t10.0.0.2\t9000\n", "only the documented cluster: \(answer)")
        await #expect(throws: (any Error).self) { try await ClickHouseCluster.post("SELECT 1", port: ports[0], user: nil, password: nil) }
        await #expect(throws: (any Error).self) { try await ClickHouseCluster.post("SELECT 1", port: ports[0], password: "wrong") }
        if let table = try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8) {
            for port in ports {
                let hex = String(format: "%04X", port)
                let listening = table.split(separator: "\n").filter { $0.contains(":\(hex) ") && $0.split(separator: " ")[3] == "0A" }
                #expect(!listening.isEmpty && listening.allSatisfy { $0.split(separator: " ")[1].hasPrefix("0100007F:") }, "port \(port): \(listening)")
            }
        }
    }

    /// The hex SHA-256 of `text`, as `sha256sum` prints it (users.xml's password_sha256_hex).
    static func sha256Hex(_ text: String) -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["sha256sum"]
        let input = Pipe(), output = Pipe()
        p.standardInput = input
        p.standardOutput = output
        try? p.run()
        input.fileHandleForWriting.write(Data(text.utf8))
        try? input.fileHandleForWriting.close()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
    }
}
