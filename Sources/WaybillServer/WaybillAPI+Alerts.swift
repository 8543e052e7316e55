import Foundation
import Hummingbird
import NIOCore
import WaybillAlerts
import WaybillModel

extension WaybillAPI {
    /// Live alerts, or with `?at=TIME` a replay of every rule as of that instant.
    func getAlerts(_ req: Request) async throws -> Response {
        let (records, at) = try await alertRecords(req)
        return jsonResponse(AlertPayloads.alertsDocument(records, at: at, base: baseURL))
    }

    func alertRecords(_ req: Request) async throws -> ([AlertRecord], Micros) {
        guard let alerting else { return ([], clock()) }
        var records: [AlertRecord]
        var at = clock()
        if let t = req.uri.queryParameters["at"].map(String.init) {
            guard let v = TimeText.parse(t, now: at) else { throw APIError(.badRequest, "at: '\(t)' is not an RFC 3339 time or relative like -1h") }
            at = v
            records = try AlertReplay.evaluate(config: alerting.config, source: alerting.source, at: at)
        } else {
            records = await alerting.engine.alerts()
        }
        if let s = req.uri.queryParameters["state"].map(String.init) {
            guard let state = AlertState(rawValue: s) else { throw APIError(.badRequest, "state: must be pending, firing or resolved") }
            records = records.filter { $0.state == state }
        }
        return (records, at)
    }

    func getRules(_ req: Request) async throws -> Response {
        guard let alerting else { return jsonResponse(AlertPayloads.rulesDocument(AlertConfig(), status: [])) }
        return jsonResponse(AlertPayloads.rulesDocument(alerting.config, status: await alerting.engine.rules()))
    }

    func alertsPage(_ req: Request) async throws -> Response {
        let (records, at) = try await alertRecords(req)
        let rules = await alerting?.engine.rules() ?? []
        return WebPages.alerts(records, rules: rules, at: at, configured: alerting != nil)
    }

    var baseURL: String { alerting?.engine.baseURL ?? "http://\(config.host):\(config.port)" }
}

extension WebPages {
    static func alerts(_ records: [AlertRecord], rules: [RuleStatus], at: Micros, configured: Bool) -> Response {
        var b = "<h1>Alerts</h1><div class=\"muted\">as of \(escape(RFC3339.format(at)))</div>"
        if !configured {
            b += "<p>No alert rules are loaded. Start the server with <code>waybill serve --config queries/alerts/</code>.</p>"
        }
        b += "<h2>Alerts</h2><table><tr><th>state</th><th>rule</th><th>labels</th><th>value</th><th>since</th><th>orders</th></tr>"
        if records.isEmpty { b += "<tr><td colspan=\"6\" class=\"muted\">nothing pending or firing</td></tr>" }
        for r in records {
            let labels = r.labels.filter { $0.key != "alertname" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            let orders = r.orders.prefix(20).map { "<a href=\"/traces/\(pathComponent($0))\">\(escape($0))</a>" }.joined(separator: " ")
            let more = r.ordersTotal > min(20, r.orders.count) ? " <span class=\"muted\">and \(r.ordersTotal - min(20, r.orders.count)) more</span>" : ""
            b += "<tr id=\"\(escape(r.fingerprint))\"><td><span class=\"state\">\(escape(r.state.rawValue))</span></td><td>\(escape(r.rule))"
                + "<div class=\"muted\">\(escape(r.annotations["summary"] ?? ""))</div></td><td><code>\(escape(labels))</code></td>"
                + "<td>\(escape(AlertTransitions.formatValue(r.value)))</td><td>\(escape(RFC3339.format(r.since)))</td><td>\(orders)\(more)</td></tr>"
        }
        b += "</table><h2>Rules</h2><table><tr><th>rule</th><th>kind</th><th>severity</th><th>active</th><th>last evaluation</th><th>error</th></tr>"
        for s in rules {
            b += "<tr><td>\(escape(s.rule.name))</td><td>\(escape(s.rule.condition.kind))</td><td>\(escape(s.rule.severity))</td><td>\(s.active)</td>"
                + "<td>\(s.evaluatedAt.map { escape(RFC3339.format($0)) } ?? "–")\(s.durationMillis.map { String(format: " (%.1f ms)", $0) } ?? "")</td>"
                + "<td>\(escape(s.error ?? ""))</td></tr>"
        }
        return page("Waybill alerts", b + "</table>")
    }
}
