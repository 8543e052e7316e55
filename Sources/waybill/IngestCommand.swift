import ArgumentParser
import CZlib
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import WaybillClickHouse
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

    @Option(name: .long, help: "Events per write batch (default 10000; 25000 into a ClickHouse store, whose per-call cost is larger).")
    var batch: Int?

    @Option(name: .long, help: "Print a line to stderr every N events: events so far, seconds since the start, events/s since the previous line (for benchmarks of long loads).")
    var progressEvery: Int?

    @Flag(name: .long, help: "Skip KPI rollups during the load; they are rebuilt in one pass when the store is next opened (faster for very large loads).")
    var noRollups = false

    @Option(name: .long, help: "Sort NDJSON input by event time before loading it: auto (a regular file whose first 4 MiB is out of time order; never a pipe), on or off. Sorting spills runs of 64 MiB to temporary files beside the --db store (else in TMPDIR).")
    var sort: SortMode = .auto

    enum SortMode: String, ExpressibleByArgument, CaseIterable {
        case auto, on, off
    }

    func validate() throws {
        if files.isEmpty { throw ValidationError("give at least one FILE (or - for stdin)") }
        if let b = batch, b < 1 { throw ValidationError("--batch: must be at least 1") }
        if let n = progressEvery, n < 1 { throw ValidationError("--progress-every: must be at least 1") }
    }

    /// Where sort runs go: beside the embedded store, which has room for the events anyway; else TMPDIR.
    var sortDirectory: String {
        if store.url == nil, case .embedded(let path) = store.location {
            let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
            if FileManager.default.isWritableFile(atPath: dir) { return dir }
        }
        return ProcessInfo.processInfo.environment["TMPDIR"] ?? NSTemporaryDirectory()
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
        let progress = Progress(enabled: !json && isatty(2) != 0 && progressEvery == nil, every: progressEvery)
        var total = AppendResult()
        var rejections: [Rejection] = []
        var sortedLines = 0
        let started = Date()
        for file in files {
            let input = try InputReader(file: file)
            let chunks = try Chunks(input: input, file: file, batch: batch ?? (store.url == nil && store.location.isClickHouse ? 25_000 : 10_000),
                                    sort: sort, sortDirectory: sortDirectory)
            if chunks.sortedLines > 0 && !json {
                printErr("\(file): \(chunks.sortedLines) lines sorted by event time (the input was out of time order; --sort off keeps its order)")
            }
            let sofar = total.accepted + total.duplicates
            let result = try await sink.write(chunks: chunks) { done in
                progress.update(done: sofar + done, since: started)
            }
            total = total + result.written
            sortedLines += chunks.sortedLines
            for r in result.rejected {
                rejections.append(Rejection(file: file, position: chunks.isArray ? "index \(r.index)" : "line \(r.index + 1)", error: r.error))
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
                "sorted_lines": .number(Double(sortedLines)),
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
}

/// Reads an input a block at a time: a file or stdin, plain or gzip (detected by its magic bytes), so
/// memory does not grow with the input's size.
final class InputReader {
    private let handle: FileHandle
    private let name: String
    private var gzip: GzipStream?
    private var pending: [UInt8] = []
    private var atEnd = false
    static let blockSize = 4 << 20

    init(file: String) throws {
        name = file
        if file == "-" {
            handle = FileHandle.standardInput
        } else {
            guard FileManager.default.fileExists(atPath: file) else { throw CLIError("\(file): no such file") }
            guard let h = FileHandle(forReadingAtPath: file) else { throw CLIError("\(file): cannot read") }
            handle = h
        }
        var st = stat()
        isRegularFile = fstat(handle.fileDescriptor, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
        pending = try readRaw()
        if Gzip.isGzip(pending) { gzip = try GzipStream(file: file) }
    }

    /// Whether the input is a regular file (also stdin redirected from one), not a pipe or a terminal:
    /// only a regular file is sorted under `--sort auto`, since sorting reads the input to its end
    /// before storing anything, and a pipe may be a stream that never ends.
    let isRegularFile: Bool

    deinit { if name != "-" { try? handle.close() } }

    private func readRaw() throws -> [UInt8] {
        guard !atEnd else { return [] }
        let d: Data?
        do { d = try handle.read(upToCount: Self.blockSize) } catch { throw CLIError("\(name): cannot read: \(error.localizedDescription)") }
        guard let d, !d.isEmpty else { atEnd = true; return [] }
        return [UInt8](d)
    }

    /// The next block of (inflated) bytes; empty at the end.
    func next() throws -> [UInt8] {
        var raw = pending
        pending = []
        if raw.isEmpty { raw = try readRaw() }
        guard let gzip else { return raw }
        while true {
            let out = try gzip.inflate(raw, final: raw.isEmpty)
            if !out.isEmpty || raw.isEmpty { return out }
            raw = try readRaw()
        }
    }
}

/// Streaming gzip inflation (concatenated members allowed, RFC 1952).
final class GzipStream {
    private var stream = z_stream()
    private let file: String
    private var ended = false

    init(file: String) throws {
        self.file = file
        guard inflateInit2_(&stream, 32 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw CLIError("\(file): cannot initialise zlib")
        }
    }

    deinit { inflateEnd(&stream) }

    /// Inflates `input` whole; `final` says no more input follows.
    func inflate(_ input: [UInt8], final: Bool) throws -> [UInt8] {
        if input.isEmpty {
            if final && !ended { throw CLIError("\(file): not valid gzip: truncated gzip data") }
            return []
        }
        var out: [UInt8] = []
        let chunk = 256 * 1024
        var buffer = [UInt8](repeating: 0, count: chunk)
        var failure: String?
        input.withUnsafeBufferPointer { inPtr in
            stream.next_in = UnsafeMutablePointer(mutating: inPtr.baseAddress)
            stream.avail_in = UInt32(inPtr.count)
            while stream.avail_in > 0 {
                if ended {
                    // Another member follows.
                    inflateReset(&stream)
                    ended = false
                }
                var status: Int32 = Z_OK
                buffer.withUnsafeMutableBufferPointer { outPtr in
                    stream.next_out = outPtr.baseAddress
                    stream.avail_out = UInt32(chunk)
                    status = CZlib.inflate(&stream, Z_NO_FLUSH)
                }
                out.append(contentsOf: buffer[0..<(chunk - Int(stream.avail_out))])
                if status == Z_STREAM_END { ended = true; continue }
                if status != Z_OK && status != Z_BUF_ERROR {
                    failure = stream.msg.map { String(cString: $0) } ?? "inflate error \(status)"
                    return
                }
            }
        }
        if let failure { throw CLIError("\(file): not valid gzip: \(failure)") }
        return out
    }
}

/// An input cut into batches of events, read a block at a time. NDJSON is streamed: only the batches
/// in flight are in memory. A JSON array (or one pretty-printed event) is read and parsed whole.
final class Chunks: @unchecked Sendable {
    let file: String
    let batch: Int
    private let input: InputReader
    private(set) var isArray = false
    /// Bytes read but not yet cut into a batch (a partial last line).
    private var carry: [UInt8] = []
    private var line = 0
    private var whole: [Part]?
    private var done = false
    /// The input's lines in time order, when it is sorted (`--sort`).
    private var sorted: SortedLines?
    /// Lines sorted by event time before loading (0: the input is read in its own order).
    var sortedLines: Int { sorted?.count ?? 0 }

    /// A batch: already decoded (JSON arrays are parsed whole), or a run of NDJSON lines still to decode.
    enum Part: Sendable {
        case decoded(DecodedEvents)
        case lines([UInt8], firstLine: Int)
        /// Lines of a sorted input with their numbers in it.
        case sortedLines([UInt8], numbers: [Int])
    }

    init(input: InputReader, file: String, batch: Int, sort: IngestCommand.SortMode, sortDirectory: String) throws {
        self.input = input
        self.file = file
        self.batch = batch
        carry = try input.next()
        // Read up to the end of the first line, which decides the framing.
        while carry.firstIndex(of: 0x0A) == nil {
            let more = try input.next()
            if more.isEmpty { break }
            carry += more
        }
        isArray = carry.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) == UInt8(ascii: "[")
        let firstLineEnd = carry.firstIndex(of: 0x0A) ?? carry.count
        if isArray {
            let all = try readAll()
            let decoded: DecodedEvents
            do { decoded = try EventDecoder.decode(all, framing: .json) } catch { throw CLIError("\(file): \(error.description)") }
            var out: [Part] = []
            var i = 0
            repeat {
                var part = DecodedEvents()
                part.events = Array(decoded.events[i..<min(i + batch, decoded.events.count)])
                if i == 0 { part.rejected = decoded.rejected }
                out.append(.decoded(part))
                i += batch
            } while i < decoded.events.count
            whole = out
        } else if firstLineEnd < carry.count, (try? JSONParser.parse(Array(carry[0..<firstLineEnd]))) == nil {
            // One pretty-printed event spanning several lines is not NDJSON; take it whole.
            carry = try readAll()
            if let d = try? EventDecoder.decode(carry, framing: .json) {
                whole = [.decoded(d)]
                carry = []
            }
        }
        if !isArray, whole == nil, sort == .on || (sort == .auto && input.isRegularFile && Self.outOfTimeOrder(carry)) {
            do {
                try sortAll(directory: sortDirectory)
            } catch let e as SortedLinesError {
                throw CLIError("\(file): sorting by event time: \(e) (sort runs go beside the --db store, else in TMPDIR; --sort off loads the file in its own order)")
            }
        }
    }

    /// Whether the complete lines of `head` (the input's first block; at most 20,000 lines) arrive out
    /// of time order: more than 5% of them more than an hour before the latest time already read. Live
    /// traffic, stragglers minutes late included, stays far below; a random order is near 100%.
    static func outOfTimeOrder(_ head: [UInt8]) -> Bool {
        head.withUnsafeBufferPointer { b in
            var start = 0, lines = 0, late = 0
            var latest: Int64?
            while lines < 20_000, start < b.count, let nl = b[start...].firstIndex(of: 0x0A) {
                if let t = EventLineTime.micros(UnsafeBufferPointer(rebasing: b[start..<nl])) {
                    lines += 1
                    if let l = latest, t < l - 3_600_000_000 { late += 1 }
                    latest = max(latest ?? t, t)
                }
                start = nl + 1
            }
            return lines >= 2 && late * 20 > lines
        }
    }

    /// Reads the whole input into `sorted` (runs spilled to `directory`), each line with its number.
    private func sortAll(directory: String) throws {
        // WAYBILL_SORT_RUN_BYTES: the bytes of lines sorted in memory per run (default 64 MiB; tests set it small).
        let runBytes = ProcessInfo.processInfo.environment["WAYBILL_SORT_RUN_BYTES"].flatMap { Int($0) }.map { max(1, $0) } ?? 64 << 20
        let s = SortedLines(directory: directory, runBytes: runBytes, key: { EventLineTime.micros($0) })
        var number = line
        func take(_ b: UnsafeBufferPointer<UInt8>) throws {
            if !EventDecoder.isBlank(b) { try s.add(b, number: number) }
            number += 1
        }
        while true {
            let used = try carry.withUnsafeBufferPointer { b -> Int in
                var start = 0
                while start < b.count, let p = memchr(b.baseAddress! + start, 0x0A, b.count - start) {
                    let nl = b.baseAddress!.distance(to: p.assumingMemoryBound(to: UInt8.self))
                    try take(UnsafeBufferPointer(rebasing: b[start..<nl]))
                    start = nl + 1
                }
                return start
            }
            carry.removeFirst(used)
            let more = try input.next()
            if more.isEmpty {
                if !carry.isEmpty { try carry.withUnsafeBufferPointer { try take($0) } }
                carry = []
                break
            }
            carry += more
        }
        try s.finish()
        sorted = s
    }

    private func readAll() throws -> [UInt8] {
        var all = carry
        carry = []
        while true {
            let more = try input.next()
            if more.isEmpty { return all }
            all += more
        }
    }

    /// The next batch, or nil at the end of the input.
    func next() throws -> Part? {
        if whole != nil {
            if whole!.isEmpty { return nil }
            return whole!.removeFirst()
        }
        if let sorted {
            guard let (bytes, numbers) = try sorted.next(maxLines: batch) else { return nil }
            return .sortedLines(bytes, numbers: numbers)
        }
        if done { return nil }
        // Take up to `batch` complete lines from `carry`, reading more as needed.
        var lines = 0
        var end = 0
        while true {
            while lines < batch, let nl = carry[end...].firstIndex(of: 0x0A) {
                end = nl + 1
                lines += 1
            }
            if lines >= batch { break }
            let more = try input.next()
            if more.isEmpty {
                // The last line may lack its newline.
                if end < carry.count { end = carry.count; lines += 1 }
                done = true
                break
            }
            carry += more
        }
        if end == 0 { return nil }
        let part = Part.lines(Array(carry[0..<end]), firstLine: line)
        carry.removeFirst(end)
        line += lines
        return part
    }

    static func decode(_ part: Part) -> DecodedEvents {
        switch part {
        case .decoded(let d): return d
        case .lines(let bytes, let firstLine):
            return bytes.withUnsafeBufferPointer { b in EventDecoder.decodeLinesLeniently(b, firstLine: firstLine).events }
        case .sortedLines(let bytes, let numbers):
            var d = bytes.withUnsafeBufferPointer { b in EventDecoder.decodeLinesLeniently(b, firstLine: 0).events }
            for i in d.rejected.indices { d.rejected[i].index = numbers[d.rejected[i].index] }
            return d
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
    /// Batches in flight: two for the embedded store; three for ClickHouse, whose appends run in two
    /// stages that overlap (docs/clickhouse.md), so that the next batch's decoding does not wait for one.
    let inFlight: Int

    init(location: StoreLocation, rollups: Bool) async throws {
        var o = SQLiteStore.Options()
        o.maxQueuedEvents = Int.max / 2
        // A bulk load is not a long-running server: trade some memory for fewer page reads, bounded so
        // that the peak RSS does not grow with the input or the store (mapped pages count towards it).
        o.writerCacheMiB = 64
        o.mmapBytes = 64 << 20
        // Nobody reads the store while it loads: an order's row and its rollup rows are written once per
        // epoch of up to 4,000,000 events or 200,000 distinct orders (its facts merged in memory till then,
        // a few hundred bytes an order) rather than in every batch that touches the order. A load killed
        // before an epoch ended is refolded from the stored events when the store is next opened.
        o.deferredFactsEvents = 4_000_000
        o.deferredFactsOrders = 200_000
        // WAYBILL_INGEST_DEFERRAL=0 writes rows and rollups in every batch, as a server does: with a small
        // `--batch`, bench/writer_cost.sh measures the server's write path without HTTP.
        if ProcessInfo.processInfo.environment["WAYBILL_INGEST_DEFERRAL"] == "0" {
            o.deferredFactsEvents = nil
        }
        // The same for ClickHouse: the load bounds what it queues itself (`inFlight` batches).
        var c = ClickHouseStore.Options()
        c.maxQueuedEvents = Int.max / 2
        store = try await location.open(sqlite: o, clickHouse: c, rollup: rollups)
        inFlight = location.isClickHouse ? 3 : 2
    }

    func write(chunks: Chunks, progress: @escaping (Int) -> Void) async throws -> SinkResult {
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
            // Reading the next batch waits for one in flight to finish, so memory stays bounded.
            while let part = try chunks.next() {
                if running >= inFlight, let r = try await group.next() {
                    collect(r)
                    running -= 1
                }
                group.addTask { [store] in
                    let d = Chunks.decode(part)
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
        while let part = try chunks.next() {
            let d = Chunks.decode(part)
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
    let every: Int?
    private var last = Date.distantPast
    private var lastLine: (done: Int, at: Date)?
    init(enabled: Bool, every: Int? = nil) {
        self.enabled = enabled
        self.every = every
    }

    func update(done: Int, since: Date) {
        if let every, done / every > (lastLine?.done ?? 0) / every {
            let now = Date()
            let previous = lastLine ?? (0, since)
            let rate = Double(done - previous.done) / max(now.timeIntervalSince(previous.at), 0.001)
            FileHandle.standardError.write(Data(String(format: "progress %d events %.2f s %.0f events/s\n", done, now.timeIntervalSince(since), rate).utf8))
            lastLine = (done, now)
        }
        guard enabled, Date().timeIntervalSince(last) > 0.2 else { return }
        last = Date()
        let rate = Int(Double(done) / max(Date().timeIntervalSince(since), 0.001))
        FileHandle.standardError.write(Data("\r\(done) events (\(rate)/s)   ".utf8))
    }

    func finish() {
        if enabled { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
    }
}
