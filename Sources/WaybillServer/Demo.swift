import Foundation
import Logging
import ServiceLifecycle
import Synchronization
import WaybillAlerts
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
    /// Told of every flushed batch, after it is stored (the server's ingest figures, when attached).
    public var observer: IngestObserver?

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
    ///
    /// Contract: what a flush that throws did not store stays in the sink, ahead of anything emitted
    /// later, and the next flush sends it again (the store answers the part that did get stored as
    /// duplicates). So the sink is empty only when everything emitted into it is stored, which is
    /// what the demo's checkpoints rely on.
    public func flush(to store: any EventWriter & SpanWriter, batchSize: Int = 5_000) async throws {
        if !spans.isEmpty {
            let batch = spans
            spans.removeAll(keepingCapacity: true)
            do {
                spansWritten = spansWritten + (try await Self.appendInBatches(batch, size: batchSize) { try await store.appendSpans($0) })
            } catch {
                spans.insert(contentsOf: batch, at: 0)
                throw error
            }
        }
        guard !buffer.isEmpty else { return }
        let bytes = buffer, lines = pending
        buffer.removeAll(keepingCapacity: true)
        pending = 0
        let decoded = bytes.withUnsafeBufferPointer { EventDecoder.decodeLinesLeniently($0, firstLine: 0).events }
        let result: AppendResult
        do {
            result = try await Self.appendInBatches(decoded.events, size: batchSize) { try await store.append($0) }
        } catch {
            buffer.insert(contentsOf: bytes, at: 0)
            pending += lines
            throw error
        }
        rejected += decoded.rejected
        written = written + result
        observer?.observe(decoded, result: result)
    }
}

/// Where the embedded services' stored batches are reported: a server's ingest metrics (the
/// overview's ingest-health panel, `waybill_events_accepted_total`), once the server attaches them.
/// The embedded services do not go through the HTTP collectors, so without this the overview of
/// `waybill demo` would say that no events arrive.
public final class IngestObserver: Sendable {
    private let report = Mutex<(@Sendable (DecodedEvents, AppendResult) -> Void)?>(nil)

    public init() {}

    func attach(_ report: @escaping @Sendable (DecodedEvents, AppendResult) -> Void) {
        self.report.withLock { $0 = report }
    }

    func observe(_ decoded: DecodedEvents, result: AppendResult) {
        report.withLock { $0 }?(decoded, result)
    }
}

/// `waybill demo`: the embedded order orchestration and allocation services under a simulated
/// workload, writing into the server's own store: first a backfill of history, then in real time
/// (or faster with `speed`). Ends with the service group.
///
/// With `checkpoints`, the services are durable: the simulator's whole state (`SimulatorSnapshot`:
/// workflows in flight, pending timers, inventory, idempotency keys, generators) is saved under
/// `checkpointName` every `checkpointInterval`, whenever orders came in through the Orders API, and
/// at shutdown; a restart resumes from it instead of backfilling. A checkpoint is saved only after
/// every event and span emitted before it is committed, so a resumed run loses nothing; after a
/// crash it emits again what came after the last checkpoint, and the store counts those events as
/// duplicates (`(source, id)`).
public struct DemoService: Service {
    public struct Options: Sendable {
        public var seed: UInt64 = 1
        public var ordersPerDay: Double = 5_000
        public var backfillDays: Double = 3
        public var speed: Double = 1
        public var faults: FaultPlan = .none
        /// Seconds of real time between checkpoints.
        public var checkpointInterval: Double = 5
        public init() {}
    }

    /// How the services started.
    public struct Ready: Sendable {
        /// Start of the simulated history.
        public var start: Micros
        /// Set when the services went on from a checkpoint.
        public var resumed: Resumed?
    }

    public struct Resumed: Sendable {
        public var workflowsInFlight: Int
        public var idempotencyKeys: Int
        /// Simulated time of the checkpoint, and the time caught up to (the pause, at `speed`).
        public var from: Micros
        public var caughtUpTo: Micros
        /// The options of the run that wrote the checkpoint, which it goes on with (speed excepted).
        public var seed: UInt64
        public var ordersPerDay: Double
    }

    public static let checkpointName = "demo"
    /// How often the services advance to the clock and flush what they emitted.
    public static let tick: Micros = 250_000
    /// Idempotency keys of the Orders API (and the channels) are remembered this long, in simulated time.
    public static let idempotencyRetention: Micros = 24 * 3_600_000_000

    let store: any WaybillStore
    let checkpoints: (any WorkflowStore)?
    let options: Options
    let desk: OrderDesk?
    let clock: any ServiceClock
    let logger: Logger
    /// Called once the backfill (or the catch-up after a resume) is stored.
    let onReady: @Sendable (Ready) async -> Void

    /// Reports every stored batch (attach it to the server with `buildApplication(ingestObserver:)`).
    public let ingestObserver = IngestObserver()

    public init(store: any WaybillStore, checkpoints: (any WorkflowStore)? = nil, options: Options, desk: OrderDesk? = nil,
                clock: any ServiceClock = SystemClock(), logger: Logger, onReady: @escaping @Sendable (Ready) async -> Void)
    {
        self.store = store
        self.checkpoints = checkpoints
        self.options = options
        self.desk = desk
        self.clock = clock
        self.logger = logger
        self.onReady = onReady
    }

    public func run() async throws {
        let sink = StoreEventSink()
        sink.observer = ingestObserver
        // Simulated time is `anchorVirtual + (clock.now() - anchorReal) * speed`.
        let anchorReal = clock.now()
        let anchorVirtual: Micros
        let sim: Simulator
        var ready: Ready
        if let saved = try checkpoints?.loadCheckpoint(name: Self.checkpointName) {
            let snapshot = try SimulatorSnapshot(decoding: saved.bytes)
            sim = try Simulator(resuming: snapshot, sink: sink)
            // While the services were down, simulated time went on at the demo's pace: catch it up.
            anchorVirtual = snapshot.now + max(0, Micros(Double(anchorReal - saved.savedAt) * options.speed))
            ready = Ready(start: snapshot.config.start, resumed: Resumed(
                workflowsInFlight: snapshot.openWorkflows.count, idempotencyKeys: snapshot.idempotencyKeys, from: snapshot.now,
                caughtUpTo: anchorVirtual, seed: snapshot.config.seed, ordersPerDay: snapshot.config.ordersPerDay))
        } else {
            var config = SimulatorConfig.continuous(ordersPerDay: options.ordersPerDay, seed: options.seed,
                                                    start: anchorReal - Micros(options.backfillDays * 86_400_000_000), faults: options.faults)
            config.idempotencyRetention = Self.idempotencyRetention
            sim = try Simulator(config, sink: sink)
            anchorVirtual = anchorReal
            ready = Ready(start: config.start, resumed: nil)
        }
        // Backfill (or catch up) an hour of simulated time at a time, so memory stays flat.
        var t = sim.now
        while t < anchorVirtual && !Task.isShuttingDownGracefully {
            t = min(t + 3_600_000_000, anchorVirtual)
            sim.advance(to: t)
            try await sink.flush(to: store)
        }
        try await checkpoint(sim)
        ready.resumed?.caughtUpTo = sim.now
        await onReady(ready)
        defer { desk?.close() }
        var lastCheckpoint = clock.now()
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await clock.sleep(for: Self.tick) }
            let virtualNow = anchorVirtual + Micros(Double(clock.now() - anchorReal) * options.speed)
            sim.advance(to: virtualNow)
            let taken = desk?.take { sim.submitExternal($0) } ?? OrderDesk.Taken()
            do {
                try await sink.flush(to: store)
                // An accepted order is answered only once a checkpoint holds it (and its idempotency key).
                if !taken.isEmpty || Double(clock.now() - lastCheckpoint) >= options.checkpointInterval * 1e6 {
                    try await checkpoint(sim)
                    lastCheckpoint = clock.now()
                }
                taken.answer()
            } catch {
                logger.error("demo ingest failed", metadata: ["error": "\(error)"])
                taken.fail(error)
            }
        }
        // Interrupted: keep the state for the next start, once what was emitted is stored (a flush that
        // failed above left its events in the sink; without them stored, the last checkpoint stays, and
        // the next start emits them again).
        do {
            try await sink.flush(to: store)
            try await checkpoint(sim)
        } catch {
            logger.error("demo checkpoint at shutdown failed", metadata: ["error": "\(error)"])
        }
        if !sink.rejected.isEmpty {
            logger.warning("demo events rejected by the collector", metadata: ["count": "\(sink.rejected.count)", "first": "\(sink.rejected[0].error)"])
        }
    }

    /// Saves the simulator's state; called only when the sink is empty, that is, after everything it
    /// emitted is committed.
    private func checkpoint(_ sim: Simulator) async throws {
        guard let checkpoints else { return }
        let started = clock.now()
        let bytes = try sim.snapshot().encoded()
        try await checkpoints.saveCheckpoint(name: Self.checkpointName, bytes: bytes)
        logger.debug("demo checkpoint saved", metadata: [
            "bytes": "\(bytes.count)", "workflows": "\(sim.openWorkflows.count)", "ms": "\((clock.now() - started) / 1000)",
        ])
    }
}

extension DemoService {
    /// The demo's alert rules when no `--config` is given: the shipped rules of `queries/alerts/`, which
    /// are compiled into the binary (`Resources/alerts` links to that folder; `scripts/embed-resources.py`),
    /// without their hooks and Alertmanager: the demo notifies no one; its alerts show in the API, the pages
    /// and `waybill alerts`.
    public static func shippedAlertRules() throws -> AlertConfig {
        var config = try AlertConfig.load(files: ShippedResources.files("alerts").map { ("alerts/" + $0.name, $0.text) })
        config.hooks = []
        config.alertmanager = nil
        return config
    }
}
