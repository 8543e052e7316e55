import WaybillModel

/// The orders whose current stage is one stage, longest there first (the overview's "stuck longest"
/// panel and `GET /api/v1/stuck`).
public struct StageOrders: Sendable, Equatable {
    /// How many orders are in the stage (also those beyond the limit).
    public var count: Int
    /// The orders that reached the stage earliest, by that time then id; at most the limit asked.
    public var orders: [(id: String, since: Micros)]

    public init(count: Int, orders: [(id: String, since: Micros)]) {
        self.count = count
        self.orders = orders
    }

    public static func == (a: StageOrders, b: StageOrders) -> Bool {
        a.count == b.count && a.orders.map(\.id) == b.orders.map(\.id) && a.orders.map(\.since) == b.orders.map(\.since)
    }
}

/// Reads orders by their current stage from an index the store keeps with the facts, so an answer never
/// waits for an index to be built.
///
/// Contract: an order is in stage `s` when the latest lifecycle stage it reached (`OrderFacts.state`,
/// `cancelled` counting as the latest) is `s`; `since` is when it first reached `s`
/// (`OrderFacts.stateSince`). Only orders that reached `s` at or before `reachedBy` count. The answer
/// equals `DeadlineReader.overdueOrders(after: s, expect: the next stage, cutoff: reachedBy, ...)` with
/// no grouping, for every open stage. After an append returns, its events count in the answers.
public protocol StageReader: Sendable {
    func ordersInStage(_ stage: Stage, reachedBy: Micros, limit: Int) throws -> StageOrders
}
