import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
@testable import WaybillAlerts
import WaybillKPI
import WaybillModel
import WaybillSQLite
import WaybillStore
import WaybillTestSupport
@testable import WaybillServer

/// Counts the notifications a hook would get.
final class CountingTransport: NotificationTransport, @unchecked Sendable {
    private let lock = NSLock()
    private var bodies: [JSONValue] = []
    func post(url: String, headers: [(String, String)], body: [UInt8], timeout: Micros) async -> TransportResult {
        lock.withLock { bodies.append((try? JSONParser.parse(body)) ?? .null) }
        return .status(200, body: "ok")
    }
    var statuses: [String] { lock.withLock { bodies.compactMap { $0["status"]?.stringValue } } }
}

/// The server's long-running loops run on a manual clock: the tests move time instead of sleeping.
@Suite struct ServiceLoopTests {
    static let t0 = t("2026-11-20T00:00:00Z")

    static func accepted(_ order: String, at time: Micros) -> CloudEvent {
        CloudEvent(id: order + "-a", source: "oms", type: "order.accepted", time: time, subject: order,
                   data: ["lines": [["line": 1, "sku": "A", "qty": 1]]])
    }

    @Test func alertTicksAndHookDeliveryFollowTheClock() async throws {
        let store = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
        defer { store.close() }
        _ = try await store.append([Self.accepted("SO-1", at: Self.t0)])
        var config = AlertConfig()
        config.rules = [AlertRule(name: "NotAllocated", condition: .sla(SLARule(after: .accepted, expect: .allocated, within: 15 * minute, by: nil)),
                                  severity: "page")]
        config.hooks = [HookConfig(name: "ops", url: "http://127.0.0.1:9/hook", secretEnv: nil, format: .waybill, sendResolved: true, timeout: second)]
        config.evaluationInterval = minute
        let transport = CountingTransport()
        let alerting = Alerting(config: config, source: StoreAlertSource(store: store), store: store, baseURL: "http://w", transport: transport)
        let clock = ManualClock(now: Self.t0 + 14 * minute + 30 * second)
        let service = AlertService(alerting: alerting, clock: clock, logger: Logger(label: "test"))
        let running = Task { try await service.run() }
        defer { running.cancel() }

        try await clock.waitForSleepers(2)  // the evaluation loop and the delivery loop are parked
        #expect(await alerting.engine.alerts().isEmpty)
        clock.advance(to: Self.t0 + 15 * minute)  // the tick at which SO-1 is exactly 15 minutes old
        try await clock.waitForSleepers(2)
        let firing = await alerting.engine.alerts()
        #expect(firing.map(\.state) == [.firing])
        #expect(firing.first?.orders == ["SO-1"])
        for _ in 0..<45 {  // delivery runs once a second; the notification is owed from the first tick after group_wait (30 s)
            clock.advance(by: second)
            try await clock.waitForSleepers(2)
        }
        #expect(transport.statuses.isEmpty)
        clock.advance(to: Self.t0 + 16 * minute)  // that tick
        try await clock.waitForSleepers(2)
        clock.advance(by: second)
        try await clock.waitForSleepers(2)
        #expect(transport.statuses == ["firing"])
    }

    @Test func retentionRunsAtStartAndThenEveryInterval() async throws {
        let store = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
        defer { store.close() }
        _ = try await store.append((0..<6).map { Self.accepted("SO-\($0)", at: Self.t0 + Micros($0) * hour) })
        let clock = ManualClock(now: Self.t0 + 2 * day + 90 * minute)  // with 2 days kept: SO-0 and SO-1 are older
        let service = RetentionService(store: store, retention: 2 * day, interval: hour, clock: clock, logger: Logger(label: "test"))
        let running = Task { try await service.run() }
        defer { running.cancel() }
        try await clock.waitForSleepers()
        #expect(try store.stats().events == 4)
        clock.advance(by: hour)
        try await clock.waitForSleepers()
        #expect(try store.stats().events == 3)
        clock.advance(by: 30 * minute)  // before the next run: nothing happens
        try await clock.waitForSleepers()
        #expect(try store.stats().events == 3)
        #expect(try store.auditEntries(limit: 10).map(\.action) == ["retention", "retention"], "each run that removed events is in the audit log")
    }

    /// The demo's services advance with the clock and checkpoint every `checkpointInterval` of it.
    @Test func demoCheckpointsFollowTheClock() async throws {
        let store = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
        defer { store.close() }
        var options = DemoService.Options()
        options.ordersPerDay = 20_000
        options.backfillDays = 1.0 / 24
        options.checkpointInterval = 5
        let clock = ManualClock(now: Self.t0)
        let demo = DemoService(store: store, checkpoints: store, options: options, clock: clock, logger: Logger(label: "test")) { _ in }
        let running = Task { try await demo.run() }
        defer { running.cancel() }
        try await clock.waitForSleepers()
        let first = try #require(try store.loadCheckpoint(name: DemoService.checkpointName)).bytes
        let backfilled = try store.stats().events
        #expect(backfilled > 0)
        for _ in 0..<19 {  // 4.75 s: the services run, no checkpoint is due yet
            clock.advance(by: DemoService.tick)
            try await clock.waitForSleepers()
        }
        #expect(try store.loadCheckpoint(name: DemoService.checkpointName)?.bytes == first)
        clock.advance(by: DemoService.tick)  // 5 s
        try await clock.waitForSleepers()
        #expect(try store.loadCheckpoint(name: DemoService.checkpointName)?.bytes != first)
        clock.advance(by: 30 * minute)  // half an hour of orders arrives in one step
        try await clock.waitForSleepers()
        #expect(try store.stats().events > backfilled)
    }

    /// The embedded services' batches reach the server's ingest figures: `/metrics` counts them by
    /// source, and the overview's ingest-health panel is not empty while `waybill demo` runs.
    @Test func demoBatchesReachTheIngestFigures() async throws {
        let store = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
        defer { store.close() }
        var options = DemoService.Options()
        options.ordersPerDay = 20_000
        options.backfillDays = 1.0 / 24
        let clock = ManualClock(now: Self.t0)
        let demo = DemoService(store: store, checkpoints: store, options: options, clock: clock, logger: Logger(label: "test")) { _ in }
        let app = buildApplication(store: store, config: ServerConfig(), clock: clock, ingestObserver: demo.ingestObserver)
        let running = Task { try await demo.run() }
        defer { running.cancel() }
        try await clock.waitForSleepers()
        let stored = try store.stats().events
        #expect(stored > 0)
        try await app.test(.router) { client in
            try await client.execute(uri: "/metrics", method: .get) { r in
                let text = String(buffer: r.body)
                var accepted = 0
                for line in text.split(separator: "\n") where line.hasPrefix("waybill_events_accepted_total{") {
                    accepted += Int(Double(line.split(separator: " ").last ?? "") ?? 0)
                }
                #expect(accepted == stored, "every event the demo stored is counted once")
                #expect(text.contains(#"waybill_events_accepted_total{source="oms"}"#))
            }
        }
    }

    /// A store write that fails (a storage fault, a closing store) loses none of the demo's events: they
    /// stay in the sink and the next flush stores them, so a checkpoint (taken only with the sink empty)
    /// never gets ahead of the store. Before, the sink dropped them, and the order they belonged to
    /// stopped moving in the store while its workflow went on.
    @Test func aFailedDemoFlushKeepsItsEventsForTheNext() async throws {
        let store = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
        defer { store.close() }
        let flaky = FlakyWriter(store, failAppendNumber: 2)
        let sink = StoreEventSink()
        for i in 1...5 { sink.emit(Self.accepted("SO-\(i)", at: Self.t0 + Micros(i))) }
        sink.emit(Span(traceID: String(repeating: "a", count: 32), spanID: String(repeating: "b", count: 16), service: "oms", name: "s",
                       start: Self.t0, end: Self.t0 + 1))
        // Batches of 2: the first is stored, the second fails.
        await #expect(throws: StoreError.self) { try await sink.flush(to: flaky, batchSize: 2) }
        #expect(sink.pendingEvents == 5, "the failed flush keeps all it was given")
        #expect(try store.stats().events == 2)
        sink.emit(Self.accepted("SO-6", at: Self.t0 + 6))
        try await sink.flush(to: flaky, batchSize: 2)
        #expect(sink.pendingEvents == 0)
        #expect(try store.stats().events == 6)
        // The batch stored before the failure is sent again and answered as duplicates (`written` counts
        // the flushes that succeeded).
        #expect(sink.written.accepted == 4 && sink.written.duplicates == 2, "\(sink.written)")
        #expect(sink.spansWritten.accepted == 1)
    }
}

/// Passes writes to a store, but throws a storage fault on one chosen `append` call (counted from 1).
final class FlakyWriter: EventWriter, SpanWriter, @unchecked Sendable {
    private let inner: any EventWriter & SpanWriter
    private let lock = NSLock()
    private var appends = 0
    private let failing: Int

    init(_ inner: any EventWriter & SpanWriter, failAppendNumber: Int) {
        self.inner = inner
        failing = failAppendNumber
    }

    func append(_ events: [CloudEvent]) async throws -> AppendResult {
        let n = lock.withLock { appends += 1; return appends }
        if n == failing { throw StoreError.unavailable("test: this append fails") }
        return try await inner.append(events)
    }

    func appendSpans(_ spans: [Span]) async throws -> AppendResult { try await inner.appendSpans(spans) }
}
