import Foundation
import Testing
import WaybillQuery
import WaybillStore
@testable import WaybillClickHouse
#if canImport(Glibc)
import Glibc
#endif

/// Threads for the synchronous store reads of async test code (the conformance checks, the exactness
/// test): `TestThreads.run { ... }` runs the body's async code on these threads, so a read waiting on
/// ClickHouse blocks one of them and never one of Swift's cooperative threads (one per core), which every
/// other suite of the test process needs (in the full suite such reads once starved the manual-clock tests).
enum TestThreads {
    static let shared = ReadExecutor(threads: 6, name: "clickhouse-test-reads")

    static func run<T: Sendable>(_ body: () async throws -> T) async rethrows -> T {
        try await withTaskExecutorPreference(shared, operation: body)
    }
}

/// A stand-in for ClickHouse's HTTP interface on loopback, on threads of its own: it answers the
/// statements a store sends at open, and holds every `access_changes` read until `release()` (or, so
/// that a starved test fails instead of hanging, until `safetySeconds` pass).
final class HeldClickHouse: @unchecked Sendable {
    let port: Int
    private let listener: Int32
    private let condition = NSCondition()
    private var held = 0
    private var released = false
    private(set) var releasedByTest = false
    private var stopped = false
    let safetySeconds: Double

    init(safetySeconds: Double = 300) throws {
        self.safetySeconds = safetySeconds
        #if canImport(Glibc)
        let s = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let s = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard s >= 0 else { throw CocoaError(.fileNoSuchFile) }
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(s, $0, len) } }
        guard bound == 0, listen(s, 64) == 0 else { close(s); throw CocoaError(.fileWriteUnknown) }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(s, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        listener = s
        Thread.detachNewThread { [self] in acceptLoop() }
        Thread.detachNewThread { [self] in
            Thread.sleep(forTimeInterval: safetySeconds)
            condition.lock()
            released = true
            condition.broadcast()
            condition.unlock()
        }
    }

    /// How many reads are waiting.
    var heldCount: Int { condition.withLock { held } }
    var isReleased: Bool { condition.withLock { released } }

    func release() {
        condition.lock()
        if !released { releasedByTest = true }
        released = true
        condition.broadcast()
        condition.unlock()
    }

    func stop() {
        condition.withLock { stopped = true }
        release()
        shutdown(listener, Int32(SHUT_RDWR))
        close(listener)
    }

    private func acceptLoop() {
        while true {
            let c = accept(listener, nil, nil)
            if c < 0 {
                if condition.withLock({ stopped }) { return }
                continue
            }
            Thread.detachNewThread { [self] in serve(c) }
        }
    }

    private func serve(_ c: Int32) {
        defer { close(c) }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            // One request: headers, then Content-Length bytes of body.
            var headerEnd: Int?
            while headerEnd == nil {
                if let r = Self.find(buffer, Array("\r\n\r\n".utf8)) { headerEnd = r; break }
                let n = recv(c, &chunk, chunk.count, 0)
                if n <= 0 { return }
                buffer += chunk[0..<n]
            }
            let head = String(decoding: buffer[0..<headerEnd!], as: UTF8.self).lowercased()
            var length = 0
            for line in head.split(separator: "\r\n") where line.hasPrefix("content-length:") {
                length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
            }
            let start = headerEnd! + 4
            while buffer.count < start + length {
                let n = recv(c, &chunk, chunk.count, 0)
                if n <= 0 { return }
                buffer += chunk[0..<n]
            }
            let body = String(decoding: buffer[start..<start + length], as: UTF8.self)
            let requestLine = head.prefix { $0 != "\r" }
            buffer.removeFirst(start + length)
            let answer = respond(statement: body + " " + (requestLine.removingPercentEncoding ?? String(requestLine)))
            let response = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: \(answer.utf8.count)\r\n\r\n" + answer
            let bytes = Array(response.utf8)
            var sent = 0
            while sent < bytes.count {
                let n = bytes[sent...].withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n <= 0 { return }
                sent += n
            }
        }
    }

    private func respond(statement s: String) -> String {
        if s.contains("version()") { return "{\"v\":\"18.16.1\"}\n" }
        if s.contains("system.tables") { return ClickHouseSchema.tables.map { "{\"name\":\"\($0.name)\"}\n" }.joined() }
        if s.contains("access_changes") {
            condition.lock()
            held += 1
            while !released { condition.wait() }
            held -= 1
            condition.unlock()
            return "{\"n\":7}\n"
        }
        return ""
    }

    private static func find(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] && Array(hay[i..<i + needle.count]) == needle { return i }
        return nil
    }
}

/// Reads waiting on a slow ClickHouse must not hold Swift's cooperative threads: many at once, while
/// other work of the process still runs. With the synchronous read on the async path (as the server's
/// access check once did) the reads take every cooperative thread, nothing else runs until the fake
/// gives up (`safetySeconds`), and `releasedByTest` is false.
@Suite struct ClickHouseBlockingTests {
    @Test func accessChecksWaitWithoutHoldingThreads() async throws {
        let fake = try HeldClickHouse()
        defer { fake.stop() }
        let store = try await ClickHouseStore.open(url: "clickhouse://u@127.0.0.1:\(fake.port)/\(ClickHouseCluster.freshDatabase("held"))", environment: [:], rollup: nil)
        defer { store.close() }
        // More reads in flight than the machine has cooperative threads, through the async path the
        // server's access check takes on every request.
        let n = min(24, ProcessInfo.processInfo.activeProcessorCount * 2 + 4)
        let reads = (0..<n).map { _ in Task { try await store.currentAccessVersion() } }
        // And synchronous readers, run as async code calls them here: on dedicated threads.
        let syncReads = (0..<3).map { _ in Task { try await TestThreads.run { try store.accessVersion() } } }
        while fake.heldCount < n + 3 && !fake.isReleased { try await Task.sleep(nanoseconds: 5_000_000) }
        // Every read is waiting on ClickHouse; other tasks still get a cooperative thread.
        let others = await withTaskGroup(of: Int.self) { group in
            for i in 0..<(4 * n) { group.addTask { i } }
            return await group.reduce(0, +)
        }
        #expect(others == (4 * n) * (4 * n - 1) / 2)
        fake.release()
        for r in reads { #expect(try await r.value == 7) }
        for r in syncReads { #expect(try await r.value == 7) }
        #expect(fake.releasedByTest, "the test ran on while the reads waited, and released them itself")
    }
}
