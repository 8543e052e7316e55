import WaybillModel
import WaybillStore

extension StoreConformance {
    /// Arrival as live producers make it: many orders' events interleaved by time, with stragglers,
    /// resends and links arriving before the events they join. (Run by the engines' test suites; not yet
    /// part of `checks`.)
    public static let interleavedChecks: [Check] = [
        Check(name: "interleaved arrival with stragglers, resends and early links gives the traces, facts and searches of one append",
              body: interleavedIndependence),
    ]

    /// The workload of 80 orders merged by event time (so each write holds events of many orders), a
    /// tenth of the events moved up to 40 places later (stragglers), a fifth sent twice, and every
    /// linked key's events sometimes ahead of the link; written in appends of 1 to 300 events, also
    /// across a reopen, it must give what one append of the events in workload order gives.
    static func interleavedIndependence(_ make: Factory) async throws {
        let events = workload(orders: 80)
        let reference: [String]
        do {
            let store = try fresh(make)
            defer { store.close() }
            _ = try await store.append(events)
            reference = try snapshot(store, events)
        }
        var rng = SplitMix64(seed: 0x1A7E)
        for (round, maxAppend) in [1, 7, 50, 300].enumerated() {
            var stream = events.enumerated().sorted { ($0.element.time, $0.offset) < ($1.element.time, $1.offset) }.map(\.element)
            // Stragglers: an event moved later by up to 40 places.
            for i in stride(from: stream.count - 1, through: 0, by: -1) where rng.next() % 10 == 0 {
                let e = stream.remove(at: i)
                stream.insert(e, at: min(stream.count, i + Int(rng.next() % 40) + 1))
            }
            // Resends: a fifth again, anywhere (so also before the first sending).
            for e in events where rng.next() % 5 == 0 {
                stream.insert(e, at: Int(rng.next() % UInt64(stream.count + 1)))
            }
            let storage = try make()
            var store = try storage.open()
            var i = 0
            var appends = 0
            while i < stream.count {
                let n = min(Int(rng.next() % UInt64(maxAppend)) + 1, stream.count - i)
                let r = try await store.append(Array(stream[i..<(i + n)]))
                try expect(r.accepted + r.duplicates == n, "round \(round): append result \(r) for \(n) events")
                i += n
                appends += 1
                if appends == 5 {
                    // Reopened in the middle: idempotency and facts carry over.
                    store.close()
                    store = try storage.open()
                }
            }
            let stored = try store.stats().events
            try expect(stored == events.count, "round \(round): \(stored) events stored, want \(events.count)")
            let got = try snapshot(store, events)
            store.close()
            try expect(got == reference, "round \(round): interleaved stream changed the result: "
                       + (zip(got, reference).first { $0 != $1 }.map { "\n got \($0.0)\nwant \($0.1)" } ?? "count"))
        }
    }
}
