import Foundation
import WaybillModel

/// A sink that can take an event's JSON text directly. Producers that render events themselves (the
/// simulator) then skip building `CloudEvent` values, which is most of the cost of a bulk run.
public protocol EventTextSink: TelemetrySink {
    /// One event's JSON text, without a newline; the bytes are only valid during the call.
    func emitEventText(_ text: UnsafeBufferPointer<UInt8>)
    /// Whether spans are wanted at all; when false, producers need not build them.
    var wantsSpans: Bool { get }
}

public struct SinkError: Error, Hashable, Sendable, CustomStringConvertible {
    public var path: String
    public var reason: String
    public var description: String { "\(path): \(reason)" }
}

/// Writes each event's raw JSON and a newline to a file (NDJSON), with large buffered writes.
/// Spans go to a second NDJSON file when one is given, and are ignored otherwise. Not thread-safe.
public final class NDJSONFileSink: EventTextSink {
    private var file: UnsafeMutablePointer<FILE>?
    private var spanFile: UnsafeMutablePointer<FILE>?
    @exclusivity(unchecked) private var buffer: [UInt8] = []
    private var spanBuffer: [UInt8] = []
    private let flushAt = 4 << 20
    public let path: String
    @exclusivity(unchecked) public private(set) var eventsWritten = 0
    public private(set) var spansWritten = 0

    /// Creates (or truncates) `path`, and `spansPath` when given.
    public init(path: String, spansPath: String? = nil) throws {
        self.path = path
        guard let f = fopen(path, "w") else { throw SinkError(path: path, reason: String(cString: strerror(errno))) }
        file = f
        if let sp = spansPath {
            guard let g = fopen(sp, "w") else {
                fclose(f)
                throw SinkError(path: sp, reason: String(cString: strerror(errno)))
            }
            spanFile = g
        }
        buffer.reserveCapacity(flushAt + (64 << 10))
    }

    deinit { try? close() }

    public var wantsSpans: Bool { spanFile != nil }

    public func emitEventText(_ text: UnsafeBufferPointer<UInt8>) {
        buffer.append(contentsOf: text)
        buffer.append(0x0A)
        eventsWritten += 1
        if buffer.count >= flushAt { handOff() }
    }

    /// Passes the full event buffer to the background writer, so rendering and the kernel copy overlap.
    /// At most two buffers are in flight.
    private func handOff() {
        guard let f = file else { buffer.removeAll(keepingCapacity: true); return }
        var full: [UInt8] = []
        full.reserveCapacity(flushAt + (64 << 10))
        swap(&full, &buffer)
        let chunk = full
        let box = FileBox(f)
        let state = writerState
        let path = self.path
        state.inFlight.wait()
        writerQueue.async {
            let n = chunk.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, box.file) }
            state.record(written: n, error: n == chunk.count ? nil : SinkError(path: path, reason: "short write: " + String(cString: strerror(errno))))
            state.inFlight.signal()
        }
    }

    private let writerQueue = DispatchQueue(label: "waybill.ndjson-writer")
    private let writerState = WriterState()

    private final class WriterState: @unchecked Sendable {
        let inFlight = DispatchSemaphore(value: 2)
        private let lock = NSLock()
        private var written = 0
        private var error: SinkError?
        func record(written n: Int, error e: SinkError?) {
            lock.lock()
            written += n
            if error == nil { error = e }
            lock.unlock()
        }
        var snapshot: (Int, SinkError?) {
            lock.lock()
            defer { lock.unlock() }
            return (written, error)
        }
    }

    private struct FileBox: @unchecked Sendable {
        let file: UnsafeMutablePointer<FILE>
        init(_ f: UnsafeMutablePointer<FILE>) { file = f }
    }

    /// Bytes written to the files so far.
    public var bytesWritten: Int { writerState.snapshot.0 }

    public func emit(_ event: CloudEvent) {
        event.raw.withUnsafeBufferPointer { emitEventText($0) }
    }

    public func emit(_ span: Span) {
        guard spanFile != nil else { return }
        spanBuffer.append(contentsOf: span.ndjsonValue.jsonBytes)
        spanBuffer.append(0x0A)
        spansWritten += 1
        if spanBuffer.count >= flushAt { try? flushSpans() }
    }

    private func write(_ bytes: inout [UInt8], to f: UnsafeMutablePointer<FILE>?) throws {
        guard let f, !bytes.isEmpty else { return }
        let n = bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, f) }
        if n != bytes.count { throw SinkError(path: path, reason: "short write: " + String(cString: strerror(errno))) }
        writerState.record(written: n, error: nil)
        bytes.removeAll(keepingCapacity: true)
    }

    private func flushEvents() throws { try write(&buffer, to: file) }
    private func flushSpans() throws { try write(&spanBuffer, to: spanFile) }

    /// Writes everything buffered so far to the files.
    public func flush() throws {
        writerQueue.sync {}
        if let failed = writerState.snapshot.1 { throw failed }
        try flushEvents()
        try flushSpans()
        if let f = file { fflush(f) }
        if let g = spanFile { fflush(g) }
    }

    /// Flushes and closes; later emits are dropped.
    public func close() throws {
        defer {
            if let f = file { fclose(f) }
            if let g = spanFile { fclose(g) }
            file = nil
            spanFile = nil
        }
        try flush()
    }
}

extension Span {
    /// A flat JSON form of the span, for NDJSON files.
    public var ndjsonValue: JSONValue {
        var o: [String: JSONValue] = [
            "trace_id": .string(traceID), "span_id": .string(spanID), "service": .string(service), "name": .string(name),
            "start": .string(RFC3339.format(start)), "end": .string(RFC3339.format(end)), "status": .string(status.rawValue),
            "attributes": .object(attributes),
        ]
        if let p = parentSpanID { o["parent_span_id"] = .string(p) }
        if let m = statusMessage { o["status_message"] = .string(m) }
        return .object(o)
    }
}
