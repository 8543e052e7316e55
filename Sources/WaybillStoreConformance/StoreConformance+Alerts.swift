import Foundation
import WaybillModel
import WaybillStore

/// `DeadlineReader` (the SLA rules' open deadlines) and `AlertStore` (alert records and the outbox).
extension StoreConformance {
    static let deadlineChecks: [Check] = [
        Check(name: "a deadline is open from `after` by the cutoff until `expect`, a later stage or `cancelled` by `asOf`", body: deadlineBounds),
        Check(name: "open deadlines equal a reference from facts, live and replayed, for every grouping and limit", body: deadlinesEqualReference),
    ]

    static let alertChecks: [Check] = [
        Check(name: "alert records: upserts replace, deletes follow upserts, by fingerprint, also after reopening", body: alertRecords),
        Check(name: "outbox: notifications pending as committed, due by next attempt then id, newest first", body: outboxOrder),
        Check(name: "outbox: delivery outcomes, pruning of finished notifications only, all kept after reopening", body: outboxDelivery),
    ]

    static let minute: Micros = 60_000_000

    /// An order event reaching `stage` at minute `m`.
    static func stage(_ order: String, _ stage: Stage, _ m: Int, warehouse: String? = "DC-A", channel: String? = "web") -> CloudEvent {
        var data: [String: JSONValue] = [:]
        switch stage {
        case .accepted: data = ["channel": channel.map(JSONValue.string) ?? .null, "lines": [["line": 1, "sku": "A", "qty": 1]]]
        case .allocated: data = ["warehouse": warehouse.map(JSONValue.string) ?? .null, "lines": [["line": 1, "qty_allocated": 1]]]
        case .shipped: data = ["warehouse": warehouse.map(JSONValue.string) ?? .null, "carrier": "UPS"]
        default: break
        }
        return ev("\(order)-\(stage.name)", "order." + stage.name, m, order, .object(data))
    }

    static func deadlineBounds(_ make: Factory) async throws {
        let store = try fresh(make)
        defer { store.close() }
        _ = try await store.append([
            stage("SO-1", .accepted, 0),
            stage("SO-2", .accepted, 0), stage("SO-2", .cancelled, 5),
            stage("SO-3", .accepted, 1),
            stage("SO-4", .accepted, 0), stage("SO-4", .shipped, 3),
            stage("SO-5", .accepted, 2), stage("SO-5", .allocated, 4),
        ])
        // Twice: preparing is idempotent.
        for after in [Stage.accepted, .accepted, .allocated] { try await store.prepareDeadlines(after: after) }
        func overdue(cutoff: Micros, asOf: Int, replay: Bool, limit: Int = 10) throws -> [OverdueGroup] {
            try store.overdueOrders(after: .accepted, expect: .allocated, cutoff: cutoff, asOf: t0 + Micros(asOf) * minute, replay: replay,
                                    groupBy: .none, limit: limit)
        }
        for replay in [false, true] {
            try expect(try overdue(cutoff: t0 - 1, asOf: 15, replay: replay).isEmpty, "replay \(replay): nothing reached `after` by the cutoff")
            try expect(try overdue(cutoff: t0, asOf: 15, replay: replay) == [OverdueGroup(value: nil, count: 1, oldest: t0, orders: ["SO-1"])],
                       "replay \(replay): the cutoff is inclusive; cancelled, and a later stage than `expect`, close a deadline")
            try expect(try overdue(cutoff: t0 + minute, asOf: 16, replay: replay) == [OverdueGroup(value: nil, count: 2, oldest: t0, orders: ["SO-1", "SO-3"])],
                       "replay \(replay): two overdue")
            try expect(try overdue(cutoff: t0 + minute, asOf: 16, replay: replay, limit: 1).first?.orders == ["SO-1"],
                       "replay \(replay): the limit keeps the longest overdue")
        }
        // Replay ignores events after `asOf`: SO-2 is cancelled at minute 5, SO-4 shipped at 3.
        try expect(try overdue(cutoff: t0, asOf: 4, replay: true).first?.orders == ["SO-1", "SO-2"], "replay sees only events up to asOf")
        // A late allocation (its time before now) closes SO-1's deadline, after the append returns.
        _ = try await store.append([stage("SO-1", .allocated, 20)])
        for replay in [false, true] {
            try expect(try overdue(cutoff: t0 + 15 * minute, asOf: 30, replay: replay).first?.orders == ["SO-3"], "replay \(replay): after the late allocation")
        }
        try expect(try overdue(cutoff: t0 + 15 * minute, asOf: 19, replay: true).first?.orders == ["SO-1", "SO-3"], "replay before the late allocation")
        for (after, expected) in [(Stage.accepted, Stage.cancelled), (.allocated, .accepted), (.accepted, .accepted)] {
            for replay in [false, true] {
                let got = try store.overdueOrders(after: after, expect: expected, cutoff: t0 + 60 * minute, asOf: t0 + 60 * minute, replay: replay,
                                                  groupBy: .none, limit: 10)
                try expect(got.isEmpty, "\(after.name) -> \(expected.name), replay \(replay): no deadlines, got \(got)")
            }
        }
    }

    /// What `overdueOrders` must answer, computed from the facts of the events up to `asOf`.
    static func overdueReference(_ events: [CloudEvent], after: Stage, expect: Stage, cutoff: Micros, asOf: Micros,
                                 groupBy: OverdueGrouping, limit: Int) -> [OverdueGroup] {
        guard after < expect, expect != .cancelled else { return [] }
        var groups: [String?: [(at: Micros, id: String)]] = [:]
        for f in referenceFacts(events.filter { $0.time <= asOf }).values {
            guard let at = f.stageTimes[after], at <= cutoff,
                  !f.stageTimes.keys.contains(where: { $0 == .cancelled || $0 >= expect }) else { continue }
            let g: String?
            switch groupBy {
            case .none: g = nil
            case .warehouse: g = f.allocationWarehouse ?? f.shipmentWarehouse
            case .channel: g = f.channel
            case .region: g = f.region
            }
            groups[g, default: []].append((at, f.orderID))
        }
        return groups.map { g, members in
            let sorted = members.sorted { $0.at != $1.at ? $0.at < $1.at : $0.id < $1.id }
            return OverdueGroup(value: g, count: sorted.count, oldest: sorted[0].at, orders: sorted.prefix(limit).map(\.id))
        }.sorted { a, b in a.value == nil ? b.value != nil : (b.value != nil && a.value! < b.value!) }
    }

    static func deadlinesEqualReference(_ make: Factory) async throws {
        var rng = SplitMix64(seed: 3)
        var events: [CloudEvent] = []
        for i in 0..<200 {
            let o = "SO-\(i)"
            let t = Int(rng.next() % 120)
            // Some orders without a warehouse at allocation (grouped by their shipment's) or without a channel.
            let wh = i % 7 == 0 ? nil : ["DC-A", "DC-B", "DC-C"][i % 3]
            events.append(stage(o, .accepted, t, channel: i % 5 == 0 ? nil : ["web", "edi"][i % 2]))
            let stages = Int(rng.next() % 5)
            let allocated = t + Int(rng.next() % 60)
            if stages >= 1 { events.append(stage(o, .allocated, allocated, warehouse: wh)) }
            if stages == 2 || stages == 3 { events.append(stage(o, .released, allocated + 5)) }
            if stages == 3 { events.append(stage(o, .shipped, allocated + 5 + Int(rng.next() % 60), warehouse: "DC-S")) }
            if stages == 4 { events.append(stage(o, .cancelled, allocated + 10)) }
        }
        let store = try fresh(make)
        defer { store.close() }
        var stream = events + events.filter { _ in rng.next() % 4 == 0 }
        stream.shuffle(using: &rng)
        for chunk in stride(from: 0, to: stream.count, by: 37) { _ = try await store.append(Array(stream[chunk..<min(chunk + 37, stream.count)])) }
        let rules: [(Stage, Stage)] = [(.accepted, .allocated), (.accepted, .shipped), (.allocated, .shipped), (.released, .delivered)]
        for after in Set(rules.map(\.0)) { try await store.prepareDeadlines(after: after) }
        let groupings: [OverdueGrouping] = [.none, .warehouse, .channel, .region]
        // Live, with every event at or before `asOf`, and replays of earlier instants.
        let last = t0 + 300 * minute
        for asOf in [last, t0 + 30 * minute, t0 + 60 * minute, t0 + 90 * minute, t0 + 150 * minute] {
            for (after, expected) in rules {
                for groupBy in groupings {
                    for limit in [0, 2, 500] {
                        let want = overdueReference(events, after: after, expect: expected, cutoff: asOf - 20 * minute, asOf: asOf,
                                                    groupBy: groupBy, limit: limit)
                        for replay in asOf == last ? [false, true] : [true] {
                            let got = try store.overdueOrders(after: after, expect: expected, cutoff: asOf - 20 * minute, asOf: asOf,
                                                              replay: replay, groupBy: groupBy, limit: limit)
                            try expect(got == want, "\(after.name) -> \(expected.name) at minute \((asOf - t0) / minute), by \(groupBy), "
                                       + "limit \(limit), replay \(replay):\n got \(got)\nwant \(want)")
                        }
                    }
                }
            }
        }
        let byWarehouse = overdueReference(events, after: .accepted, expect: .shipped, cutoff: last, asOf: last, groupBy: .warehouse, limit: 0)
        try expect(byWarehouse.count > 3 && byWarehouse.first?.value == nil, "the workload has several warehouse groups and the null group")
    }

    static func records(_ store: Store) throws -> [String] {
        try store.alertRecords().map { "\($0.fingerprint)=\($0.record)" }
    }

    static func alertRecords(_ make: Factory) async throws {
        let storage = try make()
        do {
            let store = try storage.open()
            defer { store.close() }
            try expect(try records(store).isEmpty, "no records in a fresh store")
            var first = AlertCommit()
            first.upserts = [("b", [2]), ("a", [1]), ("c", [3])]
            try await store.commitAlerts(first)
            try expect(try records(store) == ["a=[1]", "b=[2]", "c=[3]"], "records by fingerprint")
            var second = AlertCommit()
            second.upserts = [("a", [9, 9]), ("c", [4])]
            second.deletes = ["c", "b", "never-stored"]
            try await store.commitAlerts(second)
            try expect(try records(store) == ["a=[9, 9]"], "an upsert replaces; a delete follows the upserts")
            try await store.commitAlerts(AlertCommit())
        }
        let store = try storage.open()
        defer { store.close() }
        try expect(try records(store) == ["a=[9, 9]"], "records after reopening")
    }

    static func notification(_ n: Int, nextAt: Micros) -> OutboxItem {
        OutboxItem(id: 77, hook: "hook-\(n % 2)", fingerprint: "fp-\(n)", kind: n % 2 == 0 ? "firing" : "resolved", body: Array("body \(n)".utf8),
                   created: t0 + Micros(n), nextAt: nextAt, attempts: 5, status: .failed, lastError: "ignored", doneAt: t0)
    }

    /// The items as committed: what the store assigns (id, pending, no attempts) and keeps.
    static func committed(_ items: [OutboxItem]) -> [OutboxItem] {
        items.map { OutboxItem(hook: $0.hook, fingerprint: $0.fingerprint, kind: $0.kind, body: $0.body, created: $0.created, nextAt: $0.nextAt) }
    }

    static func unnumbered(_ items: [OutboxItem]) -> [OutboxItem] {
        items.map { var i = $0; i.id = 0; return i }
    }

    static func outboxOrder(_ make: Factory) async throws {
        let store = try fresh(make)
        defer { store.close() }
        let n = [notification(0, nextAt: t0 + 10), notification(1, nextAt: t0 + 5), notification(2, nextAt: t0 + 10),
                 notification(3, nextAt: t0 + 100), notification(4, nextAt: t0 + 5)]
        var first = AlertCommit()
        first.notifications = Array(n[0..<4])
        try await store.commitAlerts(first)
        var second = AlertCommit()
        second.notifications = [n[4]]
        try await store.commitAlerts(second)
        let recent = try store.recentNotifications(limit: 10)
        try expect(unnumbered(recent) == committed(n.reversed()), "newest first, pending, no attempts: \(recent)")
        try expect(zip(recent, recent.dropFirst()).allSatisfy { $0.id > $1.id }, "ids grow in commit order: \(recent.map(\.id))")
        try expect(try store.recentNotifications(limit: 2) == Array(recent.prefix(2)), "the limit keeps the newest")
        let due = try store.dueNotifications(now: t0 + 10, limit: 10)
        try expect(unnumbered(due) == committed([n[1], n[4], n[0], n[2]]), "due at now, by next attempt then id: \(due.map(\.fingerprint))")
        try expect(try store.dueNotifications(now: t0 + 10, limit: 3) == Array(due.prefix(3)), "the limit keeps the earliest due")
        try expect(try store.dueNotifications(now: t0 + 4, limit: 10).isEmpty, "nothing due before its next attempt")
    }

    static func outboxDelivery(_ make: Factory) async throws {
        let storage = try make()
        let n = (0..<4).map { notification($0, nextAt: t0) }
        let ids: [Int64]
        let outcomes: [OutboxItem]
        do {
            let store = try storage.open()
            defer { store.close() }
            var c = AlertCommit()
            c.notifications = n
            try await store.commitAlerts(c)
            ids = try store.recentNotifications(limit: 10).reversed().map(\.id)
            try await store.recordDelivery(id: ids[0], attempts: 1, outcome: .retry(at: t0 + 50, error: "503"))
            try expect(try store.dueNotifications(now: t0 + 49, limit: 10).map(\.id) == Array(ids[1...]), "a retry is not due before its time")
            let retried = try store.dueNotifications(now: t0 + 50, limit: 10)
            try expect(retried.map(\.id) == Array(ids[1...]) + [ids[0]], "a retry is due again at its time")
            var want = committed([n[0]])[0]
            want.id = ids[0]
            want.nextAt = t0 + 50
            want.attempts = 1
            want.lastError = "503"
            try expect(retried.last == want, "a retry stays pending with its attempts and error: \(String(describing: retried.last))")
            try await store.recordDelivery(id: ids[0], attempts: 2, outcome: .delivered(at: t0 + 60))
            try await store.recordDelivery(id: ids[1], attempts: 1, outcome: .failed(at: t0 + 70, error: "400"))
            try await store.recordDelivery(id: ids[2], attempts: 3, outcome: .delivered(at: t0 + 100))
            try expect(try store.dueNotifications(now: t0 + 1_000, limit: 10).map(\.id) == [ids[3]], "only pending notifications are due")
            outcomes = try store.recentNotifications(limit: 10)
            let byID = Dictionary(uniqueKeysWithValues: outcomes.map { ($0.id, $0) })
            let delivered = byID[ids[0]], failed = byID[ids[1]]
            try expect(delivered?.status == .delivered && delivered?.attempts == 2 && delivered?.doneAt == t0 + 60 && delivered?.lastError == nil,
                       "delivered: done at its time, the error cleared: \(String(describing: delivered))")
            try expect(failed?.status == .failed && failed?.attempts == 1 && failed?.doneAt == t0 + 70 && failed?.lastError == "400",
                       "failed: done at its time, with the error: \(String(describing: failed))")
        }
        let store = try storage.open()
        defer { store.close() }
        try expect(try store.recentNotifications(limit: 10) == outcomes, "the outbox after reopening")
        var prune = AlertCommit()
        prune.pruneBefore = t0 + 100
        try await store.commitAlerts(prune)
        try expect(try store.recentNotifications(limit: 10).map(\.id) == [ids[3], ids[2]],
                   "pruning drops notifications finished before the cutoff, never pending ones")
        var more = AlertCommit()
        more.notifications = [notification(9, nextAt: t0)]
        try await store.commitAlerts(more)
        try expect(try store.recentNotifications(limit: 1).first.map { $0.id > ids[3] } == true, "a new notification's id is above every id in the outbox")
    }
}
