import WaybillModel
import WaybillStore

extension SQLiteStore: StageReader {
    /// Two reads of the `orders_state` index (state, state_since) that every store has had since its
    /// first version: a covering count of the stage's range, and its first entries in `state_since`
    /// order (ties by order id), reading an order's row only for the orders listed.
    public func ordersInStage(_ stage: Stage, reachedBy: Micros, limit: Int) throws -> StageOrders {
        try readers.with { c in
            let n = try c.prepare("SELECT count(*) FROM orders INDEXED BY orders_state WHERE state = ?1 AND state_since <= ?2")
            defer { n.reset() }
            n.bind(1, Int64(stage.rawValue)).bind(2, reachedBy)
            let count = try n.step() ? n.int(0) : 0
            guard limit > 0, count > 0 else { return StageOrders(count: count, orders: []) }
            // Walk the index in `state_since` order; once `limit` orders are read, only those tied with the
            // last one's time can still come before it (by id).
            let s = try c.prepare("SELECT state_since, order_id FROM orders INDEXED BY orders_state WHERE state = ?1 AND state_since <= ?2 ORDER BY state_since")
            defer { s.reset() }
            s.bind(1, Int64(stage.rawValue)).bind(2, reachedBy)
            var found: [(id: String, since: Micros)] = []
            while try s.step() {
                let at = s.int64(0)
                if found.count >= limit, let last = found.last, at > last.since { break }
                found.append((s.text(1), at))
            }
            found.sort { $0.since != $1.since ? $0.since < $1.since : $0.id < $1.id }
            if found.count > limit { found.removeLast(found.count - limit) }
            return StageOrders(count: count, orders: found)
        }
    }
}
