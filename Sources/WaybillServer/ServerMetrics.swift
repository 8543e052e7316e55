import CoreMetrics
import Foundation
import Prometheus
import Synchronization
import WaybillAlerts
import WaybillCollectors
import WaybillKPI
import WaybillModel
import WaybillQuery
import WaybillStore

/// The metrics of one server (`GET /metrics`, Prometheus text format 0.0.4).
///
/// Two kinds of families:
/// - counted as things happen (requests, events, spans, commits, alert evaluations and deliveries):
///   swift-metrics instruments (`CoreMetrics.Counter`, `Timer`) made by a `MetricsFactory` over this
///   server's own `PrometheusCollectorRegistry` (one registry per application, not the process-wide
///   `MetricsSystem`, so that several servers in one process keep their own counts);
/// - read at scrape time (store size, storage health, alerts, and the business figures from the
///   query layer's KPI rollups), written after the registry's output by `ExpositionWriter`. The
///   figures that read the store are cached (`FiguresCache`) so that a scrape stays fast on a large store.
///
/// Label values taken from input (sources, services, rejection reasons, hooks, warehouses, channels)
/// are bounded: at most `labelCap` distinct values per label, the rest counted under `other`.
public final class ServerMetrics: Sendable {
    public static let labelCap = 200

    public let registry = PrometheusCollectorRegistry()
    let factory: RegistryMetricsFactory
    let clock: @Sendable () -> Micros
    let sources = BoundedLabels(cap: labelCap)
    let reasons = BoundedLabels(cap: labelCap)
    let services = BoundedLabels(cap: labelCap)
    let hooks = BoundedLabels(cap: labelCap)
    let routes = BoundedLabels(cap: labelCap)
    let recent: RecentIngest
    let figures = FiguresCache()

    let rejectedBodies: CoreMetrics.Counter
    let throttled: CoreMetrics.Counter

    public init(clock: @escaping @Sendable () -> Micros = { currentMicros() }) {
        self.clock = clock
        factory = RegistryMetricsFactory(registry: registry)
        recent = RecentIngest(cap: Self.labelCap)
        rejectedBodies = CoreMetrics.Counter(label: "waybill_request_bodies_rejected_total", factory: factory)
        throttled = CoreMetrics.Counter(label: "waybill_ingest_throttled_total", factory: factory)
        // Counters without labels are shown from the start, at 0.
        for name in ["waybill_spans_duplicate_total", "waybill_spans_rejected_total"] {
            _ = CoreMetrics.Counter(label: name, factory: factory)
        }
    }

    // MARK: Counted as things happen

    /// `waybill_http_responses_total{code}`.
    func count(status: Int) {
        CoreMetrics.Counter(label: "waybill_http_responses_total", dimensions: [("code", String(status))], factory: factory).increment()
    }

    /// `waybill_http_request_duration_seconds{route,method,status}`: `route` is the route's pattern
    /// (`/api/v1/traces/{key}`), never the path asked; `unmatched` when no route answered.
    func request(route: String?, method: String, status: Int, nanoseconds: Int64) {
        let r = route.map { $0 == "NotFound" || $0.isEmpty ? "unmatched" : routes.value($0) } ?? "unmatched"
        let m = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"].contains(method) ? method : "other"
        CoreMetrics.Timer(label: "waybill_http_request_duration_seconds",
                          dimensions: [("route", r), ("method", m), ("status", String(status))], factory: factory)
            .recordNanoseconds(nanoseconds)
    }

    /// Events of one `POST /v1/events`: accepted and duplicates by source, rejections by source and
    /// reason, and each accepted event's lag from its `time` to its arrival.
    ///
    /// The store answers totals per request, so accepted and duplicates are attributed to the request's
    /// source when all its events share one; a request mixing sources with some duplicates counts
    /// under `mixed`.
    func events(_ decoded: DecodedEvents, result: AppendResult, arrivedAt now: Micros) {
        // One pass over the events: lags by raw source; the bound is applied once per distinct source.
        var raw: [String: [Micros]] = [:]
        for e in decoded.events { raw[e.source, default: []].append(max(0, now - e.time)) }
        var lags: [String: [Micros]] = [:]
        for (source, values) in raw { lags[sources.value(source), default: []].append(contentsOf: values) }
        let attribution: [(String, Int, Int)]
        if lags.count <= 1 {
            attribution = lags.keys.map { ($0, result.accepted, result.duplicates) }
        } else if result.duplicates == 0 {
            attribution = lags.map { ($0.key, $0.value.count, 0) }
        } else if result.accepted == 0 {
            attribution = lags.map { ($0.key, 0, $0.value.count) }
        } else {
            attribution = [("mixed", result.accepted, result.duplicates)]
        }
        for (s, accepted, duplicates) in attribution {
            if accepted > 0 { counter("waybill_events_accepted_total", [("source", s)]).increment(by: accepted) }
            if duplicates > 0 { counter("waybill_events_duplicate_total", [("source", s)]).increment(by: duplicates) }
        }
        var rejectedSources: [String] = []
        for r in decoded.rejected {
            let s = sources.value(r.source ?? MetricsFigures.unknownLabel)
            rejectedSources.append(s)
            counter("waybill_events_rejected_total", [("source", s), ("reason", reasons.value(Self.reason(r.reason)))]).increment()
        }
        // Lag of the events of a request that stored any (a request of duplicates only adds nothing new).
        if result.accepted > 0 {
            for (s, values) in lags {
                let timer = CoreMetrics.Timer(label: "waybill_event_lag_seconds", dimensions: [("source", s)], factory: factory)
                for v in values { timer.recordMicroseconds(v) }
            }
        }
        recent.record(now: now, accepted: attribution.map { ($0.0, $0.1) }, rejected: rejectedSources, lags: result.accepted > 0 ? lags : [:])
    }

    /// `waybill_spans_received_total{service}`, duplicates and rejections of one `POST /v1/traces`.
    func spans(_ spans: [Span], rejected: Int, result: AppendResult) {
        var byService: [String: Int] = [:]
        for s in spans { byService[services.value(s.service), default: 0] += 1 }
        for (s, n) in byService { counter("waybill_spans_received_total", [("service", s)]).increment(by: n) }
        if result.duplicates > 0 { counter("waybill_spans_duplicate_total", []).increment(by: result.duplicates) }
        if rejected > 0 { counter("waybill_spans_rejected_total", []).increment(by: rejected) }
    }

    /// `waybill_store_append_seconds{signal}`: one append from its hand-off to the store to its commit
    /// (waiting in the writer's queue included); the store changed, so the cached figures are read again.
    func commit(signal: String, since start: ContinuousClock.Instant) {
        CoreMetrics.Timer(label: "waybill_store_append_seconds", dimensions: [("signal", signal)], factory: factory)
            .recordNanoseconds(Self.nanoseconds(since: start))
        figures.invalidate()
    }

    /// `waybill_writer_commit_seconds{signal}`: each group commit of the store's writer, when the engine
    /// reports them (`CommitObservable`). The last server built over a store is the one told.
    func observeCommits(of store: any WaybillStore) {
        guard let observable = store as? any CommitObservable else { return }
        let timers = Dictionary(uniqueKeysWithValues: ["events", "spans"].map {
            ($0, CoreMetrics.Timer(label: "waybill_writer_commit_seconds", dimensions: [("signal", $0)], factory: factory))
        })
        observable.observeCommits { signal, seconds in timers[signal]?.recordNanoseconds(Int64(seconds * 1e9)) }
    }

    /// `waybill_alert_evaluation_seconds`: one evaluation tick of every rule.
    func alertEvaluation(since start: ContinuousClock.Instant) {
        CoreMetrics.Timer(label: "waybill_alert_evaluation_seconds", factory: factory).recordNanoseconds(Self.nanoseconds(since: start))
    }

    static func nanoseconds(since start: ContinuousClock.Instant) -> Int64 {
        let d = ContinuousClock.now - start
        return d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000
    }

    /// Counts this server's alert deliveries by hook (every configured hook shown from the start, at 0),
    /// and shows the evaluation histogram before the first tick.
    func attach(_ alerting: Alerting) {
        _ = CoreMetrics.Timer(label: "waybill_alert_evaluation_seconds", factory: factory)
        register(hooks: alerting.worker.hookNames)
        alerting.deliveries.attach(hooks: alerting.worker.hookURLs,
                                   report: { [weak self] hook, failed in self?.delivery(hook: hook, failed: failed) },
                                   register: { [weak self] names in self?.register(hooks: names) })
    }

    /// `waybill_alert_delivery_attempts_total{hook}` and `..._failures_total{hook}` (a failure: no 2xx).
    func delivery(hook: String, failed: Bool) {
        let h = hooks.value(hook)
        counter("waybill_alert_delivery_attempts_total", [("hook", h)]).increment()
        let failures = counter("waybill_alert_delivery_failures_total", [("hook", h)])
        if failed { failures.increment() }
    }

    /// Shows every configured hook's delivery counters at 0 before its first attempt.
    func register(hooks names: [String]) {
        for n in names {
            _ = counter("waybill_alert_delivery_attempts_total", [("hook", hooks.value(n))])
            _ = counter("waybill_alert_delivery_failures_total", [("hook", hooks.value(n))])
        }
    }

    private func counter(_ name: String, _ labels: [(String, String)]) -> CoreMetrics.Counter {
        CoreMetrics.Counter(label: name, dimensions: labels, factory: factory)
    }

    /// A rejection's reason label: the field that broke its rule, with array positions dropped
    /// (`data.lines[3].qty` -> `data.lines[].qty`) so that they do not multiply label values.
    static func reason(_ field: String?) -> String {
        guard let field, !field.isEmpty else { return "invalid" }
        var out = ""
        var inBracket = false
        for c in field {
            if c == "[" { inBracket = true; out.append(c) } else if c == "]" { inBracket = false; out.append(c) } else if !inBracket { out.append(c) }
        }
        return out
    }

    // MARK: The exposition

    /// The whole `/metrics` text: the registry's families, then those read now.
    func exposition(store: any WaybillStore, queries: LocalQueries, alerting: Alerting?) async -> String {
        var text = registry.emitToString()
        var w = ExpositionWriter()
        let now = clock()
        if let f = await figures.current(queries: queries, cap: Self.labelCap, now: now) {
            Self.write(figures: f, now: now, into: &w)
        }
        Self.write(storage: store.storageHealth, into: &w)
        if let alerting {
            Self.write(alerts: await alerting.engine.alerts(), rules: await alerting.engine.rules(), into: &w)
        }
        text += w.text
        return text
    }

    static func write(figures f: MetricsFigures, now: Micros, into w: inout ExpositionWriter) {
        w.gauge("waybill_store_events", f.stats.events)
        w.gauge("waybill_store_orders", f.stats.orders)
        w.gauge("waybill_store_linked_keys", f.stats.linkedKeys)
        w.gauge("waybill_ingest_queue_events", f.stats.queuedEvents)
        w.gauge("waybill_metrics_figures_age_seconds", Double(max(0, now - f.computedAt)) / 1e6)
        w.gauge("waybill_metrics_figures_read_seconds", f.durationSeconds)
        if let states = f.ordersByState {
            w.family("waybill_open_orders")
            for stage in Stage.allCases where !stage.isTerminal {
                w.sample("waybill_open_orders", [("state", stage.name)], Double(states[stage] ?? 0))
            }
            w.sample("waybill_open_orders", [("state", MetricsFigures.unknownLabel)], Double(states[nil] ?? 0))
        }
        for (dimension, prefix) in [("warehouse", ""), ("channel", "channel_")] {
            w.family("waybill_\(prefix)orders_allocated")
            w.family("waybill_\(prefix)fill_rate")
            w.family("waybill_\(prefix)order_fill_rate")
            for win in f.windows {
                for (label, acc) in dimension == "warehouse" ? win.warehouses : win.channels {
                    let labels = [(dimension, label), ("window", win.name)]
                    let k = acc.kpis
                    w.sample("waybill_\(prefix)orders_allocated", labels, Double(k.ordersAllocated))
                    if let r = k.fillRate { w.sample("waybill_\(prefix)fill_rate", labels, r) }
                    if let r = k.orderFillRate { w.sample("waybill_\(prefix)order_fill_rate", labels, r) }
                }
            }
        }
        w.family("waybill_shipments")
        for win in f.windows {
            for (label, acc) in win.warehouses { w.sample("waybill_shipments", [("warehouse", label), ("window", win.name)], Double(acc.shipments)) }
        }
        for (name, sketch) in [("waybill_allocation_delay_seconds", \KPIAccumulator.allocationDelay), ("waybill_shipment_lag_seconds", \KPIAccumulator.shipmentLag)] {
            w.family(name)
            let bounds = MetricFamily.named(name)!.buckets
            for win in f.windows {
                for (label, acc) in win.warehouses {
                    let s = acc[keyPath: sketch]
                    w.histogram(name, [("warehouse", label), ("window", win.name)], bounds: bounds,
                                cumulative: bounds.map { s.count(atMost: $0 * 1e6) }, count: s.count, sum: Double(s.sum) / 1e6)
                }
            }
        }
    }

    /// `waybill_storage_faults_total{kind}` (every kind, zeros included) and `waybill_storage_healthy`.
    static func write(storage h: StorageHealth, into w: inout ExpositionWriter) {
        w.family("waybill_storage_faults_total")
        for k in StorageFault.Kind.allCases { w.sample("waybill_storage_faults_total", [("kind", k.rawValue)], Double(h.faults[k] ?? 0)) }
        w.gauge("waybill_storage_healthy", h.isHealthy ? 1 : 0)
    }

    /// Alerts by state; per rule its last evaluation's cost and whether it failed; per SLA rule the
    /// orders overdue now (the orders of its active alerts).
    static func write(alerts: [AlertRecord], rules: [RuleStatus], into w: inout ExpositionWriter) {
        w.family("waybill_alerts")
        for s in [AlertState.pending, .firing, .resolved] { w.sample("waybill_alerts", [("state", s.rawValue)], Double(alerts.filter { $0.state == s }.count)) }
        w.family("waybill_alert_rule_evaluation_seconds")
        for r in rules { w.sample("waybill_alert_rule_evaluation_seconds", [("rule", r.rule.name)], (r.durationMillis ?? 0) / 1000) }
        w.family("waybill_alert_rule_failing")
        for r in rules { w.sample("waybill_alert_rule_failing", [("rule", r.rule.name)], r.error == nil ? 0 : 1) }
        w.family("waybill_orders_overdue")
        for r in rules {
            guard case .sla = r.rule.condition else { continue }
            let n = alerts.filter { $0.rule == r.rule.name && $0.isActive }.reduce(0) { $0 + $1.ordersTotal }
            w.sample("waybill_orders_overdue", [("rule", r.rule.name)], Double(n))
        }
    }
}

// MARK: - Alert deliveries

/// Passes each notification to the transport it wraps and tells the observer how it went, by hook.
struct ObservedTransport: NotificationTransport {
    let inner: any NotificationTransport
    let observer: DeliveryObserver

    func post(url: String, headers: [(String, String)], body: [UInt8], timeout: Micros) async -> TransportResult {
        let result = await inner.post(url: url, headers: headers, body: body, timeout: timeout)
        var failed = true
        if case .status(let code, _) = result, (200..<300).contains(code) { failed = false }
        observer.observe(url: url, failed: failed)
        return result
    }
}

/// Where the delivery worker's attempts are reported: a server's metrics, once attached. Attempts to
/// URLs that are no hook's (the Alertmanager push) are not counted.
public final class DeliveryObserver: Sendable {
    private let sink = Mutex<(hooks: [String: String], report: (@Sendable (String, Bool) -> Void)?,
                              register: (@Sendable ([String]) -> Void)?)>(([:], nil, nil))

    public init() {}

    /// `register` shows hooks at 0 before their first delivery (at attach, and for a reload's new hooks).
    func attach(hooks byURL: [String: String], report: @escaping @Sendable (String, Bool) -> Void,
                register: @escaping @Sendable ([String]) -> Void) {
        sink.withLock { $0 = (byURL, report, register) }
    }

    /// A rules reload's hooks: counted from now on, and shown at 0 until their first delivery.
    func update(hooks byURL: [String: String], names: [String]) {
        let register = sink.withLock { s -> (@Sendable ([String]) -> Void)? in
            s.hooks = byURL
            return s.register
        }
        register?(names)
    }

    func observe(url: String, failed: Bool) {
        let (hook, report) = sink.withLock { ($0.hooks[url], $0.report) }
        if let hook, let report { report(hook, failed) }
    }
}

extension DeliveryWorker {
    var hookNames: [String] { hooks.keys.sorted() }
    /// Hook name by URL (the first name by order when two hooks share a URL).
    var hookURLs: [String: String] {
        var m: [String: String] = [:]
        for name in hookNames where m[hooks[name]!.url] == nil { m[hooks[name]!.url] = name }
        return m
    }
}

// MARK: - Ingest health for the pages

/// What the overview's ingest-health panel shows, per source over the last minute.
public struct IngestHealth: Sendable, Equatable {
    public struct Source: Sendable, Equatable {
        public var source: String
        /// Events stored per second over the window (duplicates not included).
        public var eventsPerSecond: Double
        /// Events refused as invalid per second over the window.
        public var rejectionsPerSecond: Double
        /// Since the server started.
        public var acceptedTotal: Int
        public var rejectedTotal: Int
        /// Lag from an event's `time` to its arrival, over the events stored in the window; nil without any.
        public var lagP50Seconds: Double?
        public var lagP95Seconds: Double?
        public var lagMaxSeconds: Double?
    }

    /// Sources by name; `other` gathers those beyond the label bound, `mixed` the requests that mixed sources.
    public var sources: [Source]
    public var windowSeconds: Double
    /// Events waiting for the group-commit writer (as of the cached figures, at most a few seconds old); nil before the first read.
    public var queueDepth: Int?
}

extension ServerMetrics {
    /// The ingest-health figures: events/s and rejections/s by source over the last minute, the lag from
    /// event time to arrival per source (p50, p95, max), and the queue depth. For the overview page.
    public func ingestHealth() -> IngestHealth {
        IngestHealth(sources: recent.snapshot(now: clock()), windowSeconds: Double(RecentIngest.window) / 1e6,
                     queueDepth: figures.cached?.stats.queuedEvents)
    }
}

/// Per source, counts and lag sketches in 10-second slots over the last minute, and totals.
final class RecentIngest: Sendable {
    static let slot: Micros = 10_000_000
    static let slots = 6
    static var window: Micros { slot * Micros(slots) }

    struct Slot {
        var index: Int64 = .min
        var accepted = 0
        var rejected = 0
        var lag = QuantileSketch()
    }

    struct PerSource {
        var slots = Array(repeating: Slot(), count: RecentIngest.slots)
        var acceptedTotal = 0
        var rejectedTotal = 0
        mutating func slot(_ i: Int64) -> Int {
            let k = Int(((i % Int64(RecentIngest.slots)) + Int64(RecentIngest.slots)) % Int64(RecentIngest.slots))
            if slots[k].index != i { slots[k] = Slot(index: i) }
            return k
        }
    }

    let state = Mutex<[String: PerSource]>([:])
    let cap: Int

    init(cap: Int) { self.cap = cap }

    func record(now: Micros, accepted: [(String, Int)], rejected: [String], lags: [String: [Micros]]) {
        let i = now / Self.slot
        state.withLock { m in
            for (s, n) in accepted where n > 0 {
                let k = m[s, default: PerSource()].slot(i)
                m[s]!.slots[k].accepted += n
                m[s]!.acceptedTotal += n
            }
            for s in rejected {
                let k = m[s, default: PerSource()].slot(i)
                m[s]!.slots[k].rejected += 1
                m[s]!.rejectedTotal += 1
            }
            for (s, values) in lags {
                let k = m[s, default: PerSource()].slot(i)
                for v in values { m[s]!.slots[k].lag.add(v) }
            }
        }
    }

    func snapshot(now: Micros) -> [IngestHealth.Source] {
        let current = now / Self.slot
        let seconds = Double(Self.window) / 1e6
        return state.withLock { m in
            m.keys.sorted().map { s in
                let p = m[s]!
                var accepted = 0, rejected = 0
                var lag = QuantileSketch()
                for slot in p.slots where slot.index > current - Int64(Self.slots) && slot.index <= current {
                    accepted += slot.accepted
                    rejected += slot.rejected
                    lag.merge(slot.lag)
                }
                return IngestHealth.Source(source: s, eventsPerSecond: Double(accepted) / seconds, rejectionsPerSecond: Double(rejected) / seconds,
                                           acceptedTotal: p.acceptedTotal, rejectedTotal: p.rejectedTotal,
                                           lagP50Seconds: lag.quantile(percent: 50).map { $0 / 1e6 },
                                           lagP95Seconds: lag.quantile(percent: 95).map { $0 / 1e6 },
                                           lagMaxSeconds: lag.max.map { Double($0) / 1e6 })
            }
        }
    }
}

// MARK: - The cache of figures read from the store

/// The figures read from the store for `/metrics`, reused while younger than `maxAge` and nothing was
/// written since. A stale read is redone before answering when the last one took under `waitBudget`
/// (a small store: every scrape is exact); otherwise the scrape answers from the previous read while
/// one read runs in the background (a large store: the scrape stays fast, the figures are at most
/// `maxAge` plus one read old; `waybill_metrics_figures_age_seconds` says how old).
final class FiguresCache: Sendable {
    static let maxAge: Micros = 5_000_000
    static let waitBudget = 0.025

    struct State {
        var figures: MetricsFigures?
        var changed = true
        var running: Task<MetricsFigures?, Never>?
    }

    let state = Mutex(State())

    var cached: MetricsFigures? { state.withLock { $0.figures } }

    func invalidate() { state.withLock { $0.changed = true } }

    func current(queries: LocalQueries, cap: Int, now: Micros) async -> MetricsFigures? {
        enum Plan { case use(MetricsFigures), wait(Task<MetricsFigures?, Never>), background(MetricsFigures) }
        let plan: Plan = state.withLock { s in
            if let f = s.figures, !s.changed, now - f.computedAt < Self.maxAge { return .use(f) }
            let task = s.running ?? {
                s.changed = false
                let t = Task<MetricsFigures?, Never> { [weak self] in
                    let f = try? await queries.metricsFigures(cap: cap)
                    self?.state.withLock { st in
                        if let f { st.figures = f }
                        st.running = nil
                    }
                    return f
                }
                s.running = t
                return t
            }()
            if let f = s.figures, f.durationSeconds >= Self.waitBudget { return .background(f) }
            return .wait(task)
        }
        switch plan {
        case .use(let f), .background(let f): return f
        case .wait(let t): return await t.value ?? cached
        }
    }
}

// MARK: - Bounded label values

/// At most `cap` distinct values, first come first kept; any later new value is `other`. Empty is `unknown`.
final class BoundedLabels: Sendable {
    let cap: Int
    private let seen = Mutex<Set<String>>([])

    init(cap: Int) { self.cap = cap }

    func value(_ v: String) -> String {
        if v.isEmpty { return MetricsFigures.unknownLabel }
        return seen.withLock { s in
            if s.contains(v) { return v }
            if s.count < cap - 1 {
                s.insert(v)
                return v
            }
            return MetricsFigures.otherLabel
        }
    }
}

// MARK: - The text written at scrape time

/// Writes families in the Prometheus text format 0.0.4: `# HELP` (from `MetricFamily.all`, `\` and
/// newline escaped), `# TYPE`, samples with label values escaped (`\`, `"`, newline).
struct ExpositionWriter {
    var text = ""

    mutating func family(_ name: String) {
        let f = MetricFamily.named(name)!
        text += "# HELP \(name) \(f.help.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\n", with: "\\n"))\n"
        text += "# TYPE \(name) \(f.kind.rawValue)\n"
    }

    mutating func gauge(_ name: String, _ value: Int) { gauge(name, Double(value)) }

    mutating func gauge(_ name: String, _ value: Double) {
        family(name)
        sample(name, [], value)
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
        text += name
        if !labels.isEmpty {
            text += "{" + labels.map { "\($0.0)=\"\(Self.escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        text += " " + Self.format(value) + "\n"
    }

    mutating func histogram(_ name: String, _ labels: [(String, String)], bounds: [Double], cumulative: [Int64], count: Int64, sum: Double) {
        var running: Int64 = 0
        for (b, c) in zip(bounds, cumulative) {
            running = max(running, min(c, count))
            sample(name + "_bucket", labels + [("le", Self.format(b))], Double(running))
        }
        sample(name + "_bucket", labels + [("le", "+Inf")], Double(count))
        sample(name + "_sum", labels, sum)
        sample(name + "_count", labels, Double(count))
    }

    static func escape(_ v: String) -> String {
        var out = ""
        out.reserveCapacity(v.utf8.count)
        for c in v.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    static func format(_ v: Double) -> String {
        if v.isNaN { return "NaN" }
        if v.isInfinite { return v > 0 ? "+Inf" : "-Inf" }
        if v == v.rounded(), abs(v) < 1e15 { return String(Int64(v)) }
        return String(v)
    }
}

// MARK: - swift-metrics over this server's registry

/// A swift-metrics `MetricsFactory` that makes its handlers in one `PrometheusCollectorRegistry`, with
/// the help text and histogram buckets of `MetricFamily.all` (swift-prometheus' own factory leaves
/// `# HELP` out, which `promtool check metrics` reports).
struct RegistryMetricsFactory: MetricsFactory {
    let registry: PrometheusCollectorRegistry

    func help(_ label: String) -> String { MetricFamily.named(label)?.help ?? label }

    func makeCounter(label: String, dimensions: [(String, String)]) -> any CounterHandler {
        registry.makeCounter(name: label, labels: dimensions, help: help(label))
    }

    func makeFloatingPointCounter(label: String, dimensions: [(String, String)]) -> any FloatingPointCounterHandler {
        registry.makeCounter(name: label, labels: dimensions, help: help(label))
    }

    func makeRecorder(label: String, dimensions: [(String, String)], aggregate: Bool) -> any RecorderHandler {
        guard aggregate else { return registry.makeGauge(name: label, labels: dimensions, help: help(label)) }
        return registry.makeValueHistogram(name: label, labels: dimensions, buckets: MetricFamily.named(label)?.buckets ?? [1], help: help(label))
    }

    func makeMeter(label: String, dimensions: [(String, String)]) -> any MeterHandler {
        registry.makeGauge(name: label, labels: dimensions, help: help(label))
    }

    func makeTimer(label: String, dimensions: [(String, String)]) -> any TimerHandler {
        let buckets = (MetricFamily.named(label)?.buckets ?? [1]).map { Duration.nanoseconds(Int64(($0 * 1e9).rounded())) }
        return registry.makeDurationHistogram(name: label, labels: dimensions, buckets: buckets, help: help(label))
    }

    func destroyCounter(_ handler: any CounterHandler) {
        if let c = handler as? Prometheus.Counter { registry.unregisterCounter(c) }
    }

    func destroyFloatingPointCounter(_ handler: any FloatingPointCounterHandler) {
        if let c = handler as? Prometheus.Counter { registry.unregisterCounter(c) }
    }

    func destroyRecorder(_ handler: any RecorderHandler) {
        if let g = handler as? Prometheus.Gauge { registry.unregisterGauge(g) }
        if let h = handler as? ValueHistogram { registry.unregisterValueHistogram(h) }
    }

    func destroyMeter(_ handler: any MeterHandler) {
        if let g = handler as? Prometheus.Gauge { registry.unregisterGauge(g) }
    }

    func destroyTimer(_ handler: any TimerHandler) {
        if let h = handler as? DurationHistogram { registry.unregisterDurationHistogram(h) }
    }
}
