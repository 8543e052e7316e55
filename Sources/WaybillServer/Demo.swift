import Foundation
import Logging
import ServiceLifecycle
import WaybillCollectors
import WaybillModel
import WaybillServices
import WaybillStore

/// Takes what the embedded services emit as CloudEvents JSON text and feeds it through the
/// collector into the store, exactly as an external producer's NDJSON would go.
public final class StoreEventSink: EventTextSink {
    private var buffer: [UInt8] = []
    private var pending = 0
    private var spans: [Span] = []
    private let keepSpans: Bool
    public private(set) var rejected: [RejectedEvent] = []
    public private(set) var written = AppendResult()
    public private(set) var spansWritten = AppendResult()

    /// - Parameter keepSpans: store spans too (in-process, until OTLP carries them); false skips building them.
    public init(keepSpans: Bool = true) {
        self.keepSpans = keepSpans
    }

    public var wantsSpans: Bool { keepSpans }

    public func emitEventText(_ text: UnsafeBufferPointer<UInt8>) {
        buffer.append(contentsOf: text)
        buffer.append(0x0A)
        pending += 1
    }

    public func emit(_ event: CloudEvent) {
        buffer.append(contentsOf: event.raw)
        buffer.append(0x0A)
        pending += 1
    }

    public func emit(_ span: Span) {
        if keepSpans { spans.append(span) }
    }

    public var pendingEvents: Int { pending }

    /// Hands over the NDJSON emitted so far, for a sink that sends it elsewhere.
    public func takeText() -> [UInt8] {
        defer {
            buffer.removeAll(keepingCapacity: true)
            pending = 0
        }
        return buffer
    }

    /// Appends `items` in batches of `size`, waiting out a full ingest queue as the store asks.
    static func appendInBatches<T>(_ items: [T], size: Int, _ append: ([T]) async throws -> AppendResult) async throws -> AppendResult {
        var total = AppendResult()
        var i = 0
        while i < items.count {
            let chunk = Array(items[i..<min(i + size, items.count)])
            do {
                total = total + (try await append(chunk))
                i += chunk.count
            } catch StoreError.overloaded(let s) {
                try await Task.sleep(for: .seconds(s))
            }
        }
        return total
    }

    /// Decodes what has been emitted and appends it, in batches; waits out a full ingest queue.
    public func flush(to store: any EventWriter & SpanWriter, batchSize: Int = 5_000) async throws {
        if !spans.isEmpty {
            let batch = spans
            spans.removeAll(keepingCapacity: true)
            spansWritten = spansWritten + (try await Self.appendInBatches(batch, size: batchSize) { try await store.appendSpans($0) })
        }
        guard !buffer.isEmpty else { return }
        let bytes = buffer
        buffer.removeAll(keepingCapacity: true)
        pending = 0
        let decoded = bytes.withUnsafeBufferPointer { EventDecoder.decodeLinesLeniently($0, firstLine: 0).events }
        rejected += decoded.rejected
        written = written + (try await Self.appendInBatches(decoded.events, size: batchSize) { try await store.append($0) })
    }
}

/// `waybill demo`: the embedded order orchestration and allocation services under a simulated
/// workload, writing into the server's own store: first a backfill of history, then in real time
/// (or faster with `speed`). Ends with the service group.
public struct DemoService: Service {
    public struct Options: Sendable {
        public var seed: UInt64 = 1
        public var ordersPerDay: Double = 5_000
        public var backfillDays: Double = 3
        public var speed: Double = 1
        public var faults: FaultPlan = .none
        public init() {}
    }

    let store: any WaybillStore
    let options: Options
    let desk: OrderDesk?
    let clock: @Sendable () -> Micros
    let logger: Logger
    /// Called once the backfill is stored, with the simulator's start time.
    let onReady: @Sendable (Micros) async -> Void

    public init(store: any WaybillStore, options: Options, desk: OrderDesk? = nil, clock: @escaping @Sendable () -> Micros = currentMicros,
                logger: Logger, onReady: @escaping @Sendable (Micros) async -> Void)
    {
        self.store = store
        self.options = options
        self.desk = desk
        self.clock = clock
        self.logger = logger
        self.onReady = onReady
    }

    public func run() async throws {
        let realStart = clock()
        let start = realStart - Micros(options.backfillDays * 86_400_000_000)
        let sink = StoreEventSink()
        let sim = try Simulator(.continuous(ordersPerDay: options.ordersPerDay, seed: options.seed, start: start, faults: options.faults),
                                sink: sink)
        // Backfill an hour of simulated time at a time, so memory stays flat.
        var t = start
        while t < realStart && !Task.isShuttingDownGracefully {
            t = min(t + 3_600_000_000, realStart)
            sim.advance(to: t)
            try await sink.flush(to: store)
        }
        await onReady(start)
        defer { desk?.close() }
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: .milliseconds(250)) }
            let virtualNow = realStart + Micros(Double(clock() - realStart) * options.speed)
            sim.advance(to: virtualNow)
            desk?.drain { sim.submitExternal($0) }
            do { try await sink.flush(to: store) } catch { logger.error("demo ingest failed", metadata: ["error": "\(error)"]) }
        }
        if !sink.rejected.isEmpty {
            logger.warning("demo events rejected by the collector", metadata: ["count": "\(sink.rejected.count)", "first": "\(sink.rejected[0].error)"])
        }
    }
}
