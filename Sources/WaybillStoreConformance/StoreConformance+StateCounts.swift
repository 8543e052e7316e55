import Foundation
import WaybillModel
import WaybillStore

extension StoreConformance {
    /// `OrderStateCounter` (an optional capability: an engine without it has no `waybill_open_orders`).
    static let stateCountChecks: [Check] = [
        Check(name: "orders are counted once under their current state", body: ordersCountedByState),
        Check(name: "each group commit of events and spans is reported", body: commitsAreReported),
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

    /// `CommitObservable` (optional): every append's transaction is reported with its signal, and a
    /// removed observer is told nothing more.
    static func commitsAreReported(_ make: Factory) async throws {
        let store = try fresh(make)
        defer { store.close() }
        guard let observable = store as? any CommitObservable else { return }
        final class Seen: @unchecked Sendable {
            let lock = NSLock()
            var calls: [(String, Double)] = []
        }
        let seen = Seen()
        observable.observeCommits { signal, seconds in seen.lock.withLock { seen.calls.append((signal, seconds)) } }
        _ = try await store.append(workload(orders: 2))
        _ = try await store.appendSpans([span("t1", "s1", service: "svc", start: 0)])
        let calls = seen.lock.withLock { seen.calls }
        try expect(calls.contains { $0.0 == "events" } && calls.contains { $0.0 == "spans" }, "commits reported: \(calls)")
        try expect(calls.allSatisfy { $0.1 >= 0 && $0.1 < 60 }, "durations: \(calls)")
        observable.observeCommits(nil)
        _ = try await store.append(workload(orders: 3))
        try expect(seen.lock.withLock { seen.calls.count } == calls.count, "no report after the observer is removed")
    }
}
