import WaybillModel

/// The key of one row of a derived aggregate: a dimension (`total`, `warehouse`, ...), a group value
/// (nil is the group of orders without one) and the start of a time bucket.
public struct RollupKey: Hashable, Sendable, Comparable {
    public var dimension: String
    public var group: String?
    public var bucketStart: Micros
    public init(dimension: String, group: String?, bucketStart: Micros) {
        self.dimension = dimension
        self.group = group
        self.bucketStart = bucketStart
    }
    public static func < (a: RollupKey, b: RollupKey) -> Bool {
        if a.dimension != b.dimension { return a.dimension < b.dimension }
        if a.bucketStart != b.bucketStart { return a.bucketStart < b.bucketStart }
        return (a.group ?? "") < (b.group ?? "") || (a.group == nil && b.group != nil)
    }
}

/// An order whose facts changed in a write: `old` is nil for an order seen the first time.
public struct FactsTransition: Sendable {
    public var old: OrderFacts?
    public var new: OrderFacts
    public init(old: OrderFacts?, new: OrderFacts) {
        self.old = old
        self.new = new
    }
}

/// Keeps aggregates over order facts (the KPI rollups) current. The store owns the rows as opaque
/// bytes and calls this inside the same transaction that changes the facts, so rollups and facts
/// never disagree, also after a crash. The store does not know what the bytes mean; the KPI engine does.
/// When retention deletes an order, its transition has the order's facts as `old` and empty facts
/// (`OrderFacts(orderID:)`) as `new`.
public protocol FactsRollup: Sendable {
    /// Names the row layout (for the KPI rollups, their bucket widths); when it differs from the layout
    /// the rows were written with, or the store kept no rows before, the store drops every row and
    /// rebuilds them from the stored facts as it opens.
    var layout: String { get }
    /// The rows to write for these transitions: new bytes, or nil to delete the row. `read` returns a
    /// row's current bytes. Must be a pure function of its inputs.
    func update(_ transitions: [FactsTransition], read: (RollupKey) throws -> [UInt8]?) throws -> [(RollupKey, [UInt8]?)]
}

/// Reads what KPI queries need: rollup rows for whole buckets, and the facts of orders for the edges.
///
/// Contract: after an append returns, its effect on rollups and facts is visible to these reads.
public protocol RollupReader: Sendable {
    /// The rows of `dimension` whose bucket starts in one of `ranges` (which do not overlap), each once,
    /// in no particular order.
    func rollupRows(dimension: String, in ranges: [Range<Micros>]) throws -> [(key: RollupKey, bytes: [UInt8])]
    /// Facts of every order whose `allocatedAt` or `shippedAt` lies in one of the ranges, each order once.
    func kpiFacts(in ranges: [Range<Micros>]) throws -> [OrderFacts]
    /// The same rows as `rollupRows`, for context that may lag the newest writes by a moment (a trace's
    /// comparison of its steps with the last 7 days): an engine that keeps its newest rollup changes
    /// aside for a moment (the SQLite server's rollup window) answers from the rows as last written,
    /// without waiting for them. Defaults to `rollupRows`.
    func contextRollupRows(dimension: String, in ranges: [Range<Micros>]) throws -> [(key: RollupKey, bytes: [UInt8])]
}

extension RollupReader {
    public func contextRollupRows(dimension: String, in ranges: [Range<Micros>]) throws -> [(key: RollupKey, bytes: [UInt8])] {
        try rollupRows(dimension: dimension, in: ranges)
    }
}
