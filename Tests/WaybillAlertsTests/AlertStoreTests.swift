import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillSQLite
import WaybillStore
@testable import WaybillAlerts
import WaybillTestSupport

/// Records every POST; answers with the scripted results first, then 200.
final class RecordingTransport: NotificationTransport, @unchecked Sendable {
    private let lock = NSLock()
    private var script: [TransportResult]
    private(set) var posts: [(url: String, headers: [String: String], body: [UInt8])] = []
    init(_ script: [TransportResult] = []) { self.script = script }
    func post(url: String, headers: [(String, String)], body: [UInt8], timeout: Micros) async -> TransportResult {
        lock.withLock {
            posts.append((url, Dictionary(headers, uniquingKeysWith: { a, _ in a }), body))
            return script.isEmpty ? .status(200, body: "ok") : script.removeFirst()
        }
    }
    var count: Int { lock.withLock { posts.count } }
}

func orderEvent(_ order: String, _ stage: String, _ t: Micros, warehouse: String? = nil) -> CloudEvent {
    var data: [String: JSONValue] = [:]
    if stage == "accepted" { data = ["channel": "web", "lines": [["line": 1, "sku": "A", "qty": 1]]] }
    if stage == "allocated" { data = ["warehouse": .string(warehouse ?? "DC-EAST"), "lines": [["line": 1, "qty_allocated": 1]]] }
    if stage == "cancelled" { data = ["reason": "customer"] }
    return CloudEvent(id: "\(order)-\(stage)", source: "oms", type: "order." + stage, time: t, subject: order, data: .object(data))
}

@Suite struct AlertStoreTests {
    static let t0 = RFC3339.parse("2026-11-20T00:00:00Z")!
    static let minute: Micros = 60_000_000
    static let sla = AlertRule(name: "OrderNotAllocated", condition: .sla(SLARule(after: .accepted, expect: .allocated, within: 15 * minute, by: nil)),
                               severity: "ticket")

    func config(_ rules: [AlertRule], hooks: [HookConfig] = []) -> AlertConfig {
        var c = AlertConfig()
        c.rules = rules
        c.hooks = hooks
        c.evaluationInterval = Self.minute
        c.groupWait = 0
        c.groupInterval = 0
        return c
    }

    static let hook = HookConfig(name: "ops", url: "http://127.0.0.1:9/hook", secretEnv: "HOOK_SECRET", format: .waybill, sendResolved: true, timeout: 1_000_000)

    @Test func slaFiresAtExactlyWithinResolvesOnLateExpectAndNeverForCancelled() async throws {
        let path = temporaryDatabase()
        let store = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        defer { store.close() }
        _ = try await store.append([
            orderEvent("SO-1", "accepted", Self.t0),
            orderEvent("SO-2", "accepted", Self.t0),
            orderEvent("SO-2", "cancelled", Self.t0 + 5 * Self.minute),
            orderEvent("SO-3", "accepted", Self.t0 + Self.minute),
        ])
        let source = StoreAlertSource(store: store)
        try await source.prepare(Self.sla)
        let ev = AlertEvaluator(source: source)
        for replay in [false, true] {
            #expect(try ev.samples(Self.sla, at: Self.t0 + 15 * Self.minute - 1, replay: replay).isEmpty)
            let at = try ev.samples(Self.sla, at: Self.t0 + 15 * Self.minute, replay: replay)
            #expect(at.map(\.orders) == [["SO-1"]], "replay \(replay)")
            #expect(at.first?.since == Self.t0 + 15 * Self.minute)
            #expect(try ev.samples(Self.sla, at: Self.t0 + 16 * Self.minute, replay: replay).first?.orders == ["SO-1", "SO-3"])
        }
        // The allocation arrives late (its time is before now): SO-1 resolves; SO-3 is still overdue.
        _ = try await store.append([orderEvent("SO-1", "allocated", Self.t0 + 20 * Self.minute)])
        let now = Self.t0 + 30 * Self.minute
        #expect(try ev.samples(Self.sla, at: now, replay: false).first?.orders == ["SO-3"])
        #expect(try ev.samples(Self.sla, at: now, replay: true).first?.orders == ["SO-3"])
        // What else closes or keeps open a deadline is the store's contract (`DeadlineReader`), checked by `StoreConformance`.
    }

    /// Live evaluation at each minute, with events arriving as time passes (shuffled, duplicated, some late),
    /// equals a replay of the same instants after everything has arrived.
    @Test func replayEqualsLiveEvaluationWhateverTheArrivalOrder() async throws {
        var rng = SplitMix64(seed: 9)
        var events: [CloudEvent] = []
        for i in 0..<60 {
            let o = "SO-\(i)"
            let t = Self.t0 + Micros(i) * Self.minute / 2
            events.append(orderEvent(o, "accepted", t))
            switch i % 4 {
            case 0: events.append(orderEvent(o, "allocated", t + Micros(rng.next() % 30) * Self.minute, warehouse: ["DC-EAST", "DC-WEST"][i % 2]))
            case 1: events.append(orderEvent(o, "cancelled", t + Micros(rng.next() % 30) * Self.minute))
            default: break
            }
        }
        let ticks = (10...50).map { Self.t0 + Micros($0) * Self.minute }
        let rules = [Self.sla, AlertRule(name: "ByWarehouse", condition: .sla(SLARule(after: .accepted, expect: .allocated, within: 10 * Self.minute, by: .warehouse)))]
        var live: [[AlertRecord]] = []
        let path = temporaryDatabase()
        let store = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        defer { store.close() }
        let engine = AlertEngine(config: config(rules), source: StoreAlertSource(store: store), store: store, baseURL: "http://w")
        var pending = events.shuffled(using: &rng)
        for t in ticks {
            // Everything that happened by t arrives before the tick, in shuffled order, some twice.
            let now = pending.filter { $0.time <= t }
            pending.removeAll { $0.time <= t }
            _ = try await store.append(now + now.prefix(3))
            live.append(try await engine.evaluate(at: t))
        }
        _ = try await store.append(pending)
        let source = StoreAlertSource(store: store)
        for (t, l) in zip(ticks, live) {
            let replay = try AlertReplay.evaluate(config: config(rules), source: source, at: t)
            func key(_ r: AlertRecord) -> String { "\(r.rule) \(r.state) \(r.labels.sorted(by: <)) \(r.value) \(r.since) \(r.orders)" }
            #expect(replay.map(key).sorted() == l.filter { $0.state != .resolved || $0.resolvedAt == t }.map(key).sorted(), "at \(RFC3339.format(t))")
        }
        #expect(live.contains { !$0.isEmpty })
    }

    @Test func aThousandLateOrdersMakeOneNotification() async throws {
        let path = temporaryDatabase()
        let store = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        defer { store.close() }
        _ = try await store.append((0..<1000).map { orderEvent("SO-\($0)", "accepted", Self.t0 + Micros($0) * 250_000) })
        let transport = RecordingTransport()
        let c = config([Self.sla], hooks: [Self.hook])
        let engine = AlertEngine(config: c, source: StoreAlertSource(store: store), store: store, baseURL: "http://waybill")
        let worker = DeliveryWorker(store: store, config: c, transport: transport, environment: ["HOOK_SECRET": "k"])
        for k in 0..<5 {
            let t = Self.t0 + Micros(20 + k) * Self.minute
            try await engine.evaluate(at: t)
            try await worker.runOnce(now: t)
        }
        #expect(transport.count == 1)
        let post = try #require(transport.posts.first)
        let body = try JSONParser.parse(post.body)
        #expect(body["status"]?.stringValue == "firing")
        #expect(body["orders_total"]?.doubleValue == 1000)
        #expect(body["orders"]?.arrayValue?.count == AlertEvaluator.orderLimit)
        #expect(body["orders"]?.arrayValue?.first?.stringValue == "SO-0")
        #expect(body["url"]?.stringValue?.hasPrefix("http://waybill/alerts#") == true)
        let ts = try #require(Int64(post.headers["X-Waybill-Timestamp"] ?? ""))
        #expect(HookSignature.verify(secret: Array("k".utf8), timestamp: ts, body: post.body, header: post.headers["X-Waybill-Signature"] ?? ""))
        // Allocations arrive for all of them: one resolved notification follows.
        _ = try await store.append((0..<1000).map { orderEvent("SO-\($0)", "allocated", Self.t0 + 26 * Self.minute) })
        let t = Self.t0 + 27 * Self.minute
        try await engine.evaluate(at: t)
        try await worker.runOnce(now: t)
        #expect(transport.count == 2)
        #expect(try JSONParser.parse(transport.posts[1].body)["status"]?.stringValue == "resolved")
    }

    /// A hook that fails three times (connection error, 503, timeout) gets the notification on the fourth
    /// attempt, after exponential waits; the store is closed and reopened mid-retry and nothing is lost.
    @Test func retriesWithBackoffSurviveARestart() async throws {
        let path = temporaryDatabase()
        let c = config([Self.sla], hooks: [Self.hook])
        var t = Self.t0 + 20 * Self.minute
        do {
            let store = try SQLiteStore(path: path, rollup: KPIFactsRollup())
            _ = try await store.append([orderEvent("SO-1", "accepted", Self.t0)])
            let engine = AlertEngine(config: c, source: StoreAlertSource(store: store), store: store, baseURL: "http://w")
            try await engine.evaluate(at: t)
            let failing = RecordingTransport([.failure("connection refused"), .status(503, body: "busy")])
            let worker = DeliveryWorker(store: store, config: c, transport: failing, environment: [:], jitter: { 1 })
            #expect(try await worker.runOnce(now: t) == 1)
            #expect(try await worker.runOnce(now: t + 999_999) == 0)   // waits 1 s
            #expect(try await worker.runOnce(now: t + 1_000_000) == 1)  // 503: waits 2 s more
            #expect(failing.count == 2)
            t += 1_000_000
            store.close()
        }
        let store = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        defer { store.close() }
        // The restarted engine remembers it already notified: no second firing notification.
        let engine = AlertEngine(config: c, source: StoreAlertSource(store: store), store: store, baseURL: "http://w")
        try await engine.evaluate(at: t + Self.minute)
        let flaky = RecordingTransport([.failure("timed out")])
        let worker = DeliveryWorker(store: store, config: c, transport: flaky, environment: [:], jitter: { 1 })
        #expect(try await worker.runOnce(now: t + 1_999_999) == 0)
        #expect(try await worker.runOnce(now: t + 2_000_000) == 1)   // the timeout: waits 4 s
        #expect(try await worker.runOnce(now: t + 6_000_000) == 1)   // delivered
        #expect(flaky.count == 2)
        let items = try store.recentNotifications(limit: 10)
        #expect(items.count == 1)
        #expect(items[0].status == .delivered)
        #expect(items[0].attempts == 4)
    }

    @Test func clientErrorsAreNotRetried() async throws {
        let path = temporaryDatabase()
        let store = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        defer { store.close() }
        _ = try await store.append([orderEvent("SO-1", "accepted", Self.t0)])
        let c = config([Self.sla], hooks: [Self.hook])
        let engine = AlertEngine(config: c, source: StoreAlertSource(store: store), store: store, baseURL: "http://w")
        let t = Self.t0 + 20 * Self.minute
        try await engine.evaluate(at: t)
        let transport = RecordingTransport([.status(400, body: "bad signature")])
        let worker = DeliveryWorker(store: store, config: c, transport: transport, environment: [:])
        try await worker.runOnce(now: t)
        try await worker.runOnce(now: t + 3_600_000_000)
        #expect(transport.count == 1)
        let item = try #require(try store.recentNotifications(limit: 1).first)
        #expect(item.status == .failed)
        #expect(item.lastError?.contains("400") == true)
        // A week later the finished item is pruned from the outbox (the repeat notification is new).
        try await engine.evaluate(at: t + 8 * 86_400_000_000)
        let later = try store.recentNotifications(limit: 10)
        #expect(!later.contains { $0.status == .failed })
        #expect(later.map(\.status) == [.pending])
    }

    /// A reload keeps the alerts of a rule that stays (no second notification for the same firing), starts
    /// evaluating a new rule at the next tick, and drops the alerts of a rule that is gone.
    @Test func aReloadKeepsTheAlertsOfRulesThatStay() async throws {
        let path = temporaryDatabase()
        let store = try SQLiteStore(path: path, rollup: KPIFactsRollup())
        defer { store.close() }
        _ = try await store.append((0..<3).map { orderEvent("SO-\($0)", "accepted", Self.t0) })
        let transport = RecordingTransport()
        let gone = AlertRule(name: "Gone", condition: .sla(SLARule(after: .accepted, expect: .allocated, within: 5 * Self.minute, by: nil)))
        let c = config([Self.sla, gone], hooks: [Self.hook])
        let engine = AlertEngine(config: c, source: StoreAlertSource(store: store), store: store, baseURL: "http://w")
        let worker = DeliveryWorker(store: store, config: c, transport: transport, environment: ["HOOK_SECRET": "k"])
        var t = Self.t0 + 20 * Self.minute
        try await engine.evaluate(at: t)
        try await worker.runOnce(now: t)
        #expect(Set(try await engine.alerts().filter(\.isActive).map(\.rule)) == ["OrderNotAllocated", "Gone"])
        let sent = transport.count
        #expect(sent == 2)

        let added = AlertRule(name: "Added", condition: .sla(SLARule(after: .accepted, expect: .allocated, within: 10 * Self.minute, by: nil)))
        try await engine.reload(config([Self.sla, added], hooks: [Self.hook]))
        #expect(engine.config.rules.map(\.name) == ["OrderNotAllocated", "Added"])
        #expect(await engine.rules().map(\.rule.name) == ["OrderNotAllocated", "Added"])
        t += Self.minute
        try await engine.evaluate(at: t)
        try await worker.runOnce(now: t)
        let active = try await engine.alerts().filter(\.isActive)
        #expect(Set(active.map(\.rule)) == ["OrderNotAllocated", "Added"], "Gone's alert is dropped, Added fires")
        #expect(active.first { $0.rule == "OrderNotAllocated" }?.since == Self.t0 + 15 * Self.minute, "the kept alert carries on")
        #expect(transport.count == sent + 1, "only the new rule's firing is notified")
        // A restart reads the same records: nothing of the dropped rule remains.
        let again = AlertEngine(config: config([Self.sla, added]), source: StoreAlertSource(store: store), store: store, baseURL: "http://w")
        try await again.start()
        #expect(Set(await again.alerts().map(\.rule)) == ["OrderNotAllocated", "Added"])
    }
}
