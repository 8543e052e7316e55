import AsyncHTTPClient
import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import WaybillKPI
import WaybillModel
@testable import WaybillSQLite
import WaybillServer
import WaybillStore
import WaybillTestSupport

#if canImport(Glibc)
import Glibc
#endif

/// A small filesystem mounted for one test: a size-limited tmpfs, or an ext4 image on a loop device.
/// Mounting needs root (and, for ext4, a loop device and mkfs.ext4); `mount` says why it cannot.
struct SmallFilesystem {
    enum Kind: String, CaseIterable, CustomStringConvertible, Sendable {
        case tmpfs, ext4
        var description: String { rawValue }
    }

    let base: String
    let dir: String
    let image: String?

    /// Mounts a fresh filesystem of `megabytes`, or answers why it cannot.
    static func mount(_ kind: Kind, megabytes: Int) -> Result<SmallFilesystem, SkipReason> {
        guard geteuid() == 0 else { return .failure(SkipReason("mounting \(kind) needs root (uid \(geteuid()))")) }
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-fs-\(UUID().uuidString)").path
        let dir = base + "/mnt"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        switch kind {
        case .tmpfs:
            if let why = run("mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", dir]) {
                return .failure(SkipReason("mount -t tmpfs failed: \(why)"))
            }
            return .success(SmallFilesystem(base: base, dir: dir, image: nil))
        case .ext4:
            let image = base + "/fs.img"
            if let why = run("truncate", ["-s", "\(megabytes)M", image]) { return .failure(SkipReason("truncate failed: \(why)")) }
            // -m 0: no blocks reserved for root, which the test (as root) would otherwise also fill.
            if let why = run("mkfs.ext4", ["-q", "-m", "0", image]) { return .failure(SkipReason("mkfs.ext4 failed: \(why)")) }
            if let why = run("mount", ["-o", "loop", image, dir]) { return .failure(SkipReason("mount -o loop failed: \(why)")) }
            return .success(SmallFilesystem(base: base, dir: dir, image: image))
        }
    }

    /// Unmounts (lazily if a file is still open after a few tries) and removes the image and mount point.
    func unmount() {
        var failed = Self.run("umount", [dir])
        for _ in 0..<10 where failed != nil {
            usleep(100_000)
            failed = Self.run("umount", [dir])
        }
        if failed != nil { Self.run("umount", ["-l", dir]) }
        try? FileManager.default.removeItem(atPath: base)
    }

    /// Writes a file until the filesystem has no room left for it; returns its path.
    func fill() throws -> String {
        let path = dir + "/filler"
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw CrashTestError("cannot create \(path): errno \(errno)") }
        defer { close(fd) }
        for size in [1 << 20, 64 << 10, 4 << 10, 512, 1] {
            let chunk = [UInt8](repeating: 0xA5, count: size)
            while chunk.withUnsafeBytes({ write(fd, $0.baseAddress, size) }) == size {}
        }
        fsync(fd)
        let full = [UInt8](repeating: 0, count: 1).withUnsafeBytes { write(fd, $0.baseAddress, 1) } < 0 && errno == ENOSPC
        guard full else { throw CrashTestError("\(dir) is not full after writing \(path)") }
        return path
    }

    /// Runs a tool (found on PATH); nil when it exited 0, else what it printed.
    @discardableResult
    static func run(_ tool: String, _ args: [String]) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [tool] + args
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice
        p.standardError = err
        do { try p.run() } catch { return "\(error)" }
        let text = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        return p.terminationStatus == 0 ? nil : "exit \(p.terminationStatus): \(text.trimmingCharacters(in: .whitespacesAndNewlines))"
    }
}

struct SkipReason: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Storage faults as HTTP clients see them: `503` with `Retry-After` on the collector routes, nothing
/// stored, `/healthz` naming the fault, `/metrics` counting it, and recovery without a restart.
@Suite(.serialized) struct StorageFaultServerTests {
    static func post(_ url: String, _ body: String, contentType: String) async throws -> (status: Int, retryAfter: String?, body: JSONValue) {
        var req = HTTPClientRequest(url: url)
        req.method = .POST
        req.headers.add(name: "Content-Type", value: contentType)
        req.body = .bytes(ByteBuffer(string: body))
        let r = try await HTTPClient.shared.execute(req, timeout: .seconds(30))
        let b = try await r.body.collect(upTo: 1 << 20)
        return (Int(r.status.code), r.headers.first(name: "Retry-After"), (try? JSONParser.parse(Array(b.readableBytesView))) ?? .null)
    }

    static func get(_ url: String) async throws -> (status: Int, retryAfter: String?, text: String) {
        let r = try await HTTPClient.shared.execute(HTTPClientRequest(url: url), timeout: .seconds(10))
        let b = try await r.body.collect(upTo: 16 << 20)
        return (Int(r.status.code), r.headers.first(name: "Retry-After"), String(buffer: b))
    }

    /// `n` order events of `order`, each with some data, as NDJSON.
    static func events(_ order: String, _ n: Int) -> String {
        (0..<n).map { i in
            eventJSON("\(order)-\(i)", i == 0 ? "order.accepted" : "order.note", "2026-11-23T14:\(String(format: "%02d", i / 60)):\(String(format: "%02d", i % 60))Z",
                      order, data: ["note": .string(String(repeating: "x", count: 200) + "\(i)"), "channel": "web"])
        }.joined(separator: "\n")
    }

    /// `n` spans of one trace that joins `order`, as OTLP JSON.
    static func spans(_ order: String, trace: String, _ n: Int) -> String {
        let spans = (0..<n).map { i -> JSONValue in
            [
                "traceId": .string(trace), "spanId": .string(String(format: "%016x", i + 1)), "name": .string("step-\(i)"),
                "startTimeUnixNano": .string(String(1_795_442_400_000_000_000 + Int64(i) * 1_000_000)),
                "endTimeUnixNano": .string(String(1_795_442_400_000_000_000 + Int64(i) * 1_000_000 + 500_000)),
                "attributes": [["key": "order.id", "value": ["stringValue": .string(order)]],
                               ["key": "note", "value": ["stringValue": .string(String(repeating: "y", count: 100) + "\(i)")]]],
            ]
        }
        let doc: JSONValue = ["resourceSpans": [["resource": ["attributes": [["key": "service.name", "value": ["stringValue": "erp"]]]],
                                                 "scopeSpans": [["spans": .array(spans)]]]]]
        return doc.jsonString
    }

    /// A full disk under the real server: both collector routes answer 503 with Retry-After and store
    /// nothing, `/healthz` names the fault, `/metrics` counts it; once space is freed the writer's probe
    /// clears the fault by itself, the refused writes go through whole, and every acknowledged event and
    /// span is still there after a kill -9.
    @Test(arguments: SmallFilesystem.Kind.allCases)
    func aFullDiskIsRetryableVisibleAndPasses(_ kind: SmallFilesystem.Kind) async throws {
        guard FileManager.default.fileExists(atPath: ServerProcess.binary.path) else {
            Issue.record("waybill binary not found at \(ServerProcess.binary.path): run `swift build` first")
            return
        }
        let fs: SmallFilesystem
        switch SmallFilesystem.mount(kind, megabytes: 16) {
        case .success(let f): fs = f
        case .failure(let why):
            print("SKIPPED: disk-full test on \(kind): \(why)")
            return
        }
        defer { fs.unmount() }
        let db = fs.dir + "/waybill.db"
        let server = try await ServerProcess.start(db: db)
        var killed = false
        defer { if !killed { server.kill9() } }
        let nd = "application/x-ndjson", otlp = "application/json"
        let traceA = "5b8efff798038103d269b633813fc60c", traceB = "6c9f0008a9149214e37ac744d24f071d"

        // Acknowledged before the disk fills.
        var r = try await Self.post(server.base + "/v1/events", Self.events("ORD-A", 50), contentType: nd)
        #expect(r.status == 200 && r.body["accepted"] == 50)
        r = try await Self.post(server.base + "/v1/traces", Self.spans("ORD-A", trace: traceA, 20), contentType: otlp)
        #expect(r.status == 200)

        let filler = try fs.fill()
        // Spans first (the smaller write), then a larger batch of events: a failed write leaves the
        // space it took in the log, and the next write may only fail if it needs more.
        r = try await Self.post(server.base + "/v1/traces", Self.spans("ORD-B", trace: traceB, 100), contentType: otlp)
        #expect(r.status == 503, "spans on a full disk: \(r.body)")
        #expect(r.retryAfter.flatMap(Int.init).map { $0 >= 1 } == true, "Retry-After: \(r.retryAfter ?? "missing")")
        #expect(r.body["error"]?.stringValue?.contains("disk_full") == true, "\(r.body)")
        let refused = Self.events("ORD-B", 400)
        r = try await Self.post(server.base + "/v1/events", refused, contentType: nd)
        #expect(r.status == 503, "events on a full disk: \(r.body)")
        #expect(r.retryAfter.flatMap(Int.init).map { $0 >= 1 } == true, "Retry-After: \(r.retryAfter ?? "missing")")
        #expect(r.body["error"]?.stringValue?.contains("disk_full") == true, "\(r.body)")
        #expect(r.body["error"]?.stringValue?.contains("internal error") == false)

        let health = try await Self.get(server.base + "/healthz")
        #expect(health.status == 503)
        #expect(health.retryAfter != nil)
        let h = (try? JSONParser.parse(Array(health.text.utf8))) ?? .null
        #expect(h["status"] == "unavailable", "\(health.text)")
        #expect(h["storage"]?["fault"] == "disk_full", "\(health.text)")
        #expect(h["storage"]?["message"]?.stringValue?.isEmpty == false)
        #expect(h["storage"]?["since"]?.stringValue.flatMap(RFC3339.parse) != nil, "\(health.text)")
        let metrics = try await Self.get(server.base + "/metrics").text
        let faults = metrics.split(separator: "\n").first { $0.hasPrefix("waybill_storage_faults_total{kind=\"disk_full\"} ") }
        #expect(faults.flatMap { Int($0.split(separator: " ").last!) }.map { $0 >= 2 } == true, "\(faults ?? "no disk_full line")")
        #expect(metrics.contains("\nwaybill_storage_healthy 0\n"))
        #expect(metrics.contains("waybill_http_responses_total{code=\"503\"}"))
        // Reads go on; nothing of the refused writes is there.
        #expect(try await Self.get(server.base + "/api/v1/traces/ORD-A").status == 200)
        #expect(try await Self.get(server.base + "/api/v1/traces/ORD-B").status == 404)
        #expect(server.process.isRunning)

        // Space freed: the writer's probe clears the fault with no client write, then the writes go through.
        try FileManager.default.removeItem(atPath: filler)
        var lastHealth = ""
        let ok = try await eventually(15) { () async throws -> Bool? in
            let h = try await Self.get(server.base + "/healthz")
            lastHealth = h.text
            return h.status == 200 ? true : nil
        }
        #expect(ok == true, "/healthz did not recover by itself after the space was freed: \(lastHealth)")
        r = try await Self.post(server.base + "/v1/events", refused, contentType: nd)
        #expect(r.status == 200)
        #expect(r.body["accepted"] == 400 && r.body["duplicates"] == 0, "the refused batch was partly stored: \(r.body)")
        r = try await Self.post(server.base + "/v1/traces", Self.spans("ORD-B", trace: traceB, 100), contentType: otlp)
        #expect(r.status == 200)
        let after = try await Self.get(server.base + "/healthz")
        #expect(after.status == 200 && after.text == #"{"status":"ok"}"#, "\(after.text)")
        #expect(try await Self.get(server.base + "/metrics").text.contains("\nwaybill_storage_healthy 1\n"))

        // Every acknowledged event and span is there, also after a kill -9.
        server.kill9()
        killed = true
        do {  // a scope of its own, so that the store's files are closed before the unmount
            let store = try SQLiteStore(path: db)
            defer { store.close() }
            let a = try store.trace(key: "ORD-A"), b = try store.trace(key: "ORD-B")
            #expect(a?.events.count == 50)
            #expect(a?.spans.count == 20)
            #expect(b?.events.count == 400)
            #expect(b?.spans.count == 100)
            #expect(try store.facts(orderID: "ORD-B")?.eventCount == 400)
        }
    }

    /// Another process holding the write lock past the busy timeout (no privileges needed): the same
    /// answers through the router, with `Retry-After: 1`, and they end when the lock is released.
    @Test func aLockHeldByAnotherProcessIsA503ThatPasses() async throws {
        var options = SQLiteStore.Options()
        options.busyTimeoutMillis = 100
        let path = temporaryDatabase()
        let store = try SQLiteStore(path: path, options: options, rollup: KPIFactsRollup())
        defer { store.close() }
        let app = buildApplication(store: store, config: ServerConfig())
        let nd: HTTPFields = [.contentType: "application/x-ndjson"], otlp: HTTPFields = [.contentType: "application/json"]
        try await app.test(.router) { client in
            let other = try Connection(path: path)
            try other.exec("BEGIN IMMEDIATE")
            try await client.execute(uri: "/v1/events", method: .post, headers: nd, body: ByteBuffer(string: Self.events("ORD-L", 10))) { r in
                #expect(r.status == .serviceUnavailable)
                #expect(r.headers[.retryAfter] == "1")
                #expect(r.json["error"]?.stringValue?.hasPrefix("storage fault (busy): database is locked") == true, "\(r.json)")
            }
            try await client.execute(uri: "/v1/traces", method: .post, headers: otlp,
                                     body: ByteBuffer(string: Self.spans("ORD-L", trace: "5b8efff798038103d269b633813fc60c", 3))) { r in
                #expect(r.status == .serviceUnavailable)
                #expect(r.headers[.retryAfter] == "1")
            }
            try await client.execute(uri: "/healthz", method: .get) { r in
                #expect(r.status == .serviceUnavailable)
                #expect(r.json["status"] == "unavailable")
                #expect(r.json["storage"]?["fault"] == "busy")
                #expect(r.json["storage"]?["faults"] == 2)
            }
            try await client.execute(uri: "/metrics", method: .get) { r in
                let text = String(buffer: r.body)
                #expect(text.contains("\nwaybill_storage_faults_total{kind=\"busy\"} 2\n"))
                #expect(text.contains("\nwaybill_storage_faults_total{kind=\"disk_full\"} 0\n"))
                #expect(text.contains("\nwaybill_storage_healthy 0\n"))
                #expect(text.contains("waybill_http_responses_total{code=\"503\"} 3"))
            }
            try other.exec("ROLLBACK")
            try await client.execute(uri: "/v1/events", method: .post, headers: nd, body: ByteBuffer(string: Self.events("ORD-L", 10))) { r in
                #expect(r.status == .ok)
                #expect(r.json["accepted"] == 10)
            }
            try await client.execute(uri: "/healthz", method: .get) { r in
                #expect(r.status == .ok)
                #expect(String(buffer: r.body) == #"{"status":"ok"}"#)
            }
        }
    }
}
