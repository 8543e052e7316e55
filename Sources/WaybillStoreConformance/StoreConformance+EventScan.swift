import WaybillModel
import WaybillStore

extension StoreConformance {
    static let eventScanChecks: [Check] = [
        Check(name: "event scan pages a window in time order, each event once, in bounded pages", body: eventScan),
    ]

    /// `EventScanner`: shuffled, duplicated arrival with several events at the same instant; every page
    /// size from 1 up returns the window's events exactly once, in time order, and nothing outside it.
    static func eventScan(_ make: Factory) async throws {
        let store = try fresh(make)
        defer { store.close() }
        // A capability: an engine without it has no OCEL export (the server answers 501), and skips this.
        guard let scanner = store as? any EventScanner else {
            print("SKIPPED event scan: the engine does not implement EventScanner")
            return
        }
        var events = workload(orders: 9)
        // Same instant, different events: ties the cursor must not split or repeat.
        for i in 0..<5 { events.append(ev("tie-\(i)", "order.exception", 14, "ORD-102", ["reason": "tie", "stage": "pick"])) }
        var rng = SplitMix64(seed: 15)
        events.shuffle(using: &rng)
        for chunk in stride(from: 0, to: events.count, by: 7).map({ Array(events[$0..<min($0 + 7, events.count)]) }) {
            _ = try await store.append(chunk + chunk.prefix(2))
        }
        let from = t0 + 5 * 60_000_000, to = t0 + 3000 * 60_000_000
        let window = from..<to
        let expected = events.filter { window.contains($0.time) }
        let expectedKeys = Set(expected.map { "\($0.source)|\($0.id)" })
        try expect(expected.count > 20 && expected.count < events.count, "the window cuts the workload")
        for pageSize in [1, 2, 3, 5, 8, 1_000] {
            var seen: [CloudEvent] = []
            var cursor: EventScanCursor?
            var pages = 0
            repeat {
                let page = try scanner.scanEvents(in: window, after: cursor, limit: pageSize)
                try expect(page.events.count <= pageSize, "page of \(page.events.count) > limit \(pageSize)")
                try expect(!page.events.isEmpty || page.next == nil, "an empty page must be the last")
                seen += page.events
                cursor = page.next
                pages += 1
                try expect(pages <= expected.count + 2, "scan does not end (page size \(pageSize))")
            } while cursor != nil
            let keys = seen.map { "\($0.source)|\($0.id)" }
            try expect(keys.count == Set(keys).count, "page size \(pageSize): an event came twice")
            try expect(Set(keys) == expectedKeys, "page size \(pageSize): \(Set(keys).symmetricDifference(expectedKeys).sorted().prefix(5)) differ")
            try expect(zip(seen, seen.dropFirst()).allSatisfy { $0.time <= $1.time }, "page size \(pageSize): not in time order")
            for e in seen {
                let original = events.first { $0.source == e.source && $0.id == e.id }!
                try expect(e.type == original.type && e.subject == original.subject && e.time == original.time && e.data == original.data,
                           "event \(e.id) read back differs")
            }
        }
        let empty = try scanner.scanEvents(in: t0 - 100..<t0 - 1, after: nil, limit: 10)
        try expect(empty.events.isEmpty && empty.next == nil, "a window without events is one empty page")
    }
}
