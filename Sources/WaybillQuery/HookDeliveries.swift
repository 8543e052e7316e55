import WaybillModel
import WaybillStore

/// `GET /api/v1/deliveries` and the alerts page: per hook, what the durable outbox says about the
/// notifications of the last week (the outbox keeps a week of finished ones).
public struct DeliveriesDocument: Codable, Sendable, Equatable {
    public struct Hook: Codable, Sendable, Equatable {
        public var hook: String
        /// Notifications waiting to be sent or retried.
        public var pending: Int
        /// Pending ones that failed at least once and wait for their retry.
        public var retrying: Int
        public var delivered: Int
        /// Given up after the last attempt.
        public var failed: Int
        /// The last notification finished (delivered or given up), RFC 3339.
        public var lastFinished: String?
        public var lastDelivered: String?
        /// The newest error of a failed or retrying notification, and its attempts so far.
        public var lastError: String?
        public var lastErrorAttempts: Int?
        /// The earliest retry due.
        public var nextRetry: String?

        enum CodingKeys: String, CodingKey {
            case hook, pending, retrying, delivered, failed, lastFinished = "last_finished", lastDelivered = "last_delivered"
            case lastError = "last_error", lastErrorAttempts = "last_error_attempts", nextRetry = "next_retry"
        }
    }

    public var at: String
    public var hooks: [Hook]
    /// How many notifications were read (the newest first); a busier outbox is summarised over these.
    public var examined: Int

    public static let limit = 5000

    /// Summarises outbox items (any order) per hook, hooks by name; `names` adds hooks with nothing yet.
    public init(_ items: [OutboxItem], names: [String] = [], at: Micros) {
        var byHook: [String: [OutboxItem]] = [:]
        for n in names { byHook[n] = [] }
        for i in items { byHook[i.hook, default: []].append(i) }
        self.at = RFC3339.format(at)
        examined = items.count
        hooks = byHook.keys.sorted().map { name in
            let list = byHook[name]!.sorted { $0.id > $1.id }
            let pending = list.filter { $0.status == .pending }
            let retrying = pending.filter { $0.attempts > 0 }
            let finished = list.compactMap(\.doneAt)
            let erred = list.first { $0.lastError != nil && $0.status != .delivered }
            return Hook(hook: name, pending: pending.count, retrying: retrying.count,
                        delivered: list.filter { $0.status == .delivered }.count, failed: list.filter { $0.status == .failed }.count,
                        lastFinished: finished.max().map(RFC3339.format),
                        lastDelivered: list.filter { $0.status == .delivered }.compactMap(\.doneAt).max().map(RFC3339.format),
                        lastError: erred?.lastError, lastErrorAttempts: erred?.attempts,
                        nextRetry: retrying.map(\.nextAt).min().map(RFC3339.format))
        }
    }
}

extension LocalQueries {
    /// Hook delivery status from the store's outbox; hooks of the loaded rules appear even before any notification.
    public func deliveries() async throws -> DeliveriesDocument {
        let names = alerting?.config.hooks.map(\.name) ?? []
        guard let outbox = store as? any AlertStore else { return DeliveriesDocument([], names: names, at: clock()) }
        let now = clock()
        return try await lanes.point.run { DeliveriesDocument(try outbox.recentNotifications(limit: DeliveriesDocument.limit), names: names, at: now) }
    }
}
