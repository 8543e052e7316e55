import Foundation
import WaybillKPI
import WaybillModel
import Yams

/// A comparison of alerts.md: `>`, `>=`, `<`, `<=`.
public enum Comparison: String, Sendable, Hashable, CaseIterable {
    case gt = ">", ge = ">=", lt = "<", le = "<="
    public func holds(_ value: Double, _ threshold: Double) -> Bool {
        switch self {
        case .gt: return value > threshold
        case .ge: return value >= threshold
        case .lt: return value < threshold
        case .le: return value <= threshold
        }
    }
}

/// A KPI of kpis.md over a sliding window crosses a threshold, per group of `by` when given.
public struct KPIRule: Sendable, Hashable {
    public var metric: KPIMetric
    public var op: Comparison
    public var threshold: Double
    public var window: Micros
    public var by: KPIDimension?
}

/// Something expected of an order did not happen in time: `after` reached, `expect` (or any later
/// lifecycle stage) not reached within `within`, and the order not cancelled.
public struct SLARule: Sendable, Hashable {
    public var after: Stage
    public var expect: Stage
    public var within: Micros
    public var by: KPIDimension?
}

/// Technical telemetry: the error rate of a service's spans over a window.
public struct SpanRule: Sendable, Hashable {
    public var service: String?
    public var name: String?
    public var op: Comparison
    public var threshold: Double
    public var window: Micros
    /// Fewer spans than this in the window give no value (an error rate over 2 spans is noise).
    public var minSpans: Int
}

public enum RuleCondition: Sendable, Hashable {
    case kpi(KPIRule)
    case sla(SLARule)
    case spans(SpanRule)

    public var kind: String {
        switch self {
        case .kpi: return "kpi"
        case .sla: return "sla"
        case .spans: return "spans"
        }
    }
}

public struct AlertRule: Sendable, Hashable {
    public var name: String
    public var condition: RuleCondition
    public var holdFor: Micros
    public var severity: String
    public var annotations: [String: String]
    public var labels: [String: String]
    /// The file the rule was loaded from.
    public var file: String

    public init(name: String, condition: RuleCondition, holdFor: Micros = 0, severity: String = "warning",
                annotations: [String: String] = [:], labels: [String: String] = [:], file: String = "") {
        self.name = name
        self.condition = condition
        self.holdFor = holdFor
        self.severity = severity
        self.annotations = annotations
        self.labels = labels
        self.file = file
    }

    /// The label names that split the rule into one alert per group.
    public var groupDimension: KPIDimension? {
        switch condition {
        case .kpi(let k): return k.by
        case .sla(let s): return s.by
        case .spans: return nil
        }
    }
}

public struct HookConfig: Sendable, Hashable {
    public enum Format: String, Sendable, Hashable { case waybill, alertmanager }
    public var name: String
    public var url: String
    /// The environment variable that holds the HMAC key; never the key itself.
    public var secretEnv: String?
    public var format: Format
    public var sendResolved: Bool
    public var timeout: Micros
    /// The `Content-Type` of the bodies sent to this hook (saved reports also send HTML).
    public var contentType = "application/json"

    public init(name: String, url: String, secretEnv: String?, format: Format, sendResolved: Bool, timeout: Micros,
                contentType: String = "application/json") {
        self.name = name
        self.url = url
        self.secretEnv = secretEnv
        self.format = format
        self.sendResolved = sendResolved
        self.timeout = timeout
        self.contentType = contentType
    }
}

/// Everything an alerts file configures; several files merge (rules and hooks add up, names stay unique).
public struct AlertConfig: Sendable, Hashable {
    public var rules: [AlertRule] = []
    public var hooks: [HookConfig] = []
    /// Also push alerts to this Alertmanager's `/api/v2/alerts`.
    public var alertmanager: String?
    public var evaluationInterval: Micros = 15_000_000
    /// Alertmanager's routing timers, per group (a group is a rule and its `by` labels).
    public var groupWait: Micros = 30_000_000
    public var groupInterval: Micros = 300_000_000
    public var repeatInterval: Micros = 4 * 3_600_000_000
    /// The base of links in notifications (`url`, trace links); the server's own address when unset.
    public var externalURL: String?
    /// Delivery attempts before a notification is given up (connection errors, timeouts and 5xx retry).
    public var maxAttempts = 12

    public init() {}
}

/// A problem in an alerts file, naming the file, the rule (or hook) and the field.
public struct AlertConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    public var file: String
    public var line: Int?
    public var context: String?
    public var field: String
    public var rule: String

    public init(file: String, line: Int? = nil, context: String? = nil, field: String, rule: String) {
        self.file = file
        self.line = line
        self.context = context
        self.field = field
        self.rule = rule
    }

    public var description: String {
        var s = file
        if let line { s += ":\(line)" }
        s += ": "
        if let context { s += context + ": " }
        return s + "\(field): \(rule)"
    }
}

extension AlertConfig {
    /// Loads files and directories (every `.yaml`/`.yml` in a directory, by name) into one config.
    public static func load(paths: [String]) throws -> AlertConfig {
        var files: [String] = []
        for p in paths {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: p, isDirectory: &isDir) else {
                throw AlertConfigError(file: p, field: "file", rule: "does not exist")
            }
            if isDir.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: p).filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted()
                if names.isEmpty { throw AlertConfigError(file: p, field: "file", rule: "the directory holds no .yaml or .yml file") }
                files += names.map { (p as NSString).appendingPathComponent($0) }
            } else {
                files.append(p)
            }
        }
        var texts: [(path: String, text: String)] = []
        for f in files {
            guard let data = FileManager.default.contents(atPath: f), let text = String(data: data, encoding: .utf8) else {
                throw AlertConfigError(file: f, field: "file", rule: "cannot be read as UTF-8 text")
            }
            texts.append((f, text))
        }
        return try load(files: texts)
    }

    /// Rules files given as (path, text), merged in the order given; `path` names the file in errors.
    public static func load(files: [(path: String, text: String)]) throws -> AlertConfig {
        var config = AlertConfig()
        for (f, text) in files {
            try config.merge(try parse(yaml: text, file: f), file: f)
        }
        return config
    }

    mutating func merge(_ other: AlertConfig, file: String) throws {
        for r in other.rules where rules.contains(where: { $0.name == r.name }) {
            throw AlertConfigError(file: file, context: "rule '\(r.name)'", field: "name", rule: "is already defined in \(rules.first { $0.name == r.name }!.file)")
        }
        for h in other.hooks where hooks.contains(where: { $0.name == h.name }) {
            throw AlertConfigError(file: file, context: "hook '\(h.name)'", field: "name", rule: "is already defined by another file")
        }
        rules += other.rules
        hooks += other.hooks
        let defaults = AlertConfig()
        if other.alertmanager != nil { alertmanager = other.alertmanager }
        if other.externalURL != nil { externalURL = other.externalURL }
        if other.evaluationInterval != defaults.evaluationInterval { evaluationInterval = other.evaluationInterval }
        if other.groupWait != defaults.groupWait { groupWait = other.groupWait }
        if other.groupInterval != defaults.groupInterval { groupInterval = other.groupInterval }
        if other.repeatInterval != defaults.repeatInterval { repeatInterval = other.repeatInterval }
        if other.maxAttempts != defaults.maxAttempts { maxAttempts = other.maxAttempts }
    }

    /// Parses one alerts file of alerts.md.
    public static func parse(yaml: String, file: String) throws -> AlertConfig {
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch {
            throw AlertConfigError(file: file, field: "yaml", rule: "is not valid YAML: \(error)")
        }
        var config = AlertConfig()
        guard let root else { return config }
        let top = try YAMLFields(root, file: file, context: nil)
        try top.allow(["rules", "hooks", "alertmanager", "evaluation_interval", "group_wait", "group_interval", "repeat_interval",
                       "external_url", "max_attempts"])
        if let v = try top.duration("evaluation_interval") {
            guard v >= 1_000_000 else { throw top.error("evaluation_interval", "must be at least 1s") }
            config.evaluationInterval = v
        }
        if let v = try top.duration("group_wait") { config.groupWait = v }
        if let v = try top.duration("group_interval") { config.groupInterval = v }
        if let v = try top.duration("repeat_interval") { config.repeatInterval = v }
        if let v = try top.int("max_attempts") {
            guard v >= 1 else { throw top.error("max_attempts", "must be at least 1") }
            config.maxAttempts = v
        }
        if let v = try top.string("alertmanager") { config.alertmanager = try top.url("alertmanager", v) }
        if let v = try top.string("external_url") { config.externalURL = try top.url("external_url", v) }
        for (i, node) in try top.list("rules").enumerated() {
            let rule = try parseRule(node, index: i, file: file)
            if config.rules.contains(where: { $0.name == rule.name }) {
                throw AlertConfigError(file: file, line: node.mark?.line, context: "rules[\(i)] '\(rule.name)'", field: "name", rule: "is used by another rule")
            }
            config.rules.append(rule)
        }
        for (i, node) in try top.list("hooks").enumerated() {
            let hook = try parseHook(node, index: i, file: file)
            if config.hooks.contains(where: { $0.name == hook.name }) {
                throw AlertConfigError(file: file, line: node.mark?.line, context: "hooks[\(i)] '\(hook.name)'", field: "name", rule: "is used by another hook")
            }
            config.hooks.append(hook)
        }
        return config
    }

    static func parseRule(_ node: Node, index: Int, file: String) throws -> AlertRule {
        var f = try YAMLFields(node, file: file, context: "rules[\(index)]")
        let name = try f.requiredString("name")
        guard name.range(of: "^[A-Za-z_][A-Za-z0-9_]*$", options: .regularExpression) != nil else {
            throw f.error("name", "must be letters, digits and _ (an Alertmanager label value that is also an identifier)")
        }
        f.context = "rules[\(index)] '\(name)'"
        let kinds = ["kpi", "after", "spans"].filter { f.has($0) }
        guard kinds.count == 1 else {
            throw f.error(kinds.isEmpty ? "kpi" : kinds[1], kinds.isEmpty
                ? "a rule needs one of kpi (a KPI threshold), after/expect/within (an order SLA) or spans (an error rate)"
                : "a rule has exactly one of kpi, after, spans")
        }
        let common = ["name", "for", "severity", "annotations", "labels"]
        let by = try f.string("by").map { b throws(AlertConfigError) -> KPIDimension in
            guard let d = KPIDimension(rawValue: b) else { throw f.error("by", "'\(b)' is not one of warehouse, channel, region") }
            return d
        }
        let condition: RuleCondition
        switch kinds[0] {
        case "kpi":
            try f.allow(common + ["kpi", "op", "threshold", "window", "by"])
            let text = try f.requiredString("kpi")
            guard let metric = KPIMetric(text) else {
                throw f.error("kpi", "'\(text)' is not a KPI; use one of " + KPIMetric.all.map(\.description).joined(separator: ", "))
            }
            let op = try f.comparison("op")
            guard let threshold = try f.number("threshold") else { throw f.error("threshold", "is required: a number") }
            guard let window = try f.duration("window") else { throw f.error("window", "is required: a duration like 1h") }
            condition = .kpi(KPIRule(metric: metric, op: op, threshold: threshold, window: window, by: by))
        case "after":
            try f.allow(common + ["after", "expect", "within", "by"])
            let after = try f.stage("after")
            let expect = try f.stage("expect")
            guard after != .cancelled, expect != .cancelled else {
                throw f.error(after == .cancelled ? "after" : "expect", "cannot be order.cancelled: a cancelled order never fires")
            }
            guard after < expect else {
                throw f.error("expect", "must be a later lifecycle stage than after (\(after.name)); stages in order: "
                              + Stage.allCases.filter { $0 != .cancelled }.map { "order." + $0.name }.joined(separator: ", "))
            }
            guard let within = try f.duration("within") else { throw f.error("within", "is required: a duration like 15m") }
            condition = .sla(SLARule(after: after, expect: expect, within: within, by: by))
        default:
            try f.allow(common + ["spans", "error_rate", "window", "min_spans"])
            let spans = try YAMLFields(f.node("spans")!, file: file, context: f.context.map { $0 + ": spans" })
            try spans.allow(["service", "name"])
            let expr = try f.requiredString("error_rate")
            let parts = expr.split(separator: " ", omittingEmptySubsequences: true)
            guard parts.count == 2, let op = Comparison(rawValue: String(parts[0])), let t = Double(parts[1]), t >= 0, t <= 1 else {
                throw f.error("error_rate", "must be a comparison and a ratio between 0 and 1, like \"> 0.05\"")
            }
            guard let window = try f.duration("window") else { throw f.error("window", "is required: a duration like 5m") }
            let minSpans = try f.int("min_spans") ?? 1
            guard minSpans >= 1 else { throw f.error("min_spans", "must be at least 1") }
            condition = .spans(SpanRule(service: try spans.string("service"), name: try spans.string("name"), op: op, threshold: t,
                                        window: window, minSpans: minSpans))
        }
        let holdFor = try f.duration("for") ?? 0
        let severity = try f.string("severity") ?? "warning"
        return AlertRule(name: name, condition: condition, holdFor: holdFor, severity: severity,
                         annotations: try f.stringMap("annotations"), labels: try f.stringMap("labels"), file: file)
    }

    static func parseHook(_ node: Node, index: Int, file: String) throws -> HookConfig {
        var f = try YAMLFields(node, file: file, context: "hooks[\(index)]")
        let name = try f.requiredString("name")
        f.context = "hooks[\(index)] '\(name)'"
        try f.allow(["name", "url", "secret_env", "format", "send_resolved", "timeout"])
        let url = try f.url("url", try f.requiredString("url"))
        let formatText = try f.string("format") ?? "waybill"
        guard let format = HookConfig.Format(rawValue: formatText) else {
            throw f.error("format", "'\(formatText)' is not one of waybill, alertmanager")
        }
        let secretEnv = try f.string("secret_env")
        if let s = secretEnv, s.range(of: "^[A-Za-z_][A-Za-z0-9_]*$", options: .regularExpression) == nil {
            throw f.error("secret_env", "must name an environment variable (the secret itself never goes in the file)")
        }
        return HookConfig(name: name, url: url, secretEnv: secretEnv, format: format, sendResolved: try f.bool("send_resolved") ?? true,
                          timeout: try f.duration("timeout") ?? 10_000_000)
    }
}

/// Typed access to one YAML mapping with errors that name the file, line, context and field (alert rules
/// and the saved queries of `WaybillReports` read their files through it).
public struct YAMLFields {
    public let mapping: Node.Mapping
    public let file: String
    public let line: Int?
    public var context: String?

    public init(_ node: Node, file: String, context: String?) throws {
        self.file = file
        self.line = node.mark?.line
        self.context = context
        guard let m = node.mapping else {
            throw AlertConfigError(file: file, line: node.mark?.line, context: context, field: context == nil ? "document" : "entry",
                                   rule: "must be a mapping of field: value")
        }
        mapping = m
    }

    public func error(_ field: String, _ rule: String) -> AlertConfigError {
        AlertConfigError(file: file, line: node(field)?.mark?.line ?? line, context: context, field: field, rule: rule)
    }

    public func node(_ key: String) -> Node? { mapping[key] }
    public func has(_ key: String) -> Bool { mapping[key] != nil }

    public func allow(_ keys: [String]) throws {
        for k in mapping.keys {
            guard let s = k.string else { throw error("?", "keys must be strings") }
            if !keys.contains(s) { throw error(s, "is not a known field here; known: " + keys.joined(separator: ", ")) }
        }
    }

    public func string(_ key: String) throws -> String? {
        guard let n = node(key) else { return nil }
        guard let s = n.scalar?.string, n.null == nil else { throw error(key, "must be a string") }
        return s
    }

    public func requiredString(_ key: String) throws -> String {
        guard let s = try string(key), !s.isEmpty else { throw error(key, "is required: a non-empty string") }
        return s
    }

    public func number(_ key: String) throws -> Double? {
        guard let n = node(key) else { return nil }
        guard let v = n.float ?? n.int.map(Double.init), v.isFinite else { throw error(key, "must be a number") }
        return v
    }

    public func int(_ key: String) throws -> Int? {
        guard let n = node(key) else { return nil }
        guard let v = n.int else { throw error(key, "must be an integer") }
        return v
    }

    public func bool(_ key: String) throws -> Bool? {
        guard let n = node(key) else { return nil }
        guard let v = n.bool else { throw error(key, "must be true or false") }
        return v
    }

    public func duration(_ key: String) throws -> Micros? {
        guard let s = try string(key) else { return nil }
        guard let v = DurationText.parse(s), v >= 0 else { throw error(key, "'\(s)' is not a duration like 30s, 15m, 1h or 2d") }
        return v
    }

    public func url(_ key: String, _ s: String) throws -> String {
        guard let u = URL(string: s), let scheme = u.scheme, ["http", "https"].contains(scheme), u.host != nil else {
            throw error(key, "'\(s)' is not an http:// or https:// URL")
        }
        return s.hasSuffix("/") && key != "url" ? String(s.dropLast()) : s
    }

    public func comparison(_ key: String) throws -> Comparison {
        let s = try requiredString(key)
        guard let c = Comparison(rawValue: s) else { throw error(key, "'\(s)' is not one of >, >=, <, <=") }
        return c
    }

    public func stage(_ key: String) throws -> Stage {
        let s = try requiredString(key)
        guard let st = Stage(eventType: s) else {
            throw error(key, "'\(s)' is not a lifecycle event type; use one of "
                        + Stage.allCases.map { "order." + $0.name }.joined(separator: ", "))
        }
        return st
    }

    public func list(_ key: String) throws -> [Node] {
        guard let n = node(key) else { return [] }
        if n.null != nil { return [] }
        guard let seq = n.sequence else { throw error(key, "must be a list") }
        return Array(seq)
    }

    public func stringMap(_ key: String) throws -> [String: String] {
        guard let n = node(key) else { return [:] }
        guard let m = n.mapping else { throw error(key, "must be a mapping of name: text") }
        var out: [String: String] = [:]
        for (k, v) in m {
            guard let ks = k.string, let vs = v.scalar?.string else { throw error(key, "must map names to text") }
            out[ks] = vs
        }
        return out
    }
}
