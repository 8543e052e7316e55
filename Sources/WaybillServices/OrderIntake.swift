import WaybillModel

/// Idempotent order submission: a submission whose idempotency key was seen within `retention` is the
/// same order again and starts nothing. A pure value; keys expire in arrival order.
public struct OrderIntake: Codable, Hashable, Sendable {
    public enum Outcome: Hashable, Sendable {
        case accepted(OrderWorkflow, [WorkflowAction])
        /// The key was already used; `orderID` is the order it created.
        case duplicate(orderID: String)
    }

    struct Entry: Codable, Hashable, Sendable {
        var key: String
        var orderID: String
        var at: Micros
    }

    public var retention: Micros
    var byKey: [String: String] = [:]
    var entries: [Entry] = []
    var head = 0

    public init(retention: Micros = 7 * 86_400_000_000) { self.retention = retention }

    public mutating func submit(_ order: OrderRequest, now: Micros) -> Outcome {
        expire(now: now)
        if let existing = byKey[order.idempotencyKey] { return .duplicate(orderID: existing) }
        byKey[order.idempotencyKey] = order.orderID
        entries.append(Entry(key: order.idempotencyKey, orderID: order.orderID, at: now))
        let (w, actions) = OrderWorkflow.start(order, now: now)
        return .accepted(w, actions)
    }

    /// Keys currently remembered.
    public var count: Int { byKey.count }

    mutating func expire(now: Micros) {
        while head < entries.count, entries[head].at + retention <= now {
            byKey[entries[head].key] = nil
            head += 1
        }
        if head > 4096, head * 2 > entries.count {
            entries.removeFirst(head)
            head = 0
        }
    }
}
