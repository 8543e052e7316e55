import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import WaybillCollectors
import WaybillKPI
import WaybillModel
import WaybillSQLite
import WaybillStore

struct IngestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest",
        abstract: "Load CloudEvents from files (NDJSON or a JSON array; .gz allowed; - for stdin) into the store.",
        discussion: "Valid events are stored even when others are rejected; rejected ones are listed with their line (NDJSON) or array index, and the exit status is then 1.")

    @Argument(help: "Files to read; - reads stdin.")
    var files: [String]

    @OptionGroup var store: StoreOptions

    @Flag(name: .long, help: "Print the summary as one JSON document.")
    var json = false

    @Option(name: .long, help: "Events per write batch.")
    var batch = 10000

    @Flag(name: .long, help: "Skip KPI rollups during the load; they are rebuilt in one pass when the store is next opened (faster for very large loads).")
    var noRollups = false

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one FILE (or - for stdin)") }
        if batch < 1 { throw ValidationError("--batch: must be at least 1") }
    }

    struct Rejection {
        let file: String
        let position: String
        let error: String
    }

    func run() async throws {
        if noRollups && (store.url != nil || store.storeURL != nil) { throw CLIError("--no-rollups applies to the embedded store (--db) only") }
        let sink: any IngestSink
        if let url = store.url { sink = try RemoteSink(url: url, token: store.token) } else { sink = try await LocalSink(location: store.location, rollups: !noRollups) }
        let progress = Progress(enabled: !json && isatty(2) != 0)
        var total = AppendResult()
        var rejections: [Rejection] = []
        let started = Date()
        for file in files {
            let bytes = try readInput(file)
            let isArray = bytes.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) == UInt8(ascii: "[")
            let sofar = total.accepted + total.duplicates
            let result = try await sink.write(chunks: Chunks(bytes: bytes, file: file, isArray: isArray, batch: batch)) { done in
                progress.update(done: sofar + done, since: started)
            }
            total = total + result.written
            for r in result.rejected {
                rejections.append(Rejection(file: file, position: isArray ? "index \(r.index)" : "line \(r.index + 1)", error: r.error))
            }
        }
        sink.close()
        progress.finish()
        let seconds = Date().timeIntervalSince(started)
        if json {
            let doc: JSONValue = .object([
                "accepted": .number(Double(total.accepted)), "duplicates": .number(Double(total.duplicates)),
                "rejected": .array(rejections.map { .object(["file": .string($0.file), "position": .string($0.position), "error": .string($0.error)]) }),
                "seconds": .number((seconds * 1000).rounded() / 1000),
            ])
            writeStdout(doc.jsonBytes + [0x0A])
        } else {
            let rate = seconds > 0 ? Int(Double(total.accepted + total.duplicates) / seconds) : 0
            print("accepted \(total.accepted), duplicates \(total.duplicates), rejected \(rejections.count) in \(String(format: "%.2f", seconds))s (\(rate) events/s)")
            for r in rejections.prefix(50) { printErr("rejected \(r.file) \(r.position): \(r.error)") }
            if rejections.count > 50 { printErr("... and \(rejections.count - 50) more rejected (use --json for all)") }
        }
        if !rejections.isEmpty { throw ExitCode(1) }
    }

    func readInput(_ file: String) throws -> [UInt8] {
        var data: Data
        if file == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard FileManager.default.fileExists(atPath: file) else { throw CLIError("\(file): no such file") }
            do { data = try Data(contentsOf: URL(fileURLWithPath: file), options: .alwaysMapped) } catch {
                throw CLIError("\(file): cannot read: \(error.localizedDescription)")
            }
        }
        let bytes = [UInt8](data)
        if Gzip.isGzip(bytes) {
            do { return try Gzip.inflate(bytes, limit: Int.max / 2) } catch { throw CLIError("\(file): not valid gzip: \(error)") }
        }
        return bytes
    }
}

/// An input cut into batches of events, decoded one batch at a time so that decoding the next batch
/// overlaps with committing the previous one.
struct Chunks: Sendable {
    let bytes: [UInt8]
    let file: String
    let isArray: Bool
    let batch: Int

    /// A batch: already decoded (JSON arrays are parsed whole), or a run of NDJSON lines still to decode.
    enum Part: Sendable {
        case decoded(DecodedEvents)
        case lines(Range<Int>, firstLine: Int)
    }

    func parts() throws -> [Part] {
        if isArray {
            let all: DecodedEvents
            do { all = try EventDecoder.decode(bytes, framing: .json) } catch { throw CLIError("\(file): \(error.description)") }
            var out: [Part] = []
            var i = 0
            repeat {
                var part = DecodedEvents()
                part.events = Array(all.events[i..<min(i + batch, all.events.count)])
                if i == 0 { part.rejected = all.rejected }
                out.append(.decoded(part))
                i += batch
            } while i < all.events.count
            return out
        }
        // One pretty-printed event spanning several lines is not NDJSON; take it whole.
        let firstLineEnd = bytes.firstIndex(of: 0x0A) ?? bytes.count
        if firstLineEnd < bytes.count, (try? JSONParser.parse(Array(bytes[0..<firstLineEnd]))) == nil,
           let whole = try? EventDecoder.decode(bytes, framing: .json)
        {
            return [.decoded(whole)]
        }
        var out: [Part] = []
        bytes.withUnsafeBufferPointer { b in
            guard let base = b.baseAddress else { return }
            var start = 0
            var line = 0
            while start < b.count {
                var end = start
                var lines = 0
                while end < b.count && lines < batch {
                    guard let nl = memchr(base + end, 0x0A, b.count - end) else { end = b.count; break }
                    end = base.distance(to: nl.assumingMemoryBound(to: UInt8.self)) + 1
                    lines += 1
                }
                out.append(.lines(start..<end, firstLine: line))
                line += lines
                start = end
            }
        }
        return out
    }

    func decode(_ part: Part) -> DecodedEvents {
        switch part {
        case .decoded(let d): return d
        case .lines(let range, let firstLine):
            return bytes.withUnsafeBufferPointer { b in
                EventDecoder.decodeLinesLeniently(UnsafeBufferPointer(rebasing: b[range]), firstLine: firstLine).events
            }
        }
    }
}

struct SinkResult {
    var written = AppendResult()
    var rejected: [RejectedEvent] = []
}

protocol IngestSink {
    func write(chunks: Chunks, progress: @escaping (Int) -> Void) async throws -> SinkResult
    func close()
}

/// Writes into the embedded store. Batches are decoded on the concurrency pool while the writer
/// thread commits earlier ones; a few in flight keep both cores busy without buffering the whole file.
struct LocalSink: IngestSink {
    let store: any WaybillStore
    static let inFlight = 3

    init(location: StoreLocation, rollups: Bool) async throws {
        var o = SQLiteStore.Options()
        o.maxQueuedEvents = Int.max / 2
        // A bulk load is not a long-running server: trade memory for fewer page reads.
        o.writerCacheMiB = 256
        o.mmapBytes = 1 << 30
        store = try await location.open(sqlite: o, rollup: rollups)
    }

    func write(chunks: Chunks, progress: @escaping (Int) -> Void) async throws -> SinkResult {
        let parts = try chunks.parts()
        var result = SinkResult()
        var done = 0
        try await withThrowingTaskGroup(of: (AppendResult, [RejectedEvent]).self) { group in
            var running = 0
            func collect(_ r: (AppendResult, [RejectedEvent])) {
                result.written = result.written + r.0
                result.rejected += r.1
                done += r.0.accepted + r.0.duplicates
                progress(done)
            }
            for part in parts {
                if running >= Self.inFlight, let r = try await group.next() {
                    collect(r)
                    running -= 1
                }
                group.addTask { [store] in
                    let d = chunks.decode(part)
                    return (try await store.append(d.events), d.rejected)
                }
                running += 1
            }
            for try await r in group { collect(r) }
        }
        result.rejected.sort { $0.index < $1.index }
        return result
    }

    func close() { store.close() }
}

/// Sends NDJSON batches (gzip) to a server, honouring Retry-After on 429/503.
struct RemoteSink: IngestSink {
    let client: RemoteClient

    init(url: String, token: String?) throws { client = try RemoteClient(url, token: token) }

    func write(chunks: Chunks, progress: @escaping (Int) -> Void) async throws -> SinkResult {
        var result = SinkResult()
        var sent = 0
        for part in try chunks.parts() {
            let d = chunks.decode(part)
            result.rejected += d.rejected
            result.written = result.written + (try await send(d.events))
            sent += d.events.count
            progress(sent)
        }
        return result
    }

    func send(_ chunk: [CloudEvent]) async throws -> AppendResult {
        var body: [UInt8] = []
        for e in chunk { body += e.raw; body.append(0x0A) }
        return try await send(ndjson: body)
    }

    /// POSTs NDJSON (gzip), waiting out 429/503 as `Retry-After` asks.
    func send(ndjson body: [UInt8]) async throws -> AppendResult {
        var total = AppendResult()
        do {
            var req = URLRequest(url: client.url("/v1/events"))
            req.httpMethod = "POST"
            req.setValue("application/x-ndjson", forHTTPHeaderField: "Content-Type")
            req.setValue("gzip", forHTTPHeaderField: "Content-Encoding")
            req.httpBody = Data(Gzip.deflate(body))
            var attempt = 0
            while true {
                let (data, status, headers) = try await client.send(req)
                if status == 429 || status == 503, attempt < 20 {
                    attempt += 1
                    let wait = Double(headers["retry-after"] ?? "1") ?? 1
                    try await Task.sleep(nanoseconds: UInt64(wait * 1e9))
                    continue
                }
                guard status == 200, let doc = try? JSONParser.parse(Array(data)) else {
                    throw CLIError("server answered \(status): \(String(decoding: data.prefix(300), as: UTF8.self))")
                }
                total.accepted += Int(doc["accepted"]?.doubleValue ?? 0)
                total.duplicates += Int(doc["duplicates"]?.doubleValue ?? 0)
                break
            }
        }
        return total
    }

    func close() {}
}

/// A single self-rewriting progress line on a terminal's stderr.
final class Progress: @unchecked Sendable {
    let enabled: Bool
    private var last = Date.distantPast
    init(enabled: Bool) { self.enabled = enabled }

    func update(done: Int, since: Date) {
        guard enabled, Date().timeIntervalSince(last) > 0.2 else { return }
        last = Date()
        let rate = Int(Double(done) / max(Date().timeIntervalSince(since), 0.001))
        FileHandle.standardError.write(Data("\r\(done) events (\(rate)/s)   ".utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
