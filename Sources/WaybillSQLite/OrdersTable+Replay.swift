import WaybillModel
import WaybillStore

extension OrdersTable {
    /// Every stored order's facts as a transition from nothing, in row order, handed over `size` at a
    /// time: how derived tables (rollups, drill rows) are rebuilt from the orders after a layout change.
    static func replayFacts(_ conn: Connection, size: Int = 10_000, _ apply: ([FactsTransition]) throws -> Void) throws {
        let s = try conn.prepare("SELECT \(FactsCodec.rowColumns) FROM orders ORDER BY rid")
        defer { s.reset() }
        var batch: [FactsTransition] = []
        while try s.step() {
            guard let f = FactsCodec.decode(s, at: 0) else { continue }
            batch.append(FactsTransition(old: nil, new: f))
            if batch.count >= size {
                try apply(batch)
                batch.removeAll(keepingCapacity: true)
            }
        }
        try apply(batch)
    }
}
