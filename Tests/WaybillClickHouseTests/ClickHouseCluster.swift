import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Two (or one) real `clickhouse-server` processes on loopback for the ClickHouse tests, as `.ci/run` sets
/// them up: each with its own configuration and data under one temporary directory, listening on
/// 127.0.0.1 only (HTTP, native TCP for the Distributed engine, interserver HTTP) on free ports, a
/// `waybill` user with a random password bound to 127.0.0.1 and no `default` user at all, and a
/// `remote_servers` cluster named `waybill` with one shard per server.
///
/// `ClickHouseCluster.shared(test:)` starts the cluster once per test process and hands the same one to
/// every suite; each test then takes its own database (`url(database:)`), so tests do not see each
/// other's tables. The servers are stopped and their directory removed when the test process exits,
/// however it exits: a watchdog process started beside them kills them (by pid) once the test process
/// is gone. Where ClickHouse is not installed, `shared` prints `SKIPPED <test>: ...` and returns nil.
final class ClickHouseCluster: @unchecked Sendable {
    struct Node: Sendable {
        let httpPort: Int
        let tcpPort: Int
        let interserverPort: Int
        /// `sh` running the server and waiting for it (Foundation's Process loses track of a child that
        /// closes the descriptors it inherited, as clickhouse-server does, and then blocks in waitpid).
        let process: Process
        /// The clickhouse-server itself.
        let pid: Int32
        var isRunning: Bool { ProcessState.isAlive(pid) }
    }

    static let user = "waybill"
    static let clusterName = "waybill"

    let directory: URL
    let password: String
    let nodes: [Node]
    private let watchdogs: [Process]
    private let lock = NSLock()
    private var stopped = false

    private init(directory: URL, password: String, nodes: [Node], watchdogs: [Process]) {
        self.directory = directory
        self.password = password
        self.nodes = nodes
        self.watchdogs = watchdogs
    }

    // MARK: Shared instance

    private static let sharedLock = NSLock()
    nonisolated(unsafe) private static var sharedStart: Task<Result<ClickHouseCluster, Unavailable>, Never>?
    nonisolated(unsafe) private static var sharedCluster: ClickHouseCluster?

    /// The cluster of this test process (two shards), started by the first caller while the others
    /// wait for it (without blocking a thread). Nil, after printing `SKIPPED <test>: <reason>`, when
    /// ClickHouse is not installed or did not start.
    static func shared(test: String) async -> ClickHouseCluster? {
        let task: Task<Result<ClickHouseCluster, Unavailable>, Never> = sharedLock.withLock {
            if let t = sharedStart { return t }
            let t = Task.detached { () -> Result<ClickHouseCluster, Unavailable> in
                do {
                    let c = try await start(shards: 2)
                    sharedLock.withLock { sharedCluster = c }
                    atexit { ClickHouseCluster.stopShared() }
                    return .success(c)
                } catch let e as Unavailable {
                    return .failure(e)
                } catch {
                    return .failure(Unavailable(reason: "clickhouse-server did not start: \(error)"))
                }
            }
            sharedStart = t
            return t
        }
        switch await task.value {
        case .success(let c): return c
        case .failure(let e):
            print("SKIPPED \(test): \(e.reason)")
            return nil
        }
    }

    private static func stopShared() {
        sharedLock.withLock { sharedCluster }?.stop()
    }

    /// Why the cluster cannot run here (printed as the SKIPPED reason).
    struct Unavailable: Error, CustomStringConvertible {
        let reason: String
        var description: String { reason }
    }

    struct StartFailure: Error, CustomStringConvertible {
        let description: String
    }

    // MARK: URLs

    /// `clickhouse://waybill:PW@127.0.0.1:P1,127.0.0.1:P2/DATABASE?cluster=waybill` (HTTP ports); without
    /// `cluster`, the first node alone as a single-node store.
    func url(database: String, withPassword: Bool = true, cluster: Bool = true) -> String {
        let hosts = (cluster ? nodes : [nodes[0]]).map { "127.0.0.1:\($0.httpPort)" }.joined(separator: ",")
        let auth = withPassword ? "\(Self.user):\(password)@" : "\(Self.user)@"
        return "clickhouse://\(auth)\(hosts)/\(database)" + (cluster ? "?cluster=\(Self.clusterName)" : "")
    }

    /// The URL of the whole cluster on the default test database.
    var url: String { url(database: "waybill") }

    /// A database name no other test of this run uses.
    static func freshDatabase(_ prefix: String = "t") -> String {
        "\(prefix)_\(getpid())_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(12).lowercased()
    }

    // MARK: Queries (for tests to look at what the engine stored)

    /// Runs one statement on node `node` over HTTP as the `waybill` user; returns the body. Throws with
    /// ClickHouse's message on an error status.
    func query(_ sql: String, node: Int = 0, settings: String = "") async throws -> String {
        try await Self.post(sql, port: nodes[node].httpPort, password: password, settings: settings)
    }

    /// `settings` go in the URL's query (`name=value&...`): ClickHouse 18.16 has no `SETTINGS` on INSERT.
    static func post(_ sql: String, port: Int, user: String? = ClickHouseCluster.user, password: String?, settings: String = "") async throws -> String {
        var headers: [String: String] = ["Content-Type": "text/plain; charset=utf-8"]
        if let user { headers["X-ClickHouse-User"] = user }
        if let password { headers["X-ClickHouse-Key"] = password }
        let answer = try await Task.detached {
            try LoopbackHTTP.post(port: port, path: "/?" + settings, headers: headers, body: Array(sql.utf8))
        }.value
        let body = String(decoding: answer.body, as: UTF8.self)
        guard answer.status == 200 else { throw StartFailure(description: "ClickHouse on port \(port) answered \(answer.status): \(body.prefix(500))") }
        return body
    }

    // MARK: Start and stop

    /// The server command: Debian's `clickhouse-server`, or the single `clickhouse` binary of newer packages.
    static func serverCommand() -> [String]? {
        let path = (ProcessInfo.processInfo.environment["PATH"] ?? "") + ":/usr/sbin:/usr/bin:/usr/local/bin"
        let dirs = path.split(separator: ":").map(String.init)
        for d in dirs where FileManager.default.isExecutableFile(atPath: d + "/clickhouse-server") { return [d + "/clickhouse-server"] }
        for d in dirs where FileManager.default.isExecutableFile(atPath: d + "/clickhouse") { return [d + "/clickhouse", "server"] }
        return nil
    }

    /// Starts `shards` servers and waits until each answers as `waybill` and sees the cluster. Ports are
    /// picked free just before the start; a start that loses a port race is retried with new ports.
    static func start(shards: Int = 2) async throws -> ClickHouseCluster {
        guard let command = serverCommand() else {
            throw Unavailable(reason: "clickhouse-server not installed (Debian: apt-get install clickhouse-server; CI: .ci/setup.d/20-clickhouse.sh)")
        }
        var lastError: Error = StartFailure(description: "not started")
        for _ in 0..<3 {
            do { return try await startOnce(command: command, shards: shards) } catch { lastError = error }
        }
        throw lastError
    }

    private static func startOnce(command: [String], shards: Int) async throws -> ClickHouseCluster {
        let fm = FileManager.default
        let dir = fm.temporaryDirectory.appendingPathComponent("waybill-clickhouse-\(getpid())-\(UUID().uuidString.prefix(8))")
        try fm.createDirectory(at: dir, withIntermediateDirectories: true)
        let password = "wb-" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let ports = try freePorts(shards * 3)
        struct Ports { let http: Int, tcp: Int, interserver: Int }
        let plan: [Ports] = (0..<shards).map { (i: Int) -> Ports in Ports(http: ports[3 * i], tcp: ports[3 * i + 1], interserver: ports[3 * i + 2]) }
        let shardTCPPorts: [Int] = plan.map { $0.tcp }
        var nodes: [Node] = []
        var watchdogs: [Process] = []
        func killStarted() {
            for n in nodes {
                kill(n.pid, SIGKILL)
                kill(n.process.processIdentifier, SIGKILL)
            }
            for w in watchdogs { kill(w.processIdentifier, SIGKILL) }
            try? fm.removeItem(at: dir)
        }
        do {
            for (i, p) in plan.enumerated() {
                let nodeDir = dir.appendingPathComponent("node\(i + 1)")
                for sub in ["data", "tmp", "user_files", "format_schemas", "log"] {
                    try fm.createDirectory(at: nodeDir.appendingPathComponent(sub), withIntermediateDirectories: true)
                }
                let config = serverConfig(nodeDir: nodeDir.path, http: p.http, tcp: p.tcp, interserver: p.interserver,
                                          shardTCPPorts: shardTCPPorts, password: password)
                try config.write(to: nodeDir.appendingPathComponent("config.xml"), atomically: true, encoding: .utf8)
                try usersConfig(password: password).write(to: nodeDir.appendingPathComponent("users.xml"), atomically: true, encoding: .utf8)
                let pidFile = nodeDir.appendingPathComponent("server.pid").path
                let proc = Process()
                (proc.executableURL, proc.arguments) = Unmasked.command(["/bin/sh", "-c", "\"$@\" & echo $! > '\(pidFile)'; wait $!", "sh"]
                    + command + ["--config-file=" + nodeDir.appendingPathComponent("config.xml").path])
                proc.currentDirectoryURL = nodeDir
                let out = nodeDir.appendingPathComponent("log/stdout.log")
                fm.createFile(atPath: out.path, contents: nil)
                let handle = try FileHandle(forWritingTo: out)
                proc.standardOutput = handle
                proc.standardError = handle
                proc.standardInput = FileHandle.nullDevice
                try proc.run()
                try? handle.close()
                var pid: Int32 = 0
                for _ in 0..<200 {
                    if let text = try? String(contentsOfFile: pidFile, encoding: .utf8), let n = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                        pid = n
                        break
                    }
                    try await Task.sleep(nanoseconds: 10_000_000)
                }
                guard pid > 0 else {
                    kill(proc.processIdentifier, SIGKILL)
                    throw StartFailure(description: "clickhouse-server node \(i + 1) did not start (no pid)")
                }
                nodes.append(Node(httpPort: p.http, tcpPort: p.tcp, interserverPort: p.interserver, process: proc, pid: pid))
                // At once, so that nothing outlives this process even if it dies while waiting below.
                if let w = startWatchdog(pids: [pid], dir: dir) { watchdogs.append(w) }
            }
            try await waitUntilReady(nodes: nodes, password: password, dir: dir)
        } catch {
            killStarted()
            throw error
        }
        return ClickHouseCluster(directory: dir, password: password, nodes: nodes, watchdogs: watchdogs)
    }

    /// Polls every node until it answers `SELECT` as `waybill` and lists the whole cluster in
    /// `system.clusters`; up to 60 s (ClickHouse 18.16 takes a few seconds on a loaded machine).
    private static func waitUntilReady(nodes: [Node], password: String, dir: URL) async throws {
        let deadline = Date().addingTimeInterval(60)
        for (i, node) in nodes.enumerated() {
            while true {
                if !node.isRunning {
                    let log = (try? String(contentsOf: dir.appendingPathComponent("node\(i + 1)/log/stdout.log"), encoding: .utf8)) ?? ""
                    let err = (try? String(contentsOf: dir.appendingPathComponent("node\(i + 1)/log/server.err.log"), encoding: .utf8)) ?? ""
                    throw StartFailure(description: "clickhouse-server node \(i + 1) exited: \((log + err).suffix(800))")
                }
                let answer = try? await post("SELECT count() FROM system.clusters WHERE cluster = '\(clusterName)'", port: node.httpPort, password: password)
                if let a = answer, Int(a.trimmingCharacters(in: .whitespacesAndNewlines)) == nodes.count { break }
                guard Date() < deadline else { throw StartFailure(description: "clickhouse-server node \(i + 1) did not answer within 60 s") }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
        }
    }

    /// A shell loop beside each server: while the test process lives it sleeps; once it is gone (any exit,
    /// a crash, SIGKILL) it kills that server by pid and removes the cluster's directory.
    private static func startWatchdog(pids: [Int32], dir: URL) -> Process? {
        let p = Process()
        let list = pids.map(String.init).joined(separator: " ")
        (p.executableURL, p.arguments) = Unmasked.command(
            ["/bin/sh", "-c", "while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; kill -9 \(list) 2>/dev/null; sleep 1; rm -rf '\(dir.path)'"])
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        return p
    }

    /// Stops the servers (SIGTERM, then SIGKILL after 3 s: the data is thrown away anyway) and removes
    /// their directory. Idempotent.
    func stop() {
        let first = lock.withLock { () -> Bool in
            defer { stopped = true }
            return !stopped
        }
        guard first else { return }
        for n in nodes where n.isRunning { kill(n.pid, SIGTERM) }
        for n in nodes { ProcessState.stop(n.pid, grace: 3) }
        for n in nodes { kill(n.process.processIdentifier, SIGKILL) }
        for w in watchdogs { kill(w.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: directory)
    }

    /// Ports the kernel hands out as free right now (bound and released; the start retries on a race).
    static func freePorts(_ count: Int) throws -> [Int] {
        var sockets: [Int32] = []
        defer { for s in sockets { close(s) } }
        var ports: [Int] = []
        for _ in 0..<count {
            #if canImport(Glibc)
            let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            #else
            let s = socket(AF_INET, SOCK_STREAM, 0)
            #endif
            guard s >= 0 else { throw StartFailure(description: "socket() failed") }
            sockets.append(s)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_port = 0
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &addr) { ptr in
                ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa -> Bool in
                    bind(s, sa, len) == 0 && getsockname(s, sa, &len) == 0
                }
            }
            guard bound else { throw StartFailure(description: "bind() failed") }
            ports.append(Int(UInt16(bigEndian: addr.sin_port)))
        }
        return ports
    }

    // MARK: Configuration files

    static func xmlEscape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// One node's config.xml: loopback only, its own ports and directories, and the two-shard cluster.
    /// The same `remote_servers` block is what docs/clickhouse.md shows for a real set-up.
    static func serverConfig(nodeDir: String, http: Int, tcp: Int, interserver: Int, shardTCPPorts: [Int], password: String) -> String {
        let shardsXML = shardTCPPorts.map { port in
            """
                  <shard>
                    <internal_replication>false</internal_replication>
                    <replica><host>127.0.0.1</host><port>\(port)</port><user>\(user)</user><password>\(xmlEscape(password))</password></replica>
                  </shard>
            """
        }.joined(separator: "\n")
        return """
            <?xml version="1.0"?>
            <yandex>
              <logger>
                <level>warning</level>
                <log>\(nodeDir)/log/server.log</log>
                <errorlog>\(nodeDir)/log/server.err.log</errorlog>
                <size>10M</size>
                <count>1</count>
              </logger>
              <listen_host>127.0.0.1</listen_host>
              <http_port>\(http)</http_port>
              <tcp_port>\(tcp)</tcp_port>
              <interserver_http_port>\(interserver)</interserver_http_port>
              <interserver_http_host>127.0.0.1</interserver_http_host>
              <path>\(nodeDir)/data/</path>
              <tmp_path>\(nodeDir)/tmp/</tmp_path>
              <user_files_path>\(nodeDir)/user_files/</user_files_path>
              <format_schema_path>\(nodeDir)/format_schemas/</format_schema_path>
              <users_config>\(nodeDir)/users.xml</users_config>
              <default_profile>default</default_profile>
              <default_database>default</default_database>
              <timezone>UTC</timezone>
              <max_concurrent_queries>100</max_concurrent_queries>
              <mark_cache_size>268435456</mark_cache_size>
              <uncompressed_cache_size>268435456</uncompressed_cache_size>
              <remote_servers>
                <\(clusterName)>
            \(shardsXML)
                </\(clusterName)>
              </remote_servers>
            </yandex>

            """
    }

    /// users.xml: only `waybill`, with a password, from loopback. There is no `default` user, so a
    /// connection without credentials is refused.
    static func usersConfig(password: String) -> String {
        """
        <?xml version="1.0"?>
        <yandex>
          <profiles>
            <default>
              <max_memory_usage>2000000000</max_memory_usage>
              <load_balancing>in_order</load_balancing>
            </default>
          </profiles>
          <users>
            <\(user)>
              <password>\(xmlEscape(password))</password>
              <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
              </networks>
              <profile>default</profile>
              <quota>default</quota>
            </\(user)>
          </users>
          <quotas>
            <default>
              <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
              </interval>
            </default>
          </quotas>
        </yandex>

        """
    }
}
