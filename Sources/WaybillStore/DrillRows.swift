import WaybillModel

/// One order's own number behind a KPI, kept beside its facts so that a drill-down ("the orders behind
/// p95 allocation delay this week") reads a few compact rows instead of decoding every order's facts in
/// the window. The KPI engine defines what a `family` measures (`KPIDrillFamily`); the store only keeps,
/// replaces and selects rows.
public struct DrillRow: Hashable, Sendable {
    public var family: Int
    /// The time that places the row in a window (the time the KPI itself uses, e.g. `allocated_at`).
    public var at: Micros
    public var orderID: String
    /// The order's number: microseconds for durations, micro-units for quantities.
    public var value: Int64
    /// The order's group of each KPI dimension, in the engine's dimension order (at most 3); nil is the null group.
    public var groups: [String?]

    public init(family: Int, at: Micros, orderID: String, value: Int64, groups: [String?]) {
        self.family = family
        self.at = at
        self.orderID = orderID
        self.value = value
        self.groups = groups
    }
}

/// Computes an order's drill rows from its facts. A store that keeps drill rows asks the `FactsRollup` it
/// was opened with for this (the KPI engine's rollup provides it) for every facts transition, in the
/// transaction that changes the facts, so rows and facts never disagree.
public protocol DrillProjection: Sendable {
    /// Names what the rows mean; a store whose rows were written for another layout (or by a writer without
    /// a projection) rebuilds them from the stored facts as it opens, and until then answers no drill reads.
    var drillLayout: String { get }
    /// Every row the order contributes now (none for an order that contributes nothing). A pure function.
    func drillRows(_ facts: OrderFacts) -> [DrillRow]
}

/// Which rows a drill-down reads: one family, `at` within `range`, and optionally one group of one dimension.
public struct DrillSelection: Hashable, Sendable {
    public var family: Int
    public var range: Range<Micros>
    /// Index into `DrillRow.groups`, and the wanted group (nil: the null group); nil for every group.
    public var dimension: Int?
    public var group: String?

    public init(family: Int, range: Range<Micros>, dimension: Int? = nil, group: String? = nil) {
        self.family = family
        self.range = range
        self.dimension = dimension
        self.group = group
    }

    public func contains(_ r: DrillRow) -> Bool {
        r.family == family && range.contains(r.at) && (dimension.map { r.groups.count > $0 ? r.groups[$0] == group : group == nil } ?? true)
    }
}

/// Reads drill rows.
///
/// Contract: after an append returns, the rows of the orders it changed are what `DrillProjection.drillRows`
/// gives for their current facts, whatever order the events arrived in (resends, late events, retention).
public protocol DrillReader: Sendable {
    /// Whether the store keeps current rows of `layout`; when false the caller computes from the facts.
    func drillRowsAvailable(layout: String) throws -> Bool
    /// How many rows the selection holds.
    func drillCount(_ s: DrillSelection) throws -> Int
    /// The value at 0-based position `rank` of the selection's values sorted from largest to smallest (nil past the end).
    func drillValue(_ s: DrillSelection, descendingRank rank: Int) throws -> Int64?
    /// The selected rows with `value >= atLeast` with the `limit` largest values, and every further row tied
    /// with the smallest value among those (so the caller can break ties its own way), in no particular order.
    func drillTop(_ s: DrillSelection, atLeast: Int64?, limit: Int) throws -> [DrillRow]
    /// The current facts of an order (for the words of a drill-down's reason).
    func facts(orderID: String) throws -> OrderFacts?
}
