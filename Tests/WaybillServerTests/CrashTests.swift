import AsyncHTTPClient
import Foundation
import NIOCore
import Testing
import WaybillModel
import WaybillSQLite
import WaybillStore
import WaybillTestSupport

/// Runs the real `waybill` binary built beside the tests.
struct ServerProcess {
    let process: Process
    let port: Int
    let db: String

    /// The `waybill` executable built with the tests (`WaybillBinary`).
    static var binary: URL { WaybillBinary.url }
    static var productsFolder: URL { WaybillBinary.productsFolder }

    /// Starts `waybill serve` on `port` (a random one when nil) and waits until it answers. With a random
    /// port, a server that exits before it is healthy (the port was taken by another test's process) is
    /// started again on another port, up to three times; its stderr is kept for the error.
    static func start(db: String, port: Int? = nil, extra: [String] = []) async throws -> ServerProcess {
        var attempt = 0
        while true {
            attempt += 1
            let chosen = port ?? Int.random(in: 20_000...60_000)
            let log = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-serve-\(UUID().uuidString).log")
            FileManager.default.createFile(atPath: log.path, contents: nil)
            let err = try FileHandle(forWritingTo: log)
            defer { try? err.close(); try? FileManager.default.removeItem(at: log) }
            let p = Process()
            p.executableURL = binary
            p.arguments = ["serve", "--port", String(chosen), "--db", db] + extra
            p.standardOutput = FileHandle.nullDevice
            p.standardError = err
            try p.run()
            let s = ServerProcess(process: p, port: chosen, db: db)
            do {
                try await s.waitUntilHealthy()
                return s
            } catch {
                let exited = !p.isRunning
                if !exited { s.stop() }
                let tail = String(decoding: (try? Data(contentsOf: log)) ?? Data(), as: UTF8.self).suffix(1500)
                if exited, port == nil, attempt < 3 { continue }
                throw CrashTestError("\(error)\n\(tail)")
            }
        }
    }

    var base: String { "http://127.0.0.1:\(port)" }

    /// Up to two minutes: at the start of a full run dozens of suites share the two cores, and a server's
    /// start (process launch, store open) took more than the 15 s this used to allow. A server that
    /// exits fails at once.
    func waitUntilHealthy() async throws {
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            guard process.isRunning else { throw CrashTestError("server on port \(port) exited with status \(process.terminationStatus) before it became healthy") }
            if let r = try? await HTTPClient.shared.execute(HTTPClientRequest(url: base + "/healthz"), timeout: .seconds(1)), r.status == .ok { return }
            try await Task.sleep(nanoseconds: 50_000_000)
        }
        throw CrashTestError("server on port \(port) did not become healthy within 120 s")
    }

    func kill9() {
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}

final class AckCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    private var failures: [String] = []
    func add() { lock.withLock { n += 1 } }
    var count: Int { lock.withLock { n } }
    /// Why a post failed before the kill (kept for the failure message).
    func note(_ s: String) { lock.withLock { if failures.count < 100 { failures.append(s) } } }
    var notes: [String] { lock.withLock { failures } }
}

final class KillFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false
    func set() { lock.withLock { value = true } }
    var isSet: Bool { lock.withLock { value } }
}

struct CrashTestError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

@Suite(.serialized) struct CrashTests {
    /// Posts as fast as it can from several clients, kills the server with SIGKILL mid-ingest, and checks
    /// that every event the server acknowledged is in the store afterwards.
    @Test func acknowledgedEventsSurviveKill9() async throws {
        guard FileManager.default.fileExists(atPath: ServerProcess.binary.path) else {
            Issue.record("waybill binary not found at \(ServerProcess.binary.path): run `swift build` first")
            return
        }
        let db = temporaryDatabase()
        let server = try await ServerProcess.start(db: db)
        let acks = AckCounter()
        let killed = KillFlag()
        let acknowledged = try await withThrowingTaskGroup(of: [String].self) { group in
            for client in 0..<4 {
                group.addTask {
                    var acked: [String] = []
                    var batch = 0
                    while !killed.isSet {
                        let subject = "ORD-C\(client)-\(batch)"
                        var body = ""
                        for i in 0..<50 {
                            body += ce("\(subject)-\(i)", i == 0 ? "order.accepted" : "order.note", "2026-11-23T14:00:\(String(format: "%02d", i))Z", subject) + "\n"
                        }
                        var req = HTTPClientRequest(url: server.base + "/v1/events")
                        req.method = .POST
                        req.headers.add(name: "Content-Type", value: "application/x-ndjson")
                        req.body = .bytes(ByteBuffer(string: body))
                        // Until the kill, a failed post (a 503 while the store is busy, a timeout on a loaded
                        // machine) is noted and the same batch posted again; after it, the client stops.
                        let r: HTTPClientResponse
                        do {
                            r = try await HTTPClient.shared.execute(req, timeout: .seconds(30))
                        } catch {
                            if !killed.isSet { acks.note("client \(client): \(error)") }
                            continue
                        }
                        let b = try? await r.body.collect(upTo: 1 << 20)
                        let doc = b.flatMap { try? JSONParser.parse(Array($0.readableBytesView)) }
                        // A retry of a batch that was stored though its answer timed out comes back as duplicates: stored too.
                        guard r.status == .ok, (doc?["accepted"]?.doubleValue ?? 0) + (doc?["duplicates"]?.doubleValue ?? 0) == 50 else {
                            if !killed.isSet {
                                acks.note("client \(client): \(r.status.code) \(b.map { String(buffer: $0).prefix(200) } ?? "")")
                                try? await Task.sleep(nanoseconds: 100_000_000)
                            }
                            continue
                        }
                        acked.append(subject)
                        acks.add()
                        batch += 1
                    }
                    return acked
                }
            }
            // Kill mid-ingest once a few batches are acknowledged (however loaded the machine is), or after 90 s.
            _ = try await eventually(90) { acks.count >= 8 ? true : nil }
            killed.set()
            server.kill9()
            var all: [String] = []
            for try await a in group { all += a }
            return all
        }
        // A batch answered 200 after the flag was set is still acknowledged: it counts like the others.
        try #require(!acknowledged.isEmpty, "no batch was acknowledged before the kill; failed posts: \(acks.notes.prefix(8))")
        let store = try SQLiteStore(path: db)
        defer { store.close() }
        var missing = 0
        for subject in acknowledged {
            let t = try store.trace(key: subject)
            if t?.events.count != 50 { missing += 1 }
        }
        #expect(missing == 0, "\(missing) of \(acknowledged.count) acknowledged batches incomplete after kill -9")
        #expect(try store.facts(orderID: acknowledged[0])?.eventCount == 50)
    }

    @Test func restartedServerKnowsEverythingAndTreatsResendsAsDuplicates() async throws {
        guard FileManager.default.fileExists(atPath: ServerProcess.binary.path) else {
            Issue.record("waybill binary not found at \(ServerProcess.binary.path)")
            return
        }
        let db = temporaryDatabase()
        let body = ce("r1", "order.accepted", "2026-11-23T14:00:00Z", "ORD-R") + "\n" + ce("r2", "order.validated", "2026-11-23T14:01:00Z", "ORD-R")
        func post(_ s: ServerProcess) async throws -> JSONValue {
            var req = HTTPClientRequest(url: s.base + "/v1/events")
            req.method = .POST
            req.headers.add(name: "Content-Type", value: "application/x-ndjson")
            req.body = .bytes(ByteBuffer(string: body))
            let r = try await HTTPClient.shared.execute(req, timeout: .seconds(10))
            return try JSONParser.parse(Array(try await r.body.collect(upTo: 1 << 20).readableBytesView))
        }
        let first = try await ServerProcess.start(db: db)
        #expect(try await post(first)["accepted"] == 2)
        first.kill9()
        let second = try await ServerProcess.start(db: db)
        defer { second.stop() }
        #expect(try await post(second)["duplicates"] == 2)
        let r = try await HTTPClient.shared.execute(HTTPClientRequest(url: second.base + "/api/v1/traces/ORD-R"), timeout: .seconds(5))
        let doc = try JSONParser.parse(Array(try await r.body.collect(upTo: 1 << 20).readableBytesView))
        #expect(doc["state"] == "validated")
    }
}
