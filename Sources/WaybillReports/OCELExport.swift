import Foundation
import WaybillModel
import WaybillQuery
import WaybillStore

public enum OCELExportError: Error, Sendable, CustomStringConvertible {
    /// The temporary files of the object pass could not be written or read.
    case temporary(String)
    /// The store cannot scan events by time (an engine without `EventScanner`).
    case unsupported(String)

    public var description: String {
        switch self {
        case .temporary(let m): return "OCEL export: \(m)"
        case .unsupported(let m): return m
        }
    }
}

/// `waybill export ocel` and `GET /api/v1/export/ocel`: the window asked for.
public struct OCELRequest: Sendable, Equatable {
    public static let parameterNames = ["from", "to"]
    public var from: String?
    public var to: String?

    public init(from: String?, to: String?) {
        self.from = from
        self.to = to
    }

    /// Unknown parameters are refused; empty values count as absent.
    public init(parameters: [String: String]) throws(QueryFailure) {
        for k in parameters.keys.sorted() where !Self.parameterNames.contains(k) {
            throw .badRequest(FieldError(field: k, rule: "unknown parameter; known: from, to"))
        }
        self.init(from: parameters["from"].flatMap { $0.isEmpty ? nil : $0 }, to: parameters["to"].flatMap { $0.isEmpty ? nil : $0 })
    }

    public var parameters: [String: String] {
        var p: [String: String] = [:]
        if let from { p["from"] = from }
        if let to { p["to"] = to }
        return p
    }

    /// `[from, to)`: `from` is required, `to` defaults to now; both RFC 3339 or relative (`-7d`, `now`).
    public func window(now: Micros) throws(QueryFailure) -> Range<Micros> {
        guard let from else { throw .badRequest(FieldError(field: "from", rule: "is required (RFC 3339 or relative like -7d)")) }
        guard let start = TimeText.parse(from, now: now) else {
            throw .badRequest(FieldError(field: "from", rule: "must be RFC 3339 or relative like -7d"))
        }
        var end = now
        if let to {
            guard let t = TimeText.parse(to, now: now) else { throw .badRequest(FieldError(field: "to", rule: "must be RFC 3339 or relative like -1h")) }
            end = t
        }
        guard start < end else { throw .badRequest(FieldError(field: "to", rule: "must be after from")) }
        return start..<end
    }
}

/// What an export wrote, counted as written (the numbers pm4py's reader should find).
public struct OCELExportSummary: Codable, Sendable, Equatable {
    public var from: String
    public var to: String
    public var events: Int
    public var objects: Int
    /// Event-to-object relationships.
    public var e2o: Int
    /// Object-to-object relationships.
    public var o2o: Int
    public var eventsByType: [String: Int]
    public var objectsByType: [String: Int]
    public var bytes: Int
}

/// The OCEL 2.0 JSON export of the events of a window (docs/export.md has the mapping).
///
/// One pass over the store: events are read page by page in time order (`EventScanner`) and written
/// to the output as they come; what they say about objects (existence and type, timed attributes,
/// object-to-object links) is appended to an on-disk spool hashed by object id. After the events, the
/// spool is read back one partition at a time to write each object once with its attributes and
/// relationships; then the event and object types with the attributes seen. Memory holds a page of
/// events, the output buffer, the spool's write buffers and one partition, whatever the window's size.
/// JSON object members are unordered (RFC 8259), so the type declarations come last in the file,
/// when they are known, rather than before the events.
public struct OCELExporter: Sendable {
    /// Events a store read returns at most: the event-block engine rereads up to an hour of blocks per page, so pages are large.
    public var pageSize = 10_000
    /// Output is handed to the writer in chunks of about this size.
    public var chunkBytes = 256 << 10
    /// Where the spool's temporary directory is made (default `$TMPDIR`, else /tmp).
    public var temporaryDirectory: String?
    /// Spool partitions and the size above which a partition is split before it is grouped in memory.
    public var partitions = 256
    public var partitionLimit = 4 << 20
    /// 1: everything on the calling thread. 2 or more: the store is read and the events written on a
    /// second thread while this one spools their objects, and that many threads group the objects.
    public var threads = 2

    public init(temporaryDirectory: String? = nil) {
        self.temporaryDirectory = temporaryDirectory
    }

    /// One spool partition's objects, grouped and written (ids in byte order).
    static func objects(of p: Int, _ spool: OCELObjectSpool, chunkBytes: Int) throws -> OCELPartitionOutput {
        let chunks = OCELChunkList()
        var part = OCELPartitionOutput()
        var buffer = OCELOutputBuffer(chunkBytes: chunkBytes) { chunks.items.append($0) }
        try spool.drainPartition(p) { groups in
            for id in groups.keys.sorted() {
                let (type, relations) = OCELObjectWriter.write(id: id, records: groups[id]!, first: part.objects == 0, to: &buffer)
                part.objects += 1
                part.o2o += relations
                part.objectsByType[type, default: 0] += 1
                try buffer.flushIfFull()
            }
        }
        try buffer.flush()
        part.chunks = chunks.items
        return part
    }

    /// Writes the export of `window` through `write` (called with consecutive chunks of the document).
    public func export(from scanner: any EventScanner, window: Range<Micros>, write: ([UInt8]) throws -> Void) throws -> OCELExportSummary {
        try withoutActuallyEscaping(write) { write in try run(scanner, window, write) }
    }

    private func run(_ scanner: any EventScanner, _ window: Range<Micros>, _ write: @escaping ([UInt8]) throws -> Void) throws -> OCELExportSummary {
        let spool = try OCELObjectSpool(parent: temporaryDirectory, partitions: partitions, partitionLimit: partitionLimit)
        defer { spool.remove() }
        var out = OCELOutputBuffer(chunkBytes: chunkBytes, write: write)
        var mapper = OCELEventMapper(spool: spool)
        out.raw("{\"events\":[")
        let pageSize = self.pageSize, chunkBytes = self.chunkBytes
        var writer = OCELEventWriter()
        if threads <= 1 {
            var first = true
            try scanner.forEachEventPage(in: window, pageSize: pageSize) { events in
                for i in events.indices {
                    if !first { out.byte(0x2C) }
                    first = false
                    writer.writeEvent(events[i], to: &out)
                    try mapper.spoolEvent(events[i])
                    try out.flushIfFull()
                }
            }
        } else {
            // Two threads: this one spools what the events say about objects and writes the output; a
            // second one reads the store and writes each page's events as JSON, at most `queue.capacity`
            // pages ahead. Both see the events in time order, so the document is the same as on one thread.
            let queue = OCELPageQueue(capacity: 2)
            let producerDone = DispatchSemaphore(value: 0)
            let producer = Thread {
                Thread.current.name = "waybill-ocel-events"  // from inside (see OCELStreaming)
                defer { producerDone.signal() }
                var writer = OCELEventWriter()
                do {
                    var first = true
                    try scanner.forEachEventPage(in: window, pageSize: pageSize) { events in
                        let chunks = OCELChunkList()
                        var page = OCELOutputBuffer(chunkBytes: chunkBytes) { chunks.items.append($0) }
                        for i in events.indices {
                            if !first { page.byte(0x2C) }
                            first = false
                            writer.writeEvent(events[i], to: &page)
                            try page.flushIfFull()
                        }
                        try page.flush()
                        try queue.put(OCELEventPage(events: events, chunks: chunks.items))
                    }
                    queue.finish(writer, nil)
                } catch {
                    queue.finish(writer, error)
                }
            }
            producer.stackSize = 4 << 20
            producer.start()
            defer {
                queue.cancel()
                producerDone.wait()
            }
            while let page = try queue.next() {
                try out.flush()
                for chunk in page.chunks { try out.pass(chunk) }
                for i in page.events.indices { try mapper.spoolEvent(page.events[i]) }
            }
            writer = queue.writer ?? OCELEventWriter()
        }
        out.raw("],\"objects\":[")
        var objects = 0, o2o = 0
        var objectsByType: [String: Int] = [:]
        try spool.finishWriting()
        func append(_ part: OCELPartitionOutput) throws {
            guard part.objects > 0 else { return }
            if objects > 0 { out.byte(0x2C) }
            try out.flush()
            for chunk in part.chunks { try out.pass(chunk) }
            objects += part.objects
            o2o += part.o2o
            for (type, n) in part.objectsByType { objectsByType[type, default: 0] += n }
        }
        if threads <= 1 {
            for p in 0..<spool.partitions { try append(Self.objects(of: p, spool, chunkBytes: chunkBytes)) }
        } else {
            // The objects: `threads` threads group and write partitions (a few ahead at most), this one
            // hands their output on in partition order.
            let parts = OCELPartitionQueue(partitions: spool.partitions, ahead: 2 * threads)
            var workersDone: [DispatchSemaphore] = []
            for w in 0..<threads {
                let done = DispatchSemaphore(value: 0)
                workersDone.append(done)
                let worker = Thread {
                    Thread.current.name = "waybill-ocel-objects-\(w)"  // from inside (see OCELStreaming)
                    defer { done.signal() }
                    while let p = parts.claim() {
                        parts.done(p, Result { try Self.objects(of: p, spool, chunkBytes: chunkBytes) })
                    }
                }
                worker.stackSize = 4 << 20
                worker.start()
            }
            defer {
                parts.cancel()
                for d in workersDone { d.wait() }
            }
            for p in 0..<spool.partitions { try append(parts.result(p).get()) }
        }
        out.raw("],\"eventTypes\":[")
        for (i, type) in writer.eventAttributes.keys.sorted().enumerated() {
            if i > 0 { out.byte(0x2C) }
            out.raw("{\"name\":")
            out.string(type)
            out.raw(",\"attributes\":[")
            let attrs = writer.eventAttributes[type]!
            for (j, name) in attrs.keys.sorted().enumerated() {
                if j > 0 { out.byte(0x2C) }
                out.raw("{\"name\":")
                out.string(name)
                out.raw(",\"type\":")
                out.string(attrs[name]!.rawValue)
                out.byte(0x7D)
            }
            out.raw("]}")
        }
        out.raw("],\"objectTypes\":[")
        for (i, type) in objectsByType.keys.sorted().enumerated() {
            if i > 0 { out.byte(0x2C) }
            out.raw("{\"name\":")
            out.string(type)
            out.raw(",\"attributes\":[")
            for (j, a) in OCELObjectWriter.declaredAttributes(of: type).enumerated() {
                if j > 0 { out.byte(0x2C) }
                out.raw("{\"name\":")
                out.string(a.name)
                out.raw(",\"type\":")
                out.string(a.type.rawValue)
                out.byte(0x7D)
            }
            out.raw("]}")
        }
        out.raw("]}\n")
        try out.flush()
        return OCELExportSummary(from: RFC3339.format(window.lowerBound), to: RFC3339.format(window.upperBound), events: writer.events,
                                 objects: objects, e2o: writer.e2o, o2o: o2o, eventsByType: writer.eventsByType,
                                 objectsByType: objectsByType, bytes: out.total)
    }
}

/// A page of events and their JSON, from the thread that reads the store to the one that writes.
struct OCELEventPage: Sendable {
    var events: [CloudEvent]
    var chunks: [[UInt8]]
}

final class OCELChunkList {
    var items: [[UInt8]] = []
}

/// The pages between the two threads of an export, at most `capacity` waiting (memory stays bounded);
/// `cancel` makes a waiting or later `put` throw, so the reading thread stops when the writer failed.
final class OCELPageQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private var pages: [OCELEventPage] = []
    private var finished = false
    private var cancelled = false
    private var failure: (any Error)?
    private var result: OCELEventWriter?
    let capacity: Int

    init(capacity: Int) { self.capacity = max(1, capacity) }

    func put(_ page: OCELEventPage) throws {
        condition.lock()
        defer { condition.unlock() }
        while pages.count >= capacity && !cancelled { condition.wait() }
        if cancelled { throw CancellationError() }
        pages.append(page)
        condition.broadcast()
    }

    /// The reading thread is done: `writer` holds what it learned, `error` why it stopped early.
    func finish(_ writer: OCELEventWriter, _ error: (any Error)?) {
        condition.lock()
        finished = true
        result = writer
        failure = error
        condition.broadcast()
        condition.unlock()
    }

    /// The next page, nil after the last; throws the reading thread's error after its last page.
    func next() throws -> OCELEventPage? {
        condition.lock()
        defer { condition.unlock() }
        while pages.isEmpty && !finished { condition.wait() }
        if !pages.isEmpty {
            condition.broadcast()
            return pages.removeFirst()
        }
        if let failure { throw failure }
        return nil
    }

    var writer: OCELEventWriter? {
        condition.lock()
        defer { condition.unlock() }
        return result
    }

    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }
}

/// What one spool partition's objects came to: their JSON (comma-separated, none before the first) and counts.
struct OCELPartitionOutput: Sendable {
    var chunks: [[UInt8]] = []
    var objects = 0
    var o2o = 0
    var objectsByType: [String: Int] = [:]
}

/// Hands spool partitions to the object threads in order, at most `ahead` beyond the one being written
/// (memory holds that many partitions' output), and their results back in order.
final class OCELPartitionQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private let partitions: Int
    private let ahead: Int
    private var next = 0
    private var written = 0
    private var cancelled = false
    private var results: [Int: Result<OCELPartitionOutput, any Error>] = [:]

    init(partitions: Int, ahead: Int) {
        self.partitions = partitions
        self.ahead = max(1, ahead)
    }

    /// The next partition to work on, nil when none is left (or the export stopped).
    func claim() -> Int? {
        condition.lock()
        defer { condition.unlock() }
        while !cancelled && next < partitions && next >= written + ahead { condition.wait() }
        guard !cancelled, next < partitions else { return nil }
        next += 1
        return next - 1
    }

    func done(_ p: Int, _ r: Result<OCELPartitionOutput, any Error>) {
        condition.lock()
        results[p] = r
        condition.broadcast()
        condition.unlock()
    }

    /// Partition `p`'s result once it is there (partitions are asked for in order).
    func result(_ p: Int) -> Result<OCELPartitionOutput, any Error> {
        condition.lock()
        defer { condition.unlock() }
        while results[p] == nil { condition.wait() }
        written = p + 1
        condition.broadcast()
        return results.removeValue(forKey: p)!
    }

    func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }
}

/// OCEL attribute types (the specification's five).
enum OCELAttributeType: String {
    case string, time, integer, float, boolean

    /// The declared type of an attribute whose values had both types: integers widen to float, anything else to string.
    func widened(with other: OCELAttributeType) -> OCELAttributeType {
        if self == other { return self }
        if (self == .integer && other == .float) || (self == .float && other == .integer) { return .float }
        return .string
    }
}

/// The output document being written, handed on in chunks.
struct OCELOutputBuffer {
    var w = JSONWriter(capacity: 300 << 10)
    let chunkBytes: Int
    let write: ([UInt8]) throws -> Void
    var total = 0

    init(chunkBytes: Int, write: @escaping ([UInt8]) throws -> Void) {
        self.chunkBytes = chunkBytes
        self.write = write
    }

    var timeText = OCELTimeText()

    /// An instant as `RFC3339.format` writes it, without making a string.
    mutating func time(_ t: Micros) { timeText.write(t, into: &w.bytes) }
    mutating func raw(_ s: StaticString) { s.withUTF8Buffer { w.bytes.append(contentsOf: $0) } }
    mutating func byte(_ b: UInt8) { w.bytes.append(b) }
    mutating func string(_ s: String) { w.string(s) }

    /// Hands `chunk` on as it is, after what is buffered.
    mutating func pass(_ chunk: [UInt8]) throws {
        try flush()
        total += chunk.count
        try write(chunk)
    }

    mutating func flushIfFull() throws {
        if w.bytes.count >= chunkBytes { try flush() }
    }

    mutating func flush() throws {
        guard !w.bytes.isEmpty else { return }
        total += w.bytes.count
        try write(w.bytes)
        w.bytes.removeAll(keepingCapacity: true)
    }
}

/// RFC 3339 text of instants, byte for byte what `RFC3339.format` makes (UTC, `Z`, milliseconds when the
/// time has them, microseconds when it has those), written straight into the output: the date part is
/// made once per day (an export writes the events of a day together) and the rest digit by digit.
struct OCELTimeText {
    private var day = Int64.min
    private var datePrefix: [UInt8] = []

    mutating func write(_ t: Micros, into bytes: inout [UInt8]) {
        let secs = t >= 0 ? t / 1_000_000 : (t - 999_999) / 1_000_000
        let us = Int(t - secs * 1_000_000)
        let days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400
        if days != day {
            // "YYYY-MM-DDT" as the general formatter writes it (any year).
            let text = RFC3339.format(days * 86_400_000_000)
            guard let tee = text.utf8.firstIndex(of: UInt8(ascii: "T")) else {
                bytes.append(contentsOf: RFC3339.format(t).utf8)
                return
            }
            datePrefix = Array(text.utf8[...tee])
            day = days
        }
        bytes.append(contentsOf: datePrefix)
        let rem = Int(secs - days * 86400)
        func two(_ v: Int) {
            bytes.append(0x30 + UInt8(v / 10))
            bytes.append(0x30 + UInt8(v % 10))
        }
        two(rem / 3600)
        bytes.append(UInt8(ascii: ":"))
        two(rem / 60 % 60)
        bytes.append(UInt8(ascii: ":"))
        two(rem % 60)
        if us != 0 {
            bytes.append(UInt8(ascii: "."))
            var v = us % 1000 == 0 ? us / 1000 : us
            var digits = us % 1000 == 0 ? 3 : 6
            var tmp: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &tmp) { b in
                while digits > 0 {
                    digits -= 1
                    b[digits] = 0x30 + UInt8(v % 10)
                    v /= 10
                }
            }
            let n = us % 1000 == 0 ? 3 : 6
            withUnsafeBytes(of: &tmp) { b in bytes.append(contentsOf: b.prefix(n)) }
        }
        bytes.append(UInt8(ascii: "Z"))
    }
}
