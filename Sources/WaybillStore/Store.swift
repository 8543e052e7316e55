import WaybillModel

/// What one append did. `accepted + duplicates` is the number of events given.
public struct AppendResult: Sendable, Equatable {
    public var accepted: Int
    public var duplicates: Int
    public init(accepted: Int = 0, duplicates: Int = 0) {
        self.accepted = accepted
        self.duplicates = duplicates
    }
    public static func + (a: AppendResult, b: AppendResult) -> AppendResult {
        AppendResult(accepted: a.accepted + b.accepted, duplicates: a.duplicates + b.duplicates)
    }
}

public enum StoreError: Error, Sendable, CustomStringConvertible {
    /// The write queue is full: retry after the given number of seconds (HTTP 429).
    case overloaded(retryAfterSeconds: Int)
    /// The store is closing or cannot write (HTTP 503).
    case unavailable(String)
    /// A storage fault that may pass (disk full, I/O error, a lock held past the busy timeout, a file that
    /// cannot be opened): nothing of the call was stored; retry after `fault.retryAfterSeconds` (HTTP 503).
    case fault(StorageFault)
    /// The engine failed for a reason a retry will not cure (corruption, a bug).
    case engine(String)

    public var description: String {
        switch self {
        case .overloaded(let s): return "ingest queue is full; retry after \(s)s"
        case .unavailable(let m): return "store unavailable: \(m)"
        case .fault(let f): return "storage fault: \(f)"
        case .engine(let m): return "storage engine error: \(m)"
        }
    }
}

/// Writes business events.
///
/// Contract (every engine):
/// - Durability: `append` returns only after its events are committed; an event it acknowledged
///   survives the process being killed (`kill -9`).
/// - Idempotency: `(source, id)` identifies an event. A second event with the same pair, in the same
///   call, a concurrent call or any later call, is counted in `duplicates` and changes nothing stored.
/// - Order independence: any permutation of the same distinct events yields the same traces, facts and search results.
/// - Backpressure: when the engine cannot queue more work it throws `StoreError.overloaded` without
///   storing anything of that call, rather than growing memory.
/// - Faults: when a write fails for a reason that may pass (disk full, I/O error, the database locked by
///   another process past the busy timeout, a file that cannot be opened) it throws `StoreError.fault`
///   and stores nothing of that call, nor of any call that shared its transaction. Once the cause is
///   gone the next call succeeds, without a restart; what was acknowledged before stays stored.
///   `WaybillStore.storageHealth` names the fault until a write succeeds again. Any other failure
///   throws `StoreError.engine`.
/// - Ownership: the events are copied; the caller may reuse its buffers.
public protocol EventWriter: Sendable {
    func append(_ events: [CloudEvent]) async throws -> AppendResult
}

/// Writes technical spans (events.md section 4).
///
/// Contract: as `EventWriter` (durable on return, bounded queue, a fault stores nothing of the call);
/// `(trace id, span id)` identifies a span, a second one is a duplicate. A span joins the trace of an order through its correlation
/// attribute (`SpanCorrelation`) or through the trace id of one of the order's events' `traceparent`;
/// a joined span brings its whole trace, including spans that arrive before or after it.
public protocol SpanWriter: Sendable {
    func appendSpans(_ spans: [Span]) async throws -> AppendResult
}

/// Reads spans by time, for views over services rather than orders.
public protocol SpanReader: Sendable {
    /// Spans that start in `range`, at most `limit` (the earliest first).
    func spans(startingIn range: Range<Micros>, limit: Int) throws -> [Span]
}

/// Reads traces of orders (events.md section 3).
///
/// Contract: `trace(key:)` accepts the order id or any key linked to it, directly or transitively, and
/// returns the same trace (same correlation id, keys, events and facts) for each of them, whatever the
/// order in which events and links arrived. It returns nil when no event has that key as subject and no
/// link names it.
public protocol TraceReader: Sendable {
    func trace(key: String) throws -> Trace?
    func facts(orderID: String) throws -> OrderFacts?
    /// The spans of the trace of each key, for many keys at once (the KPI report's telemetry split reads
    /// a window's orders): for each key, the spans `trace(key:)` returns, in no particular order. A key
    /// with no span may be missing from the answer.
    func traceSpans(keys: [String]) throws -> [String: [Span]]
}

/// How an engine's `traceSpans(keys:)` puts its reads together.
public enum TraceSpanGroups {
    /// Each key's spans: those of every trace that a member of its group (`groups`, the key included) joins
    /// (`traces`, by member), trace by trace in id order; keys without a span are left out.
    public static func spans(groups: [String: [String]], traces: [String: Set<String>], spans: [Span]) -> [String: [Span]] {
        let byTrace = Dictionary(grouping: spans, by: \.traceID)
        var out: [String: [Span]] = [:]
        for (key, members) in groups {
            let found = members.reduce(into: Set<String>()) { $0.formUnion(traces[$1] ?? []) }.sorted().flatMap { byTrace[$0] ?? [] }
            if !found.isEmpty { out[key] = found }
        }
        return out
    }
}

extension TraceReader {
    /// One `trace(key:)` per key: right for every engine; an engine that can share the work overrides it.
    public func traceSpans(keys: [String]) throws -> [String: [Span]] {
        var out: [String: [Span]] = [:]
        for k in keys { if let spans = try trace(key: k)?.spans, !spans.isEmpty { out[k] = spans } }
        return out
    }
}

/// What `waybill search` and `GET /api/v1/traces` ask for. All filters combine with AND.
public struct OrderQuery: Sendable, Equatable {
    public var state: Stage?
    /// Orders with at least one event of this type.
    public var type: String?
    /// Orders with at least one event from this source.
    public var source: String?
    /// Orders allocated or shipped from this warehouse.
    public var warehouse: String?
    public var channel: String?
    public var region: String?
    /// Orders with activity in `[from, to)`: first event before `to`, last event at or after `from`.
    public var from: Micros?
    public var to: Micros?
    /// Orders whose current state was reached more than this long before `now` and that are not finished (invoiced or cancelled).
    public var stuckFor: Micros?
    public var now: Micros
    public var limit: Int
    /// Opaque cursor from a previous page's `nextCursor`.
    public var cursor: String?

    public init(state: Stage? = nil, type: String? = nil, source: String? = nil, warehouse: String? = nil, channel: String? = nil,
                region: String? = nil, from: Micros? = nil, to: Micros? = nil, stuckFor: Micros? = nil, now: Micros,
                limit: Int = 50, cursor: String? = nil)
    {
        self.state = state
        self.type = type
        self.source = source
        self.warehouse = warehouse
        self.channel = channel
        self.region = region
        self.from = from
        self.to = to
        self.stuckFor = stuckFor
        self.now = now
        self.limit = limit
        self.cursor = cursor
    }
}

public struct OrderSummary: Sendable, Equatable {
    public var correlationID: String
    public var state: Stage?
    public var stateSince: Micros?
    public var firstEventAt: Micros
    public var lastEventAt: Micros
    public var eventCount: Int
    public var channel: String?
    public var warehouse: String?

    public init(correlationID: String, state: Stage?, stateSince: Micros?, firstEventAt: Micros, lastEventAt: Micros,
                eventCount: Int, channel: String?, warehouse: String?)
    {
        self.correlationID = correlationID
        self.state = state
        self.stateSince = stateSince
        self.firstEventAt = firstEventAt
        self.lastEventAt = lastEventAt
        self.eventCount = eventCount
        self.channel = channel
        self.warehouse = warehouse
    }
}

public struct OrderPage: Sendable, Equatable {
    /// Most recent first (by first event time, then correlation id).
    public var orders: [OrderSummary]
    /// Pass as `cursor` for the next page; nil on the last page.
    public var nextCursor: String?
    public init(orders: [OrderSummary], nextCursor: String?) {
        self.orders = orders
        self.nextCursor = nextCursor
    }
}

/// Finds orders by their facts.
public protocol OrderSearcher: Sendable {
    func searchOrders(_ query: OrderQuery) throws -> OrderPage
}

public struct StoreStats: Sendable, Equatable {
    public var events: Int
    public var orders: Int
    public var linkedKeys: Int
    /// Events accepted by `append` and not yet committed.
    public var queuedEvents: Int
    public init(events: Int, orders: Int, linkedKeys: Int, queuedEvents: Int) {
        self.events = events
        self.orders = orders
        self.linkedKeys = linkedKeys
        self.queuedEvents = queuedEvents
    }
}

/// Keeps the checkpoints of the embedded services (opaque bytes under a name), so that a restarted
/// service resumes where it was (the demo's workflows, `SimulatorSnapshot`).
///
/// Contract: `saveCheckpoint` returns only after the bytes are committed, and after every write
/// accepted before it was called; it replaces the checkpoint of that name atomically (a crash leaves
/// the previous one or the new one, never a mix). `loadCheckpoint` returns the last committed bytes,
/// also after the store is reopened (empty bytes too), or nil when that name was never saved.
public protocol WorkflowStore: Sendable {
    func saveCheckpoint(name: String, bytes: [UInt8]) async throws
    func loadCheckpoint(name: String) throws -> StoredCheckpoint?
}

public struct StoredCheckpoint: Sendable, Equatable {
    public var bytes: [UInt8]
    /// Wall-clock time of the commit.
    public var savedAt: Micros
    public init(bytes: [UInt8], savedAt: Micros) {
        self.bytes = bytes
        self.savedAt = savedAt
    }
}

/// A complete storage engine.
public protocol WaybillStore: EventWriter, SpanWriter, SpanReader, TraceReader, OrderSearcher, RollupReader, AccessStore {
    func stats() throws -> StoreStats
    /// Deletes events whose time is before `cutoff` and spans that start before it (retention); returns
    /// how many events were removed. An order's facts go with its last event and are kept whole until
    /// then; rollups retract them (`FactsRollup`).
    func deleteEvents(before cutoff: Micros) async throws -> Int
    /// Whether writes succeed: the `StorageFault` of the last write while no write has succeeded since
    /// (and since when), and the faults counted since the store was opened. An engine whose writes
    /// failed retries by itself (a small probe write every few seconds), so the fault clears once its
    /// cause is gone even when no client writes.
    var storageHealth: StorageHealth { get }
    /// Stops accepting writes, finishes queued ones and releases resources.
    func close()
}
