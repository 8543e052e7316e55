import WaybillModel

/// What an SLA rule groups overdue orders by: the order's warehouse as known at the instant asked (its
/// first allocation's when allocated by then and named there, else its first shipment's when shipped
/// by then), channel or region.
public enum OverdueGrouping: String, Sendable, Hashable {
    case none, warehouse, channel, region
}

/// The orders of one group that are past an SLA deadline: they reached the rule's `after` stage and
/// have reached neither its `expect` stage (nor any later one) nor `cancelled`.
public struct OverdueGroup: Hashable, Sendable {
    /// The group's value; nil for orders without it (and for `OverdueGrouping.none`).
    public var value: String?
    /// How many orders of the group are overdue (also those beyond the limit).
    public var count: Int
    /// The earliest time an order of the group reached `after`.
    public var oldest: Micros
    /// The longest-overdue orders, by the time they reached `after`, then id; at most the limit asked.
    public var orders: [String]
    public init(value: String?, count: Int, oldest: Micros, orders: [String]) {
        self.value = value
        self.count = count
        self.oldest = oldest
        self.orders = orders
    }
}

/// The open deadlines of SLA rules, answered from the per-order facts.
///
/// Contract: after an append returns, its events count in the answers.
public protocol DeadlineReader: Sendable {
    /// Makes live `overdueOrders` an index range for this `after` stage (idempotent; may build an index).
    /// Live reads with this `after` come after it.
    func prepareDeadlines(after: Stage) async throws

    /// Orders that reached `after` at or before `cutoff` and had reached neither `expect` (nor a later
    /// lifecycle stage) nor `cancelled` by `asOf`, grouped, sorted by group value (nil first). Live
    /// (`replay == false`) answers from the open orders' index and the orders' current stage, so it assumes
    /// no stored event is later than `asOf`; replay reads every order's stage times and ignores events
    /// after `asOf`; both give the same answer when no stored event is later than `asOf`. Only groups
    /// with an overdue order are returned. An `expect` that is `cancelled` or not after `after` has no
    /// deadlines: the answer is empty.
    func overdueOrders(after: Stage, expect: Stage, cutoff: Micros, asOf: Micros, replay: Bool,
                       groupBy: OverdueGrouping, limit: Int) throws -> [OverdueGroup]
}

/// A notification waiting in (or done with) the durable outbox.
public struct OutboxItem: Hashable, Sendable {
    public enum Status: String, Sendable { case pending, delivered, failed }
    /// Given by the store when the notification is committed.
    public var id: Int64
    public var hook: String
    public var fingerprint: String
    /// `firing`, `resolved` (what the notification says).
    public var kind: String
    public var body: [UInt8]
    public var created: Micros
    public var nextAt: Micros
    public var attempts: Int
    public var status: Status
    public var lastError: String?
    public var doneAt: Micros?
    public init(id: Int64 = 0, hook: String, fingerprint: String, kind: String, body: [UInt8], created: Micros, nextAt: Micros,
                attempts: Int = 0, status: Status = .pending, lastError: String? = nil, doneAt: Micros? = nil) {
        self.id = id
        self.hook = hook
        self.fingerprint = fingerprint
        self.kind = kind
        self.body = body
        self.created = created
        self.nextAt = nextAt
        self.attempts = attempts
        self.status = status
        self.lastError = lastError
        self.doneAt = doneAt
    }
}

/// One atomic change of the alerting state: records to keep or drop and the notifications their state
/// changes produce. Written in one transaction, so a state change and its notification are never apart.
public struct AlertCommit: Sendable {
    public var upserts: [(fingerprint: String, record: [UInt8])] = []
    public var deletes: [String] = []
    /// Added pending with no attempts; their `id`, `attempts`, `status`, `lastError` and `doneAt` are not read.
    public var notifications: [OutboxItem] = []
    /// Delivered and failed notifications finished before this go (the outbox keeps a week of history).
    public var pruneBefore: Micros?
    public init() {}
    public var isEmpty: Bool { upserts.isEmpty && deletes.isEmpty && notifications.isEmpty }
}

/// What happened to one delivery attempt.
public enum DeliveryOutcome: Sendable, Hashable {
    case delivered(at: Micros)
    case retry(at: Micros, error: String)
    case failed(at: Micros, error: String)
}

/// Durable alerting state: alert records (opaque to the store) and the notification outbox.
///
/// Contract: a write returns only after it is committed, and what it committed is read back the same
/// after the store is reopened.
public protocol AlertStore: Sendable {
    /// Every record kept, one per fingerprint, ordered by fingerprint.
    func alertRecords() throws -> [(fingerprint: String, record: [UInt8])]
    /// Applies the commit in one transaction. An upsert replaces the record of its fingerprint; deletes
    /// are applied after the upserts (a fingerprint in both is gone; an unknown one is no error). Each
    /// notification, in the order given, gets an id greater than that of every notification in the
    /// outbox. `pruneBefore` removes delivered and failed notifications whose `doneAt` is before it,
    /// never pending ones.
    func commitAlerts(_ commit: AlertCommit) async throws
    /// Pending notifications whose `nextAt` is at or before `now`, at most `limit`: the earliest `nextAt`
    /// first, then by id.
    func dueNotifications(now: Micros, limit: Int) throws -> [OutboxItem]
    /// The newest notifications (highest ids) in any status, newest first, at most `limit`.
    func recentNotifications(limit: Int) throws -> [OutboxItem]
    /// Records attempt number `attempts` of notification `id`: `delivered` finishes it (status, `doneAt`)
    /// and clears its error; `retry` keeps it pending, due again at its time, with the error; `failed`
    /// finishes it (status, `doneAt`) with the error.
    func recordDelivery(id: Int64, attempts: Int, outcome: DeliveryOutcome) async throws
}
