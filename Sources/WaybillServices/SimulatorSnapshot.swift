import Foundation
import WaybillModel

/// Everything a `Simulator` needs to go on after a restart: the config it runs under and its state
/// (`Simulator.State`: the virtual clock, what is pending on it, the workflows in flight, the
/// inventory, the idempotency keys of order intake, the circuit breaker, the generators and the counters).
///
/// `Simulator(resuming:sink:)` on a snapshot emits exactly what the original simulator would have
/// emitted after `snapshot()` was taken, byte for byte. What the config derives (demand model,
/// network sizing) is rebuilt from the config, deterministically, not stored.
///
///     let bytes = try sim.snapshot().encoded()                 // after the sink's events are stored
///     let sim = try Simulator(resuming: SimulatorSnapshot(decoding: bytes), sink: sink)
public struct SimulatorSnapshot: Codable, Sendable {
    /// Bumped when the layout changes; a snapshot of another version is refused, not misread.
    /// Format 1 listed the simulator's fields one by one; format 2 is `{config, state}`.
    public static let currentFormat = 2

    public var format: Int
    public var config: SimulatorConfig
    public var state: Simulator.State

    /// The virtual clock when the snapshot was taken.
    public var now: Micros { state.now }
    public var stats: SimulationStats { state.stats }
    /// The workflows in flight, in order-number order.
    public var openWorkflows: [OrderWorkflow] { state.live.all.map(\.workflow) }
    /// Idempotency keys order intake still remembers.
    public var idempotencyKeys: Int { state.intake.count }

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

    init(config: SimulatorConfig, state: Simulator.State) {
        format = Self.currentFormat
        self.config = config
        self.state = state
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
    /// The resumable state, consistent as of now: a copy, which the simulator going on does not change.
    /// Take it between calls (the simulator is not thread-safe), after what it emitted so far has been
    /// stored: a simulator resumed from it emits only what comes after.
    public func snapshot() -> SimulatorSnapshot { SimulatorSnapshot(config: config, state: state) }
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
