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

/// `waybill report NAME --send`: delivers a report now, straight to its hooks (signed as the outbox
/// worker signs, retried with its backoff on connection errors, timeouts and 5xx, up to `attempts`).
public enum ReportSender {
    public struct Outcome: Sendable, Equatable {
        public var hook: String
        public var delivered: Bool
        public var attempts: Int
        public var detail: String
    }

    public static func send(_ doc: ReportDocument, _ def: ReportDefinition, base: String, transport: any NotificationTransport,
                            environment: [String: String] = ProcessInfo.processInfo.environment, attempts: Int = 3,
                            sleep: @Sendable (Micros) async throws -> Void = { try await Task.sleep(for: .microseconds($0)) }) async throws -> [Outcome] {
        var out: [Outcome] = []
        for d in def.deliver {
            let body = ReportBodies.body(doc, format: d.format, base: base)
            let shortName = String(d.hook.name.dropFirst("report:\(def.name):".count))
            var outcome = Outcome(hook: shortName, delivered: false, attempts: 0, detail: "")
            while outcome.attempts < attempts {
                outcome.attempts += 1
                let headers = DeliveryHeaders.headers(for: d.hook, body: body, timestamp: currentMicros() / 1_000_000, environment: environment)
                switch await transport.post(url: d.hook.url, headers: headers, body: body, timeout: d.hook.timeout) {
                case .status(let code, _) where (200..<300).contains(code):
                    outcome.delivered = true
                    outcome.detail = "HTTP \(code)"
                case .status(let code, let text) where (400..<500).contains(code) && code != 408 && code != 429:
                    outcome.detail = "HTTP \(code): \(text.prefix(200)) (not retried)"
                    outcome.attempts = attempts
                case .status(let code, let text):
                    outcome.detail = "HTTP \(code): \(text.prefix(200))"
                case .failure(let e):
                    outcome.detail = e
                }
                if outcome.delivered || outcome.attempts >= attempts { break }
                try await sleep(DeliveryWorker.backoff(afterAttempts: outcome.attempts, jitter: 1))
            }
            out.append(outcome)
        }
        return out
    }
}
