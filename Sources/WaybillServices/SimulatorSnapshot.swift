import Foundation
import WaybillModel

/// Everything a `Simulator` needs to go on after a restart: the config, the virtual clock, what is
/// pending on the clock, the workflows in flight, the inventory ledger, the idempotency keys of order
/// intake, the circuit breaker, the generators' state and the counters.
///
/// `Simulator(resuming:sink:)` on a snapshot emits exactly what the original simulator would have
/// emitted after `snapshot()` was taken, byte for byte. What the config derives (demand model,
/// network sizing, initial stock) is rebuilt from the config, deterministically, not stored.
///
///     let bytes = try sim.snapshot().encoded()                 // after the sink's events are stored
///     let sim = try Simulator(resuming: SimulatorSnapshot(decoding: bytes), sink: sink)
public struct SimulatorSnapshot: Codable, Sendable {
    /// Bumped when the layout changes; a snapshot of another version is refused, not misread.
    public static let currentFormat = 1

    public var format: Int
    public var config: SimulatorConfig
    /// The virtual clock when the snapshot was taken.
    public var now: Micros
    public var stats: SimulationStats
    /// Queued happenings in the order they will happen.
    var pending: [Pending]
    var orders: [OpenOrder]
    var intake: OrderIntake
    var breaker: CircuitBreaker
    var ops: Xoshiro256
    var faultRandom: Xoshiro256
    var workItems: Int
    var nextOrderNumber: Int
    var invoiceCounter: Int
    var pickBacklog: [Int]
    var inventory: InventoryLedger

    struct Pending: Codable, Sendable {
        var time: Micros
        var happening: Simulator.Happening
    }

    /// An order in flight with its trace identity.
    struct OpenOrder: Codable, Sendable {
        var number: Int
        var workflow: OrderWorkflow
        var traceHi: UInt64
        var traceLo: UInt64
        var rootSpan: UInt64
        var spanCounter: UInt64
        var region: Int
    }

    /// The workflows in flight, in order-number order.
    public var openWorkflows: [OrderWorkflow] { orders.map(\.workflow) }
    /// Idempotency keys order intake still remembers.
    public var idempotencyKeys: Int { intake.count }

    /// The snapshot as JSON.
    public func encoded() throws -> [UInt8] { Array(try JSONEncoder().encode(self)) }

    /// - Throws: `SimulatorSnapshotError.format` for a snapshot of another format version; decoding errors otherwise.
    public init(decoding bytes: [UInt8]) throws {
        struct Header: Decodable { var format: Int }
        let data = Data(bytes)
        let header = try JSONDecoder().decode(Header.self, from: data)
        guard header.format == Self.currentFormat else { throw SimulatorSnapshotError.format(found: header.format, expected: Self.currentFormat) }
        self = try JSONDecoder().decode(Self.self, from: data)
    }

    init(simulator s: Simulator) {
        format = Self.currentFormat
        config = s.config
        now = s.now
        stats = s.stats
        pending = s.queue.pending.map { Pending(time: $0.time, happening: $0.payload) }
        orders = s.live.numbered.map {
            OpenOrder(number: $0.number, workflow: $0.order.workflow, traceHi: $0.order.traceHi, traceLo: $0.order.traceLo,
                      rootSpan: $0.order.rootSpan, spanCounter: $0.order.spanCounter, region: $0.order.region)
        }
        intake = s.intake
        breaker = s.breaker
        ops = s.ops
        faultRandom = s.faultRandom
        workItems = s.workItems
        nextOrderNumber = s.nextOrderNumber
        invoiceCounter = s.invoiceCounter
        pickBacklog = s.pickBacklog
        inventory = s.allocation.snapshot()
    }
}

public enum SimulatorSnapshotError: Error, Hashable, Sendable, CustomStringConvertible {
    case format(found: Int, expected: Int)
    public var description: String {
        switch self {
        case .format(let f, let e): return "checkpoint format \(f) is not the format this build reads (\(e)); start afresh with --reset"
        }
    }
}

extension Simulator {
    /// The resumable state, consistent as of now. Take it between calls (the simulator is not thread-safe),
    /// after what it emitted so far has been stored: a simulator resumed from it emits only what comes after.
    public func snapshot() -> SimulatorSnapshot { SimulatorSnapshot(simulator: self) }

    /// Replaces the state the config built with the snapshot's (called by the resuming init only).
    func restore(_ s: SimulatorSnapshot) {
        now = s.now
        stats = s.stats
        // Pushed in pop order into the empty queue: ties keep their order, and everything pushed from
        // here on comes after them, as it would have in the original.
        for p in s.pending { queue.push(p.time, p.happening) }
        for o in s.orders {
            let live = LiveOrder(workflow: o.workflow, traceHi: o.traceHi, traceLo: o.traceLo, rootSpan: o.rootSpan, region: o.region)
            live.spanCounter = o.spanCounter
            self.live[o.number] = live
        }
        intake = s.intake
        breaker = s.breaker
        ops = s.ops
        faultRandom = s.faultRandom
        workItems = s.workItems
        nextOrderNumber = s.nextOrderNumber
        invoiceCounter = s.invoiceCounter
        pickBacklog = s.pickBacklog
    }
}

/// An event waiting for a delayed delivery (sinks that take `CloudEvent`s). Codable through its
/// envelope and raw text; `data` is read back from the raw text, which is what sinks store.
struct DelayedEvent: Codable, Sendable {
    var event: CloudEvent

    init(event: CloudEvent) { self.event = event }

    enum CodingKeys: String, CodingKey { case id, source, type, time, subject, traceID, raw }

    init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let raw = Array(try c.decode(String.self, forKey: .raw).utf8)
        let data = (try? JSONParser.parse(raw))?["data"]
        event = CloudEvent(id: try c.decode(String.self, forKey: .id), source: try c.decode(String.self, forKey: .source),
                           type: try c.decode(String.self, forKey: .type), time: try c.decode(Micros.self, forKey: .time),
                           subject: try c.decode(String.self, forKey: .subject), traceID: try c.decodeIfPresent(String.self, forKey: .traceID),
                           data: data.flatMap { $0.isNull ? nil : $0 }, raw: raw)
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(event.id, forKey: .id)
        try c.encode(event.source, forKey: .source)
        try c.encode(event.type, forKey: .type)
        try c.encode(event.time, forKey: .time)
        try c.encode(event.subject, forKey: .subject)
        try c.encodeIfPresent(event.traceID, forKey: .traceID)
        try c.encode(String(decoding: event.raw, as: UTF8.self), forKey: .raw)
    }
}
