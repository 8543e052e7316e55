import Foundation
import Hummingbird
import WaybillAlerts
import WaybillModel
import WaybillQuery

/// `/alerts`: firing, pending and recently resolved alerts with their orders, the rules with their last
/// evaluation, and each hook's delivery status from the outbox. `?state=` filters, `?at=` replays.
struct AlertsPage {
    struct Option { var value, label: String; var selected: Bool }
    struct Section { var state: String; var rows: [OverviewPage.AlertRow] }
    struct Rule { var name, kind, condition, severity, evaluatedAt, cost, error: String; var active: Int; var failing: Bool }
    struct Hook { var hook, pending, retrying, delivered, failed, lastFinished, lastDelivered, lastError, nextRetry: String; var failing: Bool }

    var title = "Alerts"
    var refreshSeconds: Int?
    var at: String
    var replay: String
    var stateOptions: [Option]
    var configured: Bool
    var sections: [Section]
    var empty: Bool
    var rules: [Rule]
    var hooks: [Hook]
    var examined: Int
    var error: String?
}

extension WaybillAPI {
    func alertsPageView(_ req: Request) async throws -> Response {
        let params = req.parameterDictionary.filter { !$0.value.isEmpty }
        let configured = alerting != nil || queries.alerting != nil
        var page = AlertsPage(refreshSeconds: params["at"] == nil ? 30 : nil, at: "", replay: params["at"] ?? "",
                              stateOptions: [("", "pending, firing and resolved"), ("firing", "firing"), ("pending", "pending"), ("resolved", "resolved")]
                                  .map { AlertsPage.Option(value: $0.0, label: $0.1, selected: $0.0 == (params["state"] ?? "")) },
                              configured: configured, sections: [], empty: true, rules: [], hooks: [], examined: 0)
        do {
            let doc = try await queries.alerts(AlertsRequest(parameters: params))
            page.at = doc.at
            page.sections = ["firing", "pending", "resolved"].compactMap { state in
                let rows = doc.alerts.filter { $0.state == state }.map { WebPages.alertRow($0, orders: 20) }
                return rows.isEmpty ? nil : AlertsPage.Section(state: state, rows: rows)
            }
            page.empty = page.sections.isEmpty
        } catch let e as QueryFailure {
            page.error = e.description
        }
        let rules = try await queries.rules()
        page.rules = rules.rules.map { r in
            let condition: String = switch r.kind {
            case "kpi": "\(r.kpi ?? "") \(r.op ?? "") \(r.threshold.map(AlertTransitions.formatValue) ?? "") over \(r.window ?? "")" + (r.by.map { " by " + $0 } ?? "")
            case "sla": "\(r.expect ?? "") within \(r.within ?? "") of \(r.after ?? "")" + (r.by.map { " by " + $0 } ?? "")
            default: "error rate \(r.errorRate ?? "") of \([r.spans?.service, r.spans?.name].compactMap { $0 }.joined(separator: " ")) over \(r.window ?? "")"
            }
            return AlertsPage.Rule(name: r.name, kind: r.kind, condition: condition, severity: r.severity, evaluatedAt: r.evaluatedAt ?? "–",
                                   cost: r.evaluationMillis.map { String(format: "%.1f ms", $0) } ?? "", error: r.error ?? "",
                                   active: r.active, failing: r.error != nil)
        }
        let deliveries = try await queries.deliveries()
        page.examined = deliveries.examined
        page.hooks = deliveries.hooks.map { h in
            AlertsPage.Hook(hook: h.hook, pending: String(h.pending), retrying: String(h.retrying), delivered: String(h.delivered), failed: String(h.failed),
                            lastFinished: h.lastFinished ?? "–", lastDelivered: h.lastDelivered ?? "–",
                            lastError: h.lastError.map { $0 + (h.lastErrorAttempts.map { " (after \($0) attempts)" } ?? "") } ?? "",
                            nextRetry: h.nextRetry ?? "–", failing: h.failed > 0 || h.retrying > 0)
        }
        return WebPages.render("alerts", page, status: page.error == nil ? .ok : .badRequest)
    }
}
