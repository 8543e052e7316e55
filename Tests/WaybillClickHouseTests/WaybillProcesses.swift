import Foundation
import WaybillTestSupport
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

typealias CLIResult = ProcessRun

extension ProcessRun {
    /// Runs the `waybill` binary with the test's environment cleaned (`WaybillServerProcess.cleanEnvironment`)
    /// and `environment` added.
    static func run(_ args: [String], environment: [String: String] = [:], stdin: String? = nil) throws -> ProcessRun {
        try run(WaybillBinary.url, args, environment: WaybillServerProcess.cleanEnvironment.merging(environment) { $1 }, stdin: stdin)
    }
}

/// `waybill serve` as a separate process on a loopback port, its stdout and stderr kept in a file.
final class WaybillServerProcess: @unchecked Sendable {
    let process: Process
    let port: Int
    let logURL: URL

    /// The test's environment without the variables that would change what `waybill` opens or evaluates.
    static var cleanEnvironment: [String: String] {
        var env = ProcessInfo.processInfo.environment
        for k in ["WAYBILL_DB", "WAYBILL_ALERTS", "WAYBILL_TOKEN", "WAYBILL_CLICKHOUSE_PASSWORD"] { env[k] = nil }
        return env
    }

    private init(process: Process, port: Int, logURL: URL) {
        self.process = process
        self.port = port
        self.logURL = logURL
    }

    var base: String { "http://127.0.0.1:\(port)" }
    var log: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    /// Starts `waybill serve ARGS --port P` and waits until `/healthz` answers 200 (up to 120 s); a port
    /// taken meanwhile is retried with another, and so is a server that logged "listening" but whose
    /// port refused every probe for 15 s after (seen in loaded CI runs; the failure then says what the
    /// kernel and the process showed, so the cause can be found).
    static func start(_ args: [String], environment: [String: String] = [:]) async throws -> WaybillServerProcess {
        var lastError: Error = ProcessFailure("not started")
        for attempt in 0..<3 {
            let port = Int.random(in: 20_000...60_000)
            let logURL = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-chserve-\(UUID().uuidString).log")
            FileManager.default.createFile(atPath: logURL.path, contents: nil)
            let handle = try FileHandle(forWritingTo: logURL)
            let p = Process()
            (p.executableURL, p.arguments) = Unmasked.command([WaybillBinary.url.path, "serve", "--port", String(port)] + args)
            p.environment = cleanEnvironment.merging(environment) { $1 }
            p.standardOutput = handle
            p.standardError = handle
            p.standardInput = FileHandle.nullDevice
            try p.run()
            try? handle.close()
            let server = WaybillServerProcess(process: p, port: port, logURL: logURL)
            // Each probe gives up after 5 s, so one stuck connection cannot use up the wait; the last
            // outcome goes into the failure.
            let started = Date()
            let deadline = started.addingTimeInterval(120)
            var listeningSince: Date?
            var lastProbe = "no probe answered"
            var refusedAfterListening = false
            while Date() < deadline {
                if !ProcessState.isAlive(p.processIdentifier) { lastProbe = "the process exited"; break }
                do {
                    let r = try await server.request("GET", "/healthz", timeout: 5)
                    if r.status == 200 { return server }
                    lastProbe = "status \(r.status): \(r.body.prefix(300))"
                } catch {
                    lastProbe = "\(error)"
                }
                if listeningSince == nil, server.log.contains("listening on") { listeningSince = Date() }
                if let since = listeningSince, Date().timeIntervalSince(since) > 15 {
                    refusedAfterListening = true
                    break
                }
                try await Task.sleep(nanoseconds: 100_000_000)
            }
            let log = server.log
            let seen = Self.diagnose(pid: p.processIdentifier, port: port)
            server.stop()
            let waited = Int(Date().timeIntervalSince(started))
            lastError = ProcessFailure("waybill serve \(args.joined(separator: " ")) did not become healthy within \(waited) s (attempt \(attempt + 1); "
                                       + "last probe: \(lastProbe); \(seen)): \(log.suffix(1500))")
            if refusedAfterListening {
                print("note: WaybillServerProcess: \(lastError); starting it again on another port")
                continue
            }
            if !log.contains("in use") { break }
        }
        throw lastError
    }

    /// What the kernel shows of a server that does not answer: whether a socket listens on its port
    /// (`/proc/net/tcp`), and the process's state and signals (`/proc/PID/status`).
    static func diagnose(pid: Int32, port: Int) -> String {
        let hexPort = String(format: "%04X", port)
        let tcp = (try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)) ?? ""
        let onPort = tcp.split(separator: "\n").filter { $0.split(separator: " ").dropFirst().first?.hasSuffix(":" + hexPort) == true }
        let listening = onPort.contains { $0.split(separator: " ").dropFirst(3).first == "0A" }
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let fields = status.split(separator: "\n").filter { ["State:", "SigPnd:", "ShdPnd:", "SigBlk:", "SigCgt:", "Threads:"].contains(where: $0.hasPrefix) }
        return "port \(port) \(listening ? "has a listening socket" : "has no listening socket") (\(onPort.count) sockets on it); "
            + "process \(pid): \(fields.isEmpty ? "gone" : fields.map { $0.replacingOccurrences(of: "\t", with: " ") }.joined(separator: ", "))"
    }

    func get(_ path: String) async throws -> (status: Int, body: String) {
        try await request("GET", path)
    }

    func request(_ method: String, _ path: String, body: [UInt8]? = nil, contentType: String? = nil, timeout: TimeInterval = 300) async throws
        -> (status: Int, body: String)
    {
        var req = URLRequest(url: URL(string: base + path)!)
        req.httpMethod = method
        req.timeoutInterval = timeout
        if let body { req.httpBody = Data(body) }
        if let contentType { req.setValue(contentType, forHTTPHeaderField: "Content-Type") }
        let (data, response) = try await URLSession.shared.data(for: req)
        return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
    }

    /// SIGTERM, then SIGKILL after 10 s; removes the log file only when asked.
    func stop(removeLog: Bool = false) {
        ProcessState.stop(process.processIdentifier, grace: 10)
        if removeLog { try? FileManager.default.removeItem(at: logURL) }
    }
}

struct ProcessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Processes started from a test inherit the signal mask of the thread that started them, and the test
/// runner's threads block SIGTERM, SIGINT and SIGCHLD among others: a server started so ignores SIGTERM,
/// and a shell's `wait` never returns. `unmasked` runs a command through perl (part of every Debian)
/// with an empty signal mask.
enum Unmasked {
    static let perl = "/usr/bin/perl"

    /// The executable and arguments that run `command` with no signal blocked.
    static func command(_ command: [String]) -> (URL, [String]) {
        guard FileManager.default.isExecutableFile(atPath: perl) else {
            return (URL(fileURLWithPath: command[0].hasPrefix("/") ? command[0] : "/usr/bin/env"),
                    command[0].hasPrefix("/") ? Array(command.dropFirst()) : command)
        }
        return (URL(fileURLWithPath: perl), ["-e", "use POSIX; sigprocmask(SIG_SETMASK, POSIX::SigSet->new) or die; exec { $ARGV[0] } @ARGV or die \"$ARGV[0]: $!\""] + command)
    }
}

/// A minimal blocking HTTP/1.0 client for loopback: one request per connection, the whole answer read
/// until the server closes (HTTP/1.0 answers are not chunked). URLSession on Linux does not return from a
/// 401 with `WWW-Authenticate` (ClickHouse's answer to a wrong password), so the ClickHouse harness talks
/// HTTP itself.
enum LoopbackHTTP {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func post(port: Int, path: String, headers: [String: String], body: [UInt8], timeoutSeconds: Int = 60) throws -> (status: Int, body: [UInt8]) {
        #if canImport(Glibc)
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let s = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard s >= 0 else { throw Failure(description: "socket() failed") }
        defer { close(s) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(s, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw Failure(description: "cannot connect to 127.0.0.1:\(port): errno \(errno)") }
        var head = "POST \(path) HTTP/1.0\r\nHost: 127.0.0.1:\(port)\r\nContent-Length: \(body.count)\r\n"
        for (k, v) in headers { head += "\(k): \(v)\r\n" }
        let request = Array((head + "\r\n").utf8) + body
        var sent = 0
        while sent < request.count {
            let n = request[sent...].withUnsafeBytes { send(s, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw Failure(description: "send to 127.0.0.1:\(port) failed: errno \(errno)") }
            sent += n
        }
        var answer: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(s, $0.baseAddress, $0.count, 0) }
            if n == 0 { break }
            guard n > 0 else {
                if errno == EINTR { continue }
                throw Failure(description: "no answer from 127.0.0.1:\(port) (errno \(errno))")
            }
            answer += buffer[0..<n]
        }
        guard let end = answer.firstRange(of: Array("\r\n\r\n".utf8)) else { throw Failure(description: "bad answer from 127.0.0.1:\(port)") }
        let statusLine = String(decoding: answer[..<end.lowerBound], as: UTF8.self).split(separator: "\r\n").first ?? ""
        let parts = statusLine.split(separator: " ")
        guard parts.count >= 2, let status = Int(parts[1]) else { throw Failure(description: "bad status line from 127.0.0.1:\(port): \(statusLine)") }
        return (status, Array(answer[end.upperBound...]))
    }
}

/// Whether a process is alive, from /proc (a zombie counts as gone). Foundation's `Process.isRunning` and
/// `waitUntilExit` learn of an exit through a descriptor that a forked shell may keep open, so the tests
/// that start servers decide by pid instead.
enum ProcessState {
    static func isAlive(_ pid: Int32) -> Bool {
        guard pid > 0, kill(pid, 0) == 0 else { return false }
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return true }
        let state = stat[stat.index(after: close)...].trimmingCharacters(in: .whitespaces).first
        return state != "Z" && state != "X"
    }

    /// SIGTERM, then SIGKILL after `grace` seconds; returns once the process is gone (or after 5 s more).
    static func stop(_ pid: Int32, grace: Double) {
        guard isAlive(pid) else { return }
        kill(pid, SIGTERM)
        var deadline = Date().addingTimeInterval(grace)
        while isAlive(pid), Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        if isAlive(pid) { kill(pid, SIGKILL) }
        deadline = Date().addingTimeInterval(5)
        while isAlive(pid), Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
    }
}
