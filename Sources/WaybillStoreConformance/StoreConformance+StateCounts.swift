import WaybillModel
import WaybillStore

extension StoreConformance {
    /// `OrderStateCounter` (an optional capability: an engine without it has no `waybill_open_orders`).
    static let stateCountChecks: [Check] = [
        Check(name: "orders are counted once under their current state", body: ordersCountedByState),
    ]

    static func ordersCountedByState(_ make: Factory) async throws {
        let store = try fresh(make)
        defer { store.close() }
        guard let counter = store as? any OrderStateCounter else { return }
        try expect(try counter.orderCountsByState().isEmpty, "an empty store counts no order")
        let events = workload(orders: 30)
        // In two appends, the second resending part of the first, so that states move and duplicates change nothing.
        let half = events.count / 2
        _ = try await store.append(Array(events[..<half]))
        _ = try await store.append(Array(events[(half / 2)...]))
        var expected: [Stage?: Int] = [:]
        for (_, f) in referenceFacts(events) { expected[f.state, default: 0] += 1 }
        let counts = try counter.orderCountsByState()
        try expect(counts.filter { $0.value > 0 } == expected, "counts by state: \(counts), expected \(expected)")
        try expect(counts.values.reduce(0, +) == (try store.stats().orders), "the counts add up to the orders stored")
    }
}
