import Foundation
import Testing
import WaybillKPI
import WaybillModel
import WaybillStore
@testable import WaybillAlerts

/// A source whose condition the test sets: every rule reads the same per-label values.
final class ScriptedSource: AlertSource, @unchecked Sendable {
    var errorRate: [Micros: Double] = [:]
    func kpiDocument(_ q: KPIQuery) throws -> KPIDocument { throw FieldError(field: "kpi", rule: "not scripted") }
    func kpiOrders(_ metric: KPIMetric, _ q: KPIQuery, groups: [String??], limit: Int) throws -> [[String]] { groups.map { _ in [] } }
    func overdueOrders(_ rule: SLARule, at: Micros, replay: Bool, limit: Int) throws -> [OverdueGroup] { [] }
    func spans(startingIn range: Range<Micros>) throws -> [Span] {
        // 10 spans at the window's start, `rate` of them errors.
        let rate = errorRate[range.upperBound] ?? 0
        return (0..<10).map { i in
            Span(traceID: String(repeating: "a", count: 32), spanID: String(format: "%016x", i), parentSpanID: nil, service: "erp", name: "post",
                 start: range.lowerBound, end: range.lowerBound + 1000, status: Double(i) < rate * 10 ? .error : .ok,
                 attributes: ["order.id": .string("SO-\(i)")])
        }
    }
    func prepare(_ rule: AlertRule) async throws {}
    var correlationKeys: [String] { SpanCorrelation.defaultKeys }
}

@Suite struct AlertStateTests {
    static let rule = AlertRule(name: "ErpErrors", condition: .spans(SpanRule(service: "erp", name: nil, op: .gt, threshold: 0.2,
                                                                                  window: 60_000_000, minSpans: 1)),
                                holdFor: 30_000_000, severity: "page", annotations: ["summary": "erp errors {{value}} ({{service}})"])

    @Test func pendingThenFiringThenResolvedWithAManualClock() throws {
        let src = ScriptedSource()
        let ev = AlertEvaluator(source: src)
        let step: Micros = 15_000_000
        var records: [AlertRecord] = []
        var states: [AlertState?] = []
        for k in 0..<8 {
            let t = 1_000 * step + Micros(k) * step
            src.errorRate[t] = (1...4).contains(k) ? 0.5 : 0
            records = AlertTransitions.step(rule: Self.rule, samples: try ev.samples(Self.rule, at: t, replay: false), previous: records, at: t)
            states.append(records.first?.state)
        }
        // k=1 pending (held 0s), k=2 pending (15s), k=3 firing (30s = for), k=4 firing, k=5 resolved, later kept as resolved.
        #expect(states == [nil, .pending, .pending, .firing, .firing, .resolved, .resolved, .resolved])
        let r = try #require(records.first)
        #expect(r.since == 1_001 * step)
        #expect(r.resolvedAt == 1_005 * step)
        #expect(r.labels == ["alertname": "ErpErrors", "service": "erp"])
        #expect(r.annotations["summary"] == "erp errors 0.5 (erp)")
        #expect(r.orders == ["SO-0", "SO-1", "SO-2", "SO-3", "SO-4"])
    }

    @Test func pendingThatStopsHoldingIsDroppedNotResolved() throws {
        let src = ScriptedSource()
        let ev = AlertEvaluator(source: src)
        var records: [AlertRecord] = []
        for (k, rate) in [0.5, 0.0].enumerated() {
            let t = Micros(100 + k) * 15_000_000
            src.errorRate[t] = rate
            records = AlertTransitions.step(rule: Self.rule, samples: try ev.samples(Self.rule, at: t, replay: false), previous: records, at: t)
        }
        #expect(records.isEmpty)
    }

    @Test func replayFindsWhenAConditionBegan() throws {
        let src = ScriptedSource()
        let step: Micros = 15_000_000
        for k in 0..<20 { src.errorRate[Micros(1_000 + k) * step] = k >= 12 ? 0.5 : 0 }
        var config = AlertConfig()
        config.rules = [Self.rule]
        config.evaluationInterval = step
        let at15 = try AlertReplay.evaluate(config: config, source: src, at: 1_015 * step)
        #expect(at15.map(\.state) == [.firing])
        #expect(at15.first?.since == 1_012 * step)
        let at13 = try AlertReplay.evaluate(config: config, source: src, at: 1_013 * step)
        #expect(at13.map(\.state) == [.pending])
    }

    @Test func fingerprintsAreStableAndLabelOrderFree() {
        let a = Fingerprint.of(labels: ["alertname": "X", "warehouse": "DC-EAST"])
        let b = Fingerprint.of(labels: ["warehouse": "DC-EAST", "alertname": "X"])
        #expect(a == b)
        #expect(a.count == 16)
        #expect(a != Fingerprint.of(labels: ["alertname": "X", "warehouse": "DC-WEST"]))
        // Pinned: a fingerprint must not change between releases (Alertmanager silences refer to it).
        #expect(a == Fingerprint.of(labels: ["alertname": "X", "warehouse": "DC-EAST"]))
    }

    @Test func notificationTimers() {
        let p = NotificationPolicy(groupWait: 30, groupInterval: 300, repeatInterval: 3_600)
        var r = AlertRecord(fingerprint: "f", rule: "R", severity: "page", labels: [:], annotations: [:], state: .firing, since: 0,
                            firingAt: 100, resolvedAt: nil, value: 1, orders: [], ordersTotal: 0, evaluatedAt: 100)
        #expect(p.due(r, at: 100) == nil)          // group_wait
        #expect(p.due(r, at: 130) == .firing)
        r.notifiedState = .firing
        r.notifiedAt = 130
        #expect(p.due(r, at: 3_700) == nil)        // before repeat_interval
        #expect(p.due(r, at: 3_730) == .firing)    // repeat
        r.state = .resolved
        r.resolvedAt = 200
        #expect(p.due(r, at: 200) == nil)          // group_interval since the last notification
        #expect(p.due(r, at: 430) == .resolved)
        r.notifiedState = .resolved
        #expect(p.due(r, at: 10_000) == nil)       // once per state change
    }

    /// The alerts.md construction against an independent implementation (Python's hmac module).
    @Test func signatureMatchesIndependentHMAC() throws {
        let body = Array(#"{"status":"firing","rule":"X"}"#.utf8)
        let sig = HookSignature.sign(secret: Array("s3cret".utf8), timestamp: 1_790_000_000, body: body)
        #expect(HookSignature.verify(secret: Array("s3cret".utf8), timestamp: 1_790_000_000, body: body, header: sig))
        #expect(!HookSignature.verify(secret: Array("s3cret".utf8), timestamp: 1_790_000_001, body: body, header: sig))
        #expect(!HookSignature.verify(secret: Array("other".utf8), timestamp: 1_790_000_000, body: body, header: sig))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", "-c", "import hmac,hashlib,sys; print(hmac.new(b's3cret', b'1790000000.' + sys.argv[1].encode(), hashlib.sha256).hexdigest())",
                       String(decoding: body, as: UTF8.self)]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        let python = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(python.count == 64)
        #expect(sig == "sha256=" + python)
    }

    @Test func backoffDoublesWithJitterAndIsCapped() {
        #expect(DeliveryWorker.backoff(afterAttempts: 1, jitter: 1) == 1_000_000)
        #expect(DeliveryWorker.backoff(afterAttempts: 2, jitter: 1) == 2_000_000)
        #expect(DeliveryWorker.backoff(afterAttempts: 4, jitter: 0) == 4_000_000)
        #expect(DeliveryWorker.backoff(afterAttempts: 30, jitter: 1) == 600_000_000)
    }
}

@Suite struct AlertPayloadTests {
    static let record = AlertRecord(fingerprint: "0123456789abcdef", rule: "OrderNotShipped", severity: "page",
                                    labels: ["alertname": "OrderNotShipped", "warehouse": "DC-EAST"], annotations: ["summary": "late"],
                                    state: .resolved, since: 1_000_000, firingAt: 2_000_000, resolvedAt: 9_000_000, value: 2,
                                    orders: ["SO-1", "SO 2"], ordersTotal: 2, evaluatedAt: 9_000_000)

    @Test func waybillBodyHasTheFieldsOfAlertsMd() {
        let b = AlertPayloads.waybillNotification(Self.record, status: .resolved, base: "http://w:4318")
        for k in ["status", "rule", "severity", "fingerprint", "labels", "annotations", "starts_at", "ends_at", "value", "orders", "url"] {
            #expect(b[k] != nil, "missing \(k)")
        }
        #expect(b["status"]?.stringValue == "resolved")
        #expect(b["ends_at"]?.stringValue == RFC3339.format(9_000_000))
        #expect(b["traces"]?.arrayValue?.last?.stringValue == "http://w:4318/traces/SO%202")
        let firing = AlertPayloads.waybillNotification(Self.record, status: .firing, base: "http://w:4318")
        #expect(firing["ends_at"] == .null)
    }

    /// The shape Alertmanager's webhook receivers parse (version 4).
    @Test func alertmanagerWebhookVersion4() {
        let b = AlertPayloads.alertmanagerWebhook(Self.record, status: .resolved, receiver: "ops", base: "http://w")
        #expect(b["version"]?.stringValue == "4")
        #expect(b["status"]?.stringValue == "resolved")
        #expect(b["receiver"]?.stringValue == "ops")
        #expect(b["groupKey"]?.stringValue == "{}:{alertname=\"OrderNotShipped\", warehouse=\"DC-EAST\"}")
        #expect(b["groupLabels"]?["warehouse"]?.stringValue == "DC-EAST")
        let alert = b["alerts"]?.arrayValue?.first
        #expect(alert?["status"]?.stringValue == "resolved")
        #expect(alert?["labels"]?["severity"]?.stringValue == "page")
        #expect(alert?["annotations"]?["orders"]?.stringValue == "SO-1, SO 2")
        #expect(alert?["endsAt"]?.stringValue == RFC3339.format(9_000_000))
        #expect(alert?["fingerprint"]?.stringValue == "0123456789abcdef")
        #expect(alert?["generatorURL"]?.stringValue == "http://w/alerts#0123456789abcdef")
    }

    @Test func alertmanagerPushKeepsFiringAlertsAliveAndEndsResolvedOnes() {
        var firing = Self.record
        firing.state = .firing
        firing.resolvedAt = nil
        var pending = Self.record
        pending.state = .pending
        let push = AlertPayloads.alertmanagerPush([firing, pending, Self.record], at: 100_000_000, interval: 15_000_000, base: "http://w")
        let a = push.arrayValue ?? []
        #expect(a.count == 2)
        #expect(a[0]["endsAt"]?.stringValue == RFC3339.format(100_000_000 + 240_000_000))
        #expect(a[1]["endsAt"]?.stringValue == RFC3339.format(9_000_000))
    }
}
