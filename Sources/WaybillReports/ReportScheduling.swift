import Foundation
import WaybillAlerts
import WaybillKPI
import WaybillModel
import WaybillQuery
import WaybillStore

/// The bodies a report is delivered as.
public enum ReportBodies {
    /// The body for one delivery; `base` is the server's external URL (links in the page and the message).
    public static func body(_ doc: ReportDocument, format: ReportDelivery.Format, base: String) -> [UInt8] {
        switch format {
        case .html: return Array(ReportRenderer.render(doc, format: .html, linkBase: base).utf8)
        case .json: return Array(ReportRenderer.render(doc, format: .json).utf8)
        case .slack: return slack(doc, base: base).jsonBytes
        }
    }

    /// The HTML report's address on the server, at the report's instant.
    public static func link(_ doc: ReportDocument, base: String) -> String {
        base + "/api/v1/reports/" + URLText.pathSegment(doc.report) + "?" + URLText.query(["format": "html", "at": doc.at])
    }

    /// A Slack incoming-webhook message (`text` in Slack's mrkdwn): the title, the window, one line per
    /// KPI with its change, and a link to the HTML report.
    public static func slack(_ doc: ReportDocument, base: String) -> JSONValue {
        func plain(_ s: String) -> String {
            s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        var lines = ["*" + plain(doc.title) + "*", plain(ReportRenderer.windowLine(doc))]
        for k in doc.metrics {
            var line = "• " + k.label + ": " + KPIFormatting.value(doc.current.total, k)
            if let p = doc.previous {
                line += " (" + KPIFormatting.change(k, current: doc.current.total.value(k), previous: p.total.value(k)).text + ")"
            }
            lines.append(line)
        }
        lines.append("<" + link(doc, base: base) + "|Open the report>")
        return .object(["text": .string(lines.joined(separator: "\n"))])
    }
}

/// Sends scheduled reports exactly once per scheduled time, through the alert outbox (signed, retried
/// and given up the same way as alert notifications, by the one delivery worker that drains it).
///
/// Durability: per report, the last scheduled time sent is a store checkpoint (`report-schedule/NAME`).
/// A due time is rendered as of that time, its notifications committed to the outbox, then the
/// checkpoint saved. A crash between the two is caught on restart: a notification of that report and
/// time already in the outbox (its fingerprint is `report:NAME@TIME`) is not added again.
/// Times missed while the server was down are sent once when it is back: only the latest of them, as
/// of its own scheduled time. A report with no checkpoint yet (new, or a new store) starts from now:
/// its first send is its next scheduled time.
public actor ReportScheduler {
    public nonisolated let reports: [ReportDefinition]
    let queries: any WaybillQueries
    let outbox: any AlertStore
    let checkpoints: any WorkflowStore
    public nonisolated let baseURL: String
    let log: @Sendable (String) -> Void
    /// How soon a report that failed to render (a storage fault, say) is tried again.
    public static let retryAfterFailure: Micros = 60_000_000

    public init(reports: [ReportDefinition], queries: any WaybillQueries, outbox: any AlertStore, checkpoints: any WorkflowStore,
                baseURL: String, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.reports = reports.filter { $0.schedule != nil && !$0.deliver.isEmpty }
        self.queries = queries
        self.outbox = outbox
        self.checkpoints = checkpoints
        self.baseURL = baseURL
        self.log = log
    }

    public static func checkpointName(_ report: String) -> String { "report-schedule/" + report }
    public static func fingerprint(report: String, scheduled: Micros) -> String { "report:\(report)@\(RFC3339.format(scheduled))" }

    struct Checkpoint: Codable { var lastScheduled: Int64 }

    /// The last scheduled time sent (or the time scheduling began), nil before the first run.
    public nonisolated func lastSent(_ report: String) throws -> Micros? {
        guard let c = try checkpoints.loadCheckpoint(name: Self.checkpointName(report)) else { return nil }
        return try JSONDecoder().decode(Checkpoint.self, from: Data(c.bytes)).lastScheduled
    }

    func save(_ report: String, _ t: Micros) async throws {
        try await checkpoints.saveCheckpoint(name: Self.checkpointName(report), bytes: Array(try JSONEncoder().encode(Checkpoint(lastScheduled: t))))
    }

    /// Queues every report due at `now` and returns when to look again: the earliest next scheduled time,
    /// a day at the latest (so a changed time-zone rule or clock is noticed), sooner after a failure.
    @discardableResult
    public func runDue(now: Micros) async -> Micros {
        var wake = now + 86_400_000_000
        for def in reports {
            guard let schedule = def.schedule else { continue }
            do {
                try await runDue(def, schedule, now: now)
                if let n = schedule.next(after: now) { wake = min(wake, n) }
            } catch {
                log("scheduled report '\(def.name)' not sent yet: \(error); retrying in \(DurationText.format(Self.retryAfterFailure))")
                wake = min(wake, now + Self.retryAfterFailure)
            }
        }
        return wake
    }

    func runDue(_ def: ReportDefinition, _ schedule: CronSchedule, now: Micros) async throws {
        guard let last = try lastSent(def.name) else {
            try await save(def.name, now)
            return
        }
        guard let due = schedule.latest(after: last, through: now) else { return }
        let fp = Self.fingerprint(report: def.name, scheduled: due)
        if !(try outbox.recentNotifications(limit: 2000).contains { $0.fingerprint == fp }) {
            try await queue(def, at: due, fingerprint: fp, now: now)
        }
        try await save(def.name, due)
    }

    /// Renders `def` as of `at` and commits one notification per hook to the outbox, due at `now`.
    func queue(_ def: ReportDefinition, at: Micros, fingerprint: String, now: Micros) async throws {
        let doc = try await ReportRenderer.document(def, at: at, using: queries)
        var commit = AlertCommit()
        for d in def.deliver {
            commit.notifications.append(OutboxItem(hook: d.hook.name, fingerprint: fingerprint, kind: "report",
                                                   body: ReportBodies.body(doc, format: d.format, base: baseURL), created: now, nextAt: now))
        }
        try await outbox.commitAlerts(commit)
    }
}

/// `waybill report NAME --send` (and `POST /api/v1/reports/{name}/send`): a report sent now goes through the
/// same durable outbox as scheduled reports and alert notifications: one notification per hook, committed
/// first, then signed, sent, retried with backoff and given up by a `DeliveryWorker` (the server's, or the
/// command's own for just these notifications). A notification the command could not deliver stays in the
/// outbox, pending, so the server that delivers from the store retries it.
public enum ReportOutbox {
    /// The fingerprint of a report sent on request at `now` (scheduled runs use `ReportScheduler.fingerprint`).
    public static func fingerprint(report: String, sentAt now: Micros) -> String { "report:\(report)@send:\(RFC3339.format(now))" }

    /// Commits one notification per hook of `def`, due now; returns their fingerprint.
    @discardableResult
    public static func queue(_ doc: ReportDocument, _ def: ReportDefinition, base: String, outbox: any AlertStore, now: Micros) async throws -> String {
        let fp = fingerprint(report: def.name, sentAt: now)
        var commit = AlertCommit()
        for d in def.deliver {
            commit.notifications.append(OutboxItem(hook: d.hook.name, fingerprint: fp, kind: "report",
                                                   body: ReportBodies.body(doc, format: d.format, base: base), created: now, nextAt: now))
        }
        try await outbox.commitAlerts(commit)
        return fp
    }

    /// The outbox's notifications of one fingerprint, oldest first.
    public static func notifications(_ fingerprint: String, in outbox: any AlertStore) throws -> [OutboxItem] {
        try outbox.recentNotifications(limit: 5_000).filter { $0.fingerprint == fingerprint }.sorted { $0.id < $1.id }
    }

    /// Delivers the notifications of `fingerprint` with a `DeliveryWorker` that sees only them, attempt after
    /// attempt as their retries fall due, until each is delivered or given up, or `attempts` attempts were
    /// made (what is left stays pending in the outbox). Returns the notifications as they end.
    public static func deliver(_ fingerprint: String, hooks: [HookConfig], outbox: any AlertStore, transport: any NotificationTransport,
                               maxAttempts: Int = AlertConfig().maxAttempts, attempts: Int = 3,
                               environment: [String: String] = ProcessInfo.processInfo.environment,
                               clock: @escaping @Sendable () -> Micros = currentMicros,
                               sleep: @Sendable (Micros) async throws -> Void = { try await Task.sleep(for: .microseconds($0)) }) async throws -> [OutboxItem] {
        let mine = OneFingerprint(base: outbox, fingerprint: fingerprint)
        let worker = DeliveryWorker(store: mine, hooks: hooks, maxAttempts: maxAttempts, transport: transport, environment: environment)
        while true {
            let items = try notifications(fingerprint, in: outbox)
            let pending = items.filter { $0.status == .pending && $0.attempts < attempts }
            guard let next = pending.map(\.nextAt).min() else { return items }
            let now = clock()
            if next > now { try await sleep(next - now) }
            try await worker.runOnce(now: max(next, clock()))
        }
    }

    /// The outbox as a worker for one fingerprint sees it: only those notifications are due.
    struct OneFingerprint: AlertStore {
        let base: any AlertStore
        let fingerprint: String
        func alertRecords() throws -> [(fingerprint: String, record: [UInt8])] { try base.alertRecords() }
        func commitAlerts(_ commit: AlertCommit) async throws { try await base.commitAlerts(commit) }
        func dueNotifications(now: Micros, limit: Int) throws -> [OutboxItem] {
            Array(try ReportOutbox.notifications(fingerprint, in: base).filter { $0.status == .pending && $0.nextAt <= now }
                .sorted { ($0.nextAt, $0.id) < ($1.nextAt, $1.id) }.prefix(max(0, limit)))
        }
        func recentNotifications(limit: Int) throws -> [OutboxItem] { try base.recentNotifications(limit: limit) }
        func recordDelivery(id: Int64, attempts: Int, outcome: DeliveryOutcome) async throws {
            try await base.recordDelivery(id: id, attempts: attempts, outcome: outcome)
        }
    }
}

/// The answer of `POST /api/v1/reports/{name}/send`: the notifications the server queued in its outbox.
public struct ReportSendDocument: Codable, Sendable, Equatable {
    public struct Notification: Codable, Sendable, Equatable {
        public var id: Int64
        public var hook: String
        public var status: String
        public init(id: Int64, hook: String, status: String) {
            self.id = id
            self.hook = hook
            self.status = status
        }
    }

    public var report: String
    public var fingerprint: String
    public var notifications: [Notification]

    public init(report: String, fingerprint: String, items: [OutboxItem]) {
        self.report = report
        self.fingerprint = fingerprint
        notifications = items.map { Notification(id: $0.id, hook: String($0.hook.dropFirst("report:\(report):".count)), status: $0.status.rawValue) }
    }
}
