import Crypto
import Foundation
import WaybillModel

/// The JSON bodies Waybill sends and serves for alerts.
public enum AlertPayloads {
    static func time(_ t: Micros?) -> JSONValue { t.map { .string(RFC3339.format($0)) } ?? .null }
    static func strings(_ m: [String: String]) -> JSONValue { .object(m.mapValues { .string($0) }) }

    /// The trace page of each order.
    public static func traceLinks(_ orders: [String], base: String) -> [String] {
        orders.map { base + "/traces/" + URLText.pathSegment($0) }
    }

    /// alerts.md's waybill hook body.
    public static func waybillNotification(_ r: AlertRecord, status: AlertState, base: String) -> JSONValue {
        .object([
            "status": .string(status.rawValue), "rule": .string(r.rule), "severity": .string(r.severity),
            "fingerprint": .string(r.fingerprint), "labels": strings(r.labels), "annotations": strings(r.annotations),
            "starts_at": time(r.since), "ends_at": status == .resolved ? time(r.resolvedAt) : .null, "value": .number(r.value),
            "orders": .array(r.orders.map { .string($0) }), "orders_total": .number(Double(r.ordersTotal)),
            "traces": .array(traceLinks(r.orders, base: base).map(JSONValue.string)), "url": .string(base + "/alerts#" + r.fingerprint),
        ])
    }

    static let zeroTime = "0001-01-01T00:00:00Z"

    static func alertmanagerAlert(_ r: AlertRecord, status: AlertState, base: String, endsAt: Micros?) -> [String: JSONValue] {
        var annotations = r.annotations
        if !r.orders.isEmpty {
            annotations["orders"] = r.orders.prefix(20).joined(separator: ", ") + (r.ordersTotal > 20 ? " and \(r.ordersTotal - 20) more" : "")
        }
        annotations["value"] = AlertTransitions.formatValue(r.value)
        var labels = r.labels
        labels["severity"] = labels["severity"] ?? r.severity
        return [
            "labels": strings(labels), "annotations": strings(annotations), "startsAt": time(r.since),
            "endsAt": endsAt.map { .string(RFC3339.format($0)) } ?? .string(zeroTime),
            "generatorURL": .string(base + "/alerts#" + r.fingerprint),
        ]
    }

    /// Alertmanager's webhook body, version 4, for receivers that already speak it. A group is one alert here.
    public static func alertmanagerWebhook(_ r: AlertRecord, status: AlertState, receiver: String, base: String) -> JSONValue {
        var alert = alertmanagerAlert(r, status: status, base: base, endsAt: status == .resolved ? r.resolvedAt : nil)
        alert["status"] = .string(status.rawValue)
        alert["fingerprint"] = .string(r.fingerprint)
        let groupLabels = r.labels.filter { $0.key != "severity" }
        let groupKey = "{}:{" + groupLabels.sorted { $0.key < $1.key }.map { "\($0.key)=\"\($0.value)\"" }.joined(separator: ", ") + "}"
        return .object([
            "version": .string("4"), "groupKey": .string(groupKey), "truncatedAlerts": .number(0), "status": .string(status.rawValue),
            "receiver": .string(receiver), "groupLabels": strings(groupLabels), "commonLabels": alert["labels"]!,
            "commonAnnotations": alert["annotations"]!, "externalURL": .string(base), "alerts": .array([.object(alert)]),
        ])
    }

    /// What Prometheus posts to Alertmanager's `/api/v2/alerts`: firing alerts with an `endsAt` a few
    /// evaluations ahead (Alertmanager resolves them itself if Waybill goes silent), resolved ones with theirs.
    public static func alertmanagerPush(_ records: [AlertRecord], at t: Micros, interval: Micros, base: String) -> JSONValue {
        .array(records.compactMap { r in
            switch r.state {
            case .pending: return nil
            case .firing: return .object(alertmanagerAlert(r, status: .firing, base: base, endsAt: t + 4 * max(interval, 60_000_000)))
            case .resolved: return .object(alertmanagerAlert(r, status: .resolved, base: base, endsAt: r.resolvedAt))
            }
        })
    }
}

/// alerts.md's signature: `X-Waybill-Signature: sha256=HEX`, HEX the HMAC-SHA256 of `TIMESTAMP + "." + BODY`.
public enum HookSignature {
    public static func sign(secret: [UInt8], timestamp: Int64, body: [UInt8]) -> String {
        var message = Array("\(timestamp).".utf8)
        message += body
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: secret))
        return "sha256=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    /// Checks a received notification, in constant time (what a receiver does).
    public static func verify(secret: [UInt8], timestamp: Int64, body: [UInt8], header: String) -> Bool {
        guard header.hasPrefix("sha256="), let expected = hexBytes(String(header.dropFirst(7))) else { return false }
        var message = Array("\(timestamp).".utf8)
        message += body
        return HMAC<SHA256>.isValidAuthenticationCode(expected, authenticating: message, using: SymmetricKey(data: secret))
    }

    static func hexBytes(_ s: String) -> [UInt8]? {
        guard s.count % 2 == 0 else { return nil }
        var out: [UInt8] = []
        var it = s.makeIterator()
        while let a = it.next(), let b = it.next() {
            guard let v = UInt8(String([a, b]), radix: 16) else { return nil }
            out.append(v)
        }
        return out
    }
}

extension AlertPayloads {
}
