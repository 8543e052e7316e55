import Foundation
import Synchronization
import WaybillAlerts
import WaybillStore

/// Counters exposed on `/metrics` in the Prometheus text format.
final class ServerMetrics: Sendable {
    final class Counter: Sendable {
        private let v = Atomic<Int>(0)
        func add(_ n: Int) { v.wrappingAdd(n, ordering: .relaxed) }
        var value: Int { v.load(ordering: .relaxed) }
    }

    let accepted = Counter()
    let duplicates = Counter()
    let rejected = Counter()
    let rejectedBodies = Counter()
    let throttled = Counter()
    private let statuses = Mutex<[Int: Int]>([:])

    func count(status: Int) { statuses.withLock { $0[status, default: 0] += 1 } }

    func prometheusText(stats: StoreStats) -> String {
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ lines: [(String, Int)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, v) in lines { out += "\(name)\(labels) \(v)\n" }
        }
        metric("waybill_events_accepted_total", "counter", "Business events stored.", [("", accepted.value)])
        metric("waybill_events_duplicate_total", "counter", "Business events dropped as duplicates of a stored (source, id).", [("", duplicates.value)])
        metric("waybill_events_rejected_total", "counter", "Business events rejected as invalid.", [("", rejected.value)])
        metric("waybill_request_bodies_rejected_total", "counter", "Request bodies refused whole (400/413/415).", [("", rejectedBodies.value)])
        metric("waybill_ingest_throttled_total", "counter", "Requests answered 429 because the ingest queue was full.", [("", throttled.value)])
        metric("waybill_http_responses_total", "counter", "HTTP responses by status code.",
               statuses.withLock { $0 }.sorted { $0.key < $1.key }.map { ("{code=\"\($0.key)\"}", $0.value) })
        metric("waybill_store_events", "gauge", "Business events in the store.", [("", stats.events)])
        metric("waybill_store_orders", "gauge", "Orders with facts in the store.", [("", stats.orders)])
        metric("waybill_store_linked_keys", "gauge", "Keys taking part in links.", [("", stats.linkedKeys)])
        metric("waybill_ingest_queue_events", "gauge", "Events waiting for the group-commit writer.", [("", stats.queuedEvents)])
        return out
    }

    /// Alerting gauges: alerts by state, and per rule its last evaluation's cost and whether it failed.
    static func alertText(alerts: [AlertRecord], rules: [RuleStatus]) -> String {
        var out = "# HELP waybill_alerts Alerts by state.\n# TYPE waybill_alerts gauge\n"
        for s in [AlertState.pending, .firing, .resolved] { out += "waybill_alerts{state=\"\(s.rawValue)\"} \(alerts.filter { $0.state == s }.count)\n" }
        out += "# HELP waybill_alert_rule_evaluation_seconds Duration of each rule's last evaluation.\n# TYPE waybill_alert_rule_evaluation_seconds gauge\n"
        for r in rules { out += "waybill_alert_rule_evaluation_seconds{rule=\"\(r.rule.name)\"} \((r.durationMillis ?? 0) / 1000)\n" }
        out += "# HELP waybill_alert_rule_failing Whether a rule's last evaluation failed (1) or not (0).\n# TYPE waybill_alert_rule_failing gauge\n"
        for r in rules { out += "waybill_alert_rule_failing{rule=\"\(r.rule.name)\"} \(r.error == nil ? 0 : 1)\n" }
        return out
    }
}
