import Foundation
import Hummingbird
import NIOCore
import WaybillAlerts
import WaybillModel
import WaybillQuery

extension WaybillAPI {
    /// Live alerts, or with `?at=TIME` a replay of every rule as of that instant; `?state=` filters.
    func getAlerts(_ req: Request) async throws -> Response {
        try jsonDocument(await queries.alerts(AlertsRequest(parameters: req.parameterDictionary)))
    }

    func getRules(_ req: Request) async throws -> Response {
        try jsonDocument(await queries.rules())
    }

    func alertsPage(_ req: Request) async throws -> Response {
        let alerts = try await queries.alerts(AlertsRequest(parameters: req.parameterDictionary))
        return WebPages.alerts(alerts, rules: try await queries.rules(), configured: alerting != nil || queries.alerting != nil)
    }
}

extension WebPages {
    static func alerts(_ doc: AlertsDocument, rules: RulesDocument, configured: Bool) -> Response {
        var b = "<h1>Alerts</h1><div class=\"muted\">as of \(escape(doc.at))</div>"
        if !configured {
            b += "<p>No alert rules are loaded. Start the server with <code>waybill serve --config queries/alerts/</code>.</p>"
        }
        b += "<h2>Alerts</h2><table><tr><th>state</th><th>rule</th><th>labels</th><th>value</th><th>since</th><th>orders</th></tr>"
        if doc.alerts.isEmpty { b += "<tr><td colspan=\"6\" class=\"muted\">nothing pending or firing</td></tr>" }
        for r in doc.alerts {
            let labels = r.labels.filter { $0.key != "alertname" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            let shown = r.orders.prefix(20)
            let orders = shown.map { "<a href=\"/traces/\(URLText.pathSegment($0))\">\(escape($0))</a>" }.joined(separator: " ")
            let more = r.ordersTotal > shown.count ? " <span class=\"muted\">and \(r.ordersTotal - shown.count) more</span>" : ""
            b += "<tr id=\"\(escape(r.fingerprint))\"><td><span class=\"state\">\(escape(r.state))</span></td><td>\(escape(r.rule))"
                + "<div class=\"muted\">\(escape(r.annotations["summary"] ?? ""))</div></td><td><code>\(escape(labels))</code></td>"
                + "<td>\(escape(AlertTransitions.formatValue(r.value)))</td><td>\(escape(r.since))</td><td>\(orders)\(more)</td></tr>"
        }
        b += "</table><h2>Rules</h2><table><tr><th>rule</th><th>kind</th><th>severity</th><th>active</th><th>last evaluation</th><th>error</th></tr>"
        for s in rules.rules {
            b += "<tr><td>\(escape(s.name))</td><td>\(escape(s.kind))</td><td>\(escape(s.severity))</td><td>\(s.active)</td>"
                + "<td>\(s.evaluatedAt.map(escape) ?? "–")\(s.evaluationMillis.map { String(format: " (%.1f ms)", $0) } ?? "")</td>"
                + "<td>\(escape(s.error ?? ""))</td></tr>"
        }
        return page("Waybill alerts", b + "</table>")
    }
}
