import Foundation
import Synchronization
import WaybillModel
import WaybillStore

/// How one rule fared at its last evaluation.
public struct RuleStatus: Sendable, Hashable {
    public var rule: AlertRule
    public var evaluatedAt: Micros?
    public var durationMillis: Double?
    public var error: String?
    public var active: Int
}

/// Live alerting: evaluates every rule at each tick, steps the alerts' state machine, and writes state
/// changes with the notifications they owe into the store's outbox in one transaction.
public actor AlertEngine {
    /// The rules now in force: the ones given at start, or the last `reload`.
    public nonisolated var config: AlertConfig { current.withLock { $0 } }
    private nonisolated let current: Mutex<AlertConfig>
    let evaluator: AlertEvaluator
    let store: any AlertStore
    /// The base of links in notifications: the rules' `external_url`, else the server's address (fixed at start).
    public nonisolated let baseURL: String
    private var policy: NotificationPolicy
    private var records: [String: AlertRecord] = [:]
    private var status: [String: RuleStatus] = [:]
    private var started = false
    private var lastPrune: Micros = .min / 2
    /// How long delivered and failed notifications stay in the outbox.
    public static let outboxHistory: Micros = 7 * 86_400_000_000

    public init(config: AlertConfig, source: any AlertSource, store: any AlertStore, baseURL: String) {
        self.current = Mutex(config)
        self.evaluator = AlertEvaluator(source: source)
        self.store = store
        self.baseURL = config.externalURL ?? baseURL
        self.policy = NotificationPolicy(config)
        for r in config.rules { status[r.name] = RuleStatus(rule: r, evaluatedAt: nil, durationMillis: nil, error: nil, active: 0) }
    }

    /// Loads the stored alert records (a restart continues where it stopped) and readies the rules' indexes.
    public func start() async throws {
        guard !started else { return }
        let decoder = JSONDecoder()
        for (fp, bytes) in try store.alertRecords() {
            if let r = try? decoder.decode(AlertRecord.self, from: Data(bytes)) { records[fp] = r }
        }
        for rule in config.rules { try await evaluator.source.prepare(rule) }
        started = true
    }

    /// Puts `new` rules in force from the next evaluation on (the server's rules reload). Each new rule's
    /// indexes are readied first: when one cannot be, this throws and the rules in force stay. Alerts of
    /// rules that keep their name carry on (a changed condition steps them from their current state);
    /// alerts of rules no longer present are removed at the next evaluation, without a notification.
    /// `external_url` stays the one of the start.
    public func reload(_ new: AlertConfig) async throws {
        if started { for rule in new.rules { try await evaluator.source.prepare(rule) } }
        let old = config
        current.withLock { $0 = new }
        policy = NotificationPolicy(new)
        var next: [String: RuleStatus] = [:]
        for r in new.rules {
            let kept = old.rules.first { $0.name == r.name } == r ? status[r.name] : nil
            next[r.name] = kept ?? RuleStatus(rule: r, evaluatedAt: nil, durationMillis: nil, error: nil,
                                              active: records.values.filter { $0.rule == r.name && $0.isActive }.count)
        }
        status = next
        kpiOrdersAt = [:]
    }

    /// One evaluation at `t`. Returns the alerts after it.
    @discardableResult
    public func evaluate(at t: Micros) async throws -> [AlertRecord] {
        try await start()
        let config = self.config
        var next: [String: AlertRecord] = [:]
        let ruleNames = Set(config.rules.map(\.name))
        for rule in config.rules {
            let previous = records.values.filter { $0.rule == rule.name }
            let began = DispatchTime.now().uptimeNanoseconds
            do {
                let samples = try kpiAware(rule, previous: previous, at: t)
                for r in AlertTransitions.step(rule: rule, samples: samples, previous: previous, at: t) { next[r.fingerprint] = r }
                status[rule.name]?.error = nil
            } catch {
                // A rule that cannot be evaluated keeps its alerts as they were.
                for r in previous { next[r.fingerprint] = r }
                status[rule.name]?.error = "\(error)"
            }
            status[rule.name]?.evaluatedAt = t
            status[rule.name]?.durationMillis = Double(DispatchTime.now().uptimeNanoseconds - began) / 1e6
        }
        var commit = AlertCommit()
        if t - lastPrune >= 3_600_000_000 {
            commit.pruneBefore = t - Self.outboxHistory
            lastPrune = t
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        for (fp, var r) in next {
            if let state = policy.due(r, at: t) {
                for hook in config.hooks where state == .firing || hook.sendResolved {
                    let body: JSONValue = hook.format == .waybill
                        ? AlertPayloads.waybillNotification(r, status: state, base: baseURL)
                        : AlertPayloads.alertmanagerWebhook(r, status: state, receiver: hook.name, base: baseURL)
                    commit.notifications.append(OutboxItem(hook: hook.name, fingerprint: fp, kind: state.rawValue, body: body.jsonBytes,
                                                           created: t, nextAt: t))
                }
                r.notifiedState = state
                r.notifiedAt = t
                next[fp] = r
            }
            if records[fp] != r { commit.upserts.append((fp, Array(try encoder.encode(r)))) }
        }
        for fp in records.keys where next[fp] == nil { commit.deletes.append(fp) }
        // Records of rules no longer configured go too.
        for (fp, r) in next where !ruleNames.contains(r.rule) { next[fp] = nil; commit.deletes.append(fp) }
        try await store.commitAlerts(commit)
        records = next
        for name in ruleNames { status[name]?.active = next.values.filter { $0.rule == name && $0.isActive }.count }
        return alerts()
    }

    /// How often the server re-reads the orders behind a KPI alert (the drill-down reads the window's facts,
    /// far more work than the figure itself); a new KPI alert gets them at once.
    public static let kpiOrdersRefresh: Micros = 5 * 60_000_000
    private var kpiOrdersAt: [String: Micros] = [:]

    /// The rule's samples; for a KPI rule the orders behind an alert that is already active are kept from
    /// the previous evaluation until `kpiOrdersRefresh` has passed.
    func kpiAware(_ rule: AlertRule, previous: [AlertRecord], at t: Micros) throws -> [AlertSample] {
        guard case .kpi = rule.condition else { return try evaluator.samples(rule, at: t, replay: false) }
        var samples = try evaluator.samples(rule, at: t, replay: false, withOrders: false)
        let active = Dictionary(previous.filter(\.isActive).map { ($0.labels, $0) }, uniquingKeysWith: { a, _ in a })
        var stale = false
        for i in samples.indices {
            if let p = active[AlertTransitions.labels(rule: rule, sample: samples[i])], let at = kpiOrdersAt[p.fingerprint], t - at < Self.kpiOrdersRefresh {
                samples[i].orders = p.orders
                samples[i].ordersTotal = p.ordersTotal
            } else {
                stale = true
            }
        }
        guard stale else { return samples }
        let fresh = try evaluator.samples(rule, at: t, replay: false)
        for s in fresh { kpiOrdersAt[Fingerprint.of(labels: AlertTransitions.labels(rule: rule, sample: s))] = t }
        return fresh
    }

    public func alerts() -> [AlertRecord] {
        records.values.sorted { ($0.rule, $0.fingerprint) < ($1.rule, $1.fingerprint) }
    }

    public func rules() -> [RuleStatus] {
        config.rules.compactMap { status[$0.name] }
    }
}

/// Evaluation of every rule as of a past instant, from the stored events alone (`waybill alerts --at`).
public enum AlertReplay {
    /// How far back, beyond a rule's `for`, a replay looks for when a KPI or span condition began.
    public static let lookback: Micros = 15 * 60_000_000

    public static func evaluate(config: AlertConfig, source: any AlertSource, at t: Micros) throws -> [AlertRecord] {
        let interval = config.evaluationInterval
        // Every evaluation below lies within the longest look-back of T.
        let reach = (config.rules.map(\.holdFor).max() ?? 0) + lookback + 2 * interval
        let evaluator = AlertEvaluator(source: source.replaying(reach: reach))
        var out: [AlertRecord] = []
        for rule in config.rules {
            let (now, before) = try samples(rule, evaluator, at: t, interval: interval)
            let previous = AlertTransitions.step(rule: rule, samples: before, previous: [], at: t - interval)
            out += AlertTransitions.step(rule: rule, samples: now, previous: previous, at: t)
                .filter { $0.state != .resolved || $0.resolvedAt == t }
        }
        return out
    }

    /// The samples at `t` and one evaluation before it, each with the time its condition began: from the
    /// data for SLA rules, else the earliest evaluation (every `interval` back, up to `for` + `lookback`)
    /// since which it held without a gap. The earlier evaluations only need the condition, not the orders.
    static func samples(_ rule: AlertRule, _ evaluator: AlertEvaluator, at t: Micros, interval: Micros) throws
        -> (now: [AlertSample], before: [AlertSample])
    {
        let now = try evaluator.samples(rule, at: t, replay: true)
        let before = try evaluator.samples(rule, at: t - interval, replay: true)
        if case .sla = rule.condition { return (now, before) }
        let steps = Int((rule.holdFor + lookback) / interval) + 1
        var holding: [Set<[String: String]>] = [Set(now.map(\.labels)), Set(before.map(\.labels))]
        func held(_ k: Int) throws -> Set<[String: String]> {
            while holding.count <= k {
                let at = t - Int64(holding.count) * interval
                holding.append(Set(try evaluator.samples(rule, at: at, replay: true, withOrders: false).map(\.labels)))
            }
            return holding[k]
        }
        /// The start of the run of evaluations holding `labels` that includes step `k`.
        func since(_ labels: [String: String], from k: Int) throws -> Micros {
            var j = k
            while j + 1 <= steps, try held(j + 1).contains(labels) { j += 1 }
            return t - Int64(j) * interval
        }
        var n = now, b = before
        for i in n.indices { n[i].since = try since(n[i].labels, from: 0) }
        for i in b.indices { b[i].since = try since(b[i].labels, from: 1) }
        return (n, b)
    }
}
