import Crypto
import Foundation
import WaybillModel

public enum AlertState: String, Codable, Sendable, Hashable {
    case pending, firing, resolved
}

/// One alert: a rule and its group labels, with its lifecycle and what was last notified.
public struct AlertRecord: Codable, Sendable, Hashable {
    public var fingerprint: String
    public var rule: String
    public var severity: String
    /// `alertname`, the rule's own labels and the group labels.
    public var labels: [String: String]
    public var annotations: [String: String]
    public var state: AlertState
    /// When the condition began to hold (Prometheus' `activeAt`); `starts_at` of notifications.
    public var since: Micros
    /// The evaluation at which the alert became firing.
    public var firingAt: Micros?
    public var resolvedAt: Micros?
    public var value: Double
    public var orders: [String]
    public var ordersTotal: Int
    public var evaluatedAt: Micros
    public var notifiedState: AlertState?
    public var notifiedAt: Micros?

    public var isActive: Bool { state != .resolved }
}

public enum Fingerprint {
    /// Stable across restarts and machines: SHA-256 of the rule name and the sorted labels, 16 hex digits.
    public static func of(labels: [String: String]) -> String {
        var text = ""
        for (k, v) in labels.sorted(by: { $0.key < $1.key }) { text += k + "\u{1}" + v + "\u{2}" }
        return SHA256.hash(data: Data(text.utf8)).prefix(8).map { String(format: "%02x", $0) }.joined()
    }
}

/// The state machine of alerts.md: pending until `for` has passed, then firing, then resolved.
public enum AlertTransitions {
    /// How long a resolved alert stays listed after it was notified (or needed no notification).
    public static let resolvedRetention: Micros = 15 * 60_000_000

    /// An alert's labels: `alertname`, the rule's own labels and the sample's group labels.
    public static func labels(rule: AlertRule, sample: AlertSample) -> [String: String] {
        var labels = rule.labels
        labels["alertname"] = rule.name
        for (k, v) in sample.labels { labels[k] = v }
        return labels
    }

    /// The next records of one rule, from its previous records (none when replaying) and the samples of
    /// an evaluation at `t`.
    public static func step(rule: AlertRule, samples: [AlertSample], previous: [AlertRecord], at t: Micros) -> [AlertRecord] {
        var byFingerprint: [String: AlertRecord] = [:]
        for r in previous { byFingerprint[r.fingerprint] = r }
        var out: [String: AlertRecord] = [:]
        for s in samples {
            let labels = labels(rule: rule, sample: s)
            let fp = Fingerprint.of(labels: labels)
            let prev = byFingerprint[fp]
            let since = s.since ?? ((prev?.isActive ?? false) ? prev!.since : t)
            let firing = t - since >= rule.holdFor
            var r = AlertRecord(fingerprint: fp, rule: rule.name, severity: rule.severity, labels: labels, annotations: [:],
                                state: firing ? .firing : .pending, since: since, firingAt: nil, resolvedAt: nil, value: s.value,
                                orders: s.orders, ordersTotal: s.ordersTotal, evaluatedAt: t,
                                notifiedState: prev?.notifiedState, notifiedAt: prev?.notifiedAt)
            if firing { r.firingAt = (prev?.state == .firing) ? (prev?.firingAt ?? t) : t }
            r.annotations = render(rule.annotations, record: r)
            out[fp] = r
        }
        for p in previous where out[p.fingerprint] == nil {
            switch p.state {
            case .pending:
                continue  // a pending alert whose condition stopped holding is dropped, as in Prometheus
            case .firing:
                var r = p
                r.state = .resolved
                r.resolvedAt = t
                r.evaluatedAt = t
                out[p.fingerprint] = r
            case .resolved:
                // Kept until notified (when it was notified firing) and listed for a while after.
                let owesNotice = p.notifiedState == .firing
                if owesNotice || t - (p.resolvedAt ?? t) < resolvedRetention { out[p.fingerprint] = p }
            }
        }
        return out.values.sorted { ($0.rule, $0.fingerprint) < ($1.rule, $1.fingerprint) }
    }

    /// `{{label}}`, `{{value}}`, `{{orders_total}}` and `{{rule}}` in annotations.
    static func render(_ templates: [String: String], record r: AlertRecord) -> [String: String] {
        guard !templates.isEmpty else { return [:] }
        var vars = r.labels
        vars["value"] = formatValue(r.value)
        vars["orders_total"] = String(r.ordersTotal)
        vars["rule"] = r.rule
        return templates.mapValues { t in
            var s = t
            for (k, v) in vars { s = s.replacingOccurrences(of: "{{\(k)}}", with: v).replacingOccurrences(of: "{{ \(k) }}", with: v) }
            return s
        }
    }

    public static func formatValue(_ v: Double) -> String {
        if v == v.rounded() && abs(v) < 1e15 { return String(Int64(v)) }
        return String(format: "%.4g", v)
    }
}

/// Alertmanager's timers over alert records: when a record owes a notification.
public struct NotificationPolicy: Sendable {
    public var groupWait: Micros
    public var groupInterval: Micros
    public var repeatInterval: Micros

    public init(groupWait: Micros, groupInterval: Micros, repeatInterval: Micros) {
        self.groupWait = groupWait
        self.groupInterval = groupInterval
        self.repeatInterval = repeatInterval
    }

    public init(_ c: AlertConfig) {
        self.init(groupWait: c.groupWait, groupInterval: c.groupInterval, repeatInterval: c.repeatInterval)
    }

    /// The state to notify at `t`, if any: a new firing after `group_wait`, a resolution of a notified
    /// firing, a repeat after `repeat_interval`; never two notifications of a group within `group_interval`.
    public func due(_ r: AlertRecord, at t: Micros) -> AlertState? {
        let spaced = r.notifiedAt.map { t - $0 >= groupInterval } ?? true
        switch r.state {
        case .pending:
            return nil
        case .firing:
            if r.notifiedState != .firing {
                return spaced && t - (r.firingAt ?? t) >= groupWait ? .firing : nil
            }
            return t - (r.notifiedAt ?? t) >= repeatInterval ? .firing : nil
        case .resolved:
            return r.notifiedState == .firing && spaced ? .resolved : nil
        }
    }
}
