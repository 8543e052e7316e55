import Foundation
import WaybillModel
import WaybillStore

extension StoreConformance {
    /// `StageReader` (optional: the stuck-orders panel falls back to `DeadlineReader` without it).
    static let stageChecks: [Check] = [
        Check(name: "orders by current stage: counts, longest there first with ties by id, as overdueOrders answers", body: ordersByStage),
    ]

    static func ordersByStage(_ make: Factory) async throws {
        let store = try fresh(make)
        defer { store.close() }
        guard let reader = store as? any StageReader else { return }
        // 48 orders, four accepted in each minute (ties), moving on to different stages, a few cancelled;
        // sent in two appends, out of order, the second resending part of the first.
        var events: [CloudEvent] = []
        for i in 0..<48 {
            let o = "STG-\(String(format: "%03d", 47 - i))"
            let m = i / 4
            events.append(ev("\(o)-acc", "order.accepted", m, o, ["channel": "web", "lines": [["line": 1, "sku": "A", "qty": 2]]]))
            if i % 7 == 6 { events.append(ev("\(o)-can", "order.cancelled", m + 5, o)); continue }
            if i % 3 == 0 { continue }
            events.append(ev("\(o)-alloc", "order.allocated", m + (i % 2) * 3 + 2, o, source: "allocation",
                             ["warehouse": "DC-EAST", "lines": [["line": 1, "qty_allocated": 2]]]))
            if i % 3 == 1 { continue }
            events.append(ev("\(o)-rel", "order.released", m + 40, o, source: "wms", ["warehouse": "DC-EAST"]))
            if i % 2 == 0 { events.append(ev("\(o)-ship", "order.shipped", m + 90, o, source: "wms", ["warehouse": "DC-EAST"])) }
        }
        let shuffled = events.reversed() as [CloudEvent]
        _ = try await store.append(Array(shuffled[..<(shuffled.count / 2)]))
        _ = try await store.append(Array(shuffled[(shuffled.count / 3)...]))
        let facts = referenceFacts(events)
        let late = t0 + 86_400_000_000
        for stage in [Stage.accepted, .allocated, .released, .shipped, .picked] {
            for (reachedBy, limit) in [(late, 5), (late, 100), (t0 + 6 * 60_000_000, 3), (late, 0)] {
                let expected = facts.values.filter { $0.state == stage && $0.stateSince! <= reachedBy }
                    .map { (id: $0.orderID, since: $0.stateSince!) }
                    .sorted { $0.since != $1.since ? $0.since < $1.since : $0.id < $1.id }
                let got = try reader.ordersInStage(stage, reachedBy: reachedBy, limit: limit)
                let want = StageOrders(count: expected.count, orders: Array(expected.prefix(limit)))
                try expect(got == want, "\(stage.name) by \(RFC3339.format(reachedBy)), limit \(limit): \(got.count) \(got.orders.map(\.id)), expected \(want.count) \(want.orders.map(\.id))")
                if limit > 0, stage < .invoiced {
                    try await store.prepareDeadlines(after: stage)
                    let next = Stage(rawValue: stage.rawValue + 1)!
                    let overdue = try store.overdueOrders(after: stage, expect: next, cutoff: reachedBy, asOf: late, replay: false, groupBy: .none, limit: limit)
                    try expect((overdue.first?.count ?? 0) == got.count && (overdue.first?.orders ?? []) == got.orders.map(\.id),
                               "\(stage.name): overdueOrders \(overdue) differs from ordersInStage \(got.orders.map(\.id))")
                }
            }
        }
    }
}
