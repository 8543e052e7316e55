import WaybillModel

/// Where an order is in its workflow. `invoiced`, `cancelled` and `exception` are final.
public enum OrderStatus: String, Codable, Hashable, Sendable, CaseIterable {
    case accepted, validated
    case creditChecked = "credit_checked"
    case allocated, backordered, released, picked, packed, shipped, delivered, invoiced, cancelled, exception

    public var isFinal: Bool { self == .invoiced || self == .cancelled || self == .exception }
}

/// Calls the workflow makes to the ERP.
public enum ERPCall: String, Codable, Hashable, Sendable, CaseIterable {
    /// Customer and price check.
    case validate
    case creditCheck = "credit_check"
    /// Posting the delivered order for invoicing.
    case postInvoice = "post_invoice"

    /// The `stage` of an `order.exception` raised when this call gives up.
    public var stage: String {
        switch self {
        case .validate: return "validation"
        case .creditCheck: return "credit_check"
        case .postInvoice: return "invoicing"
        }
    }
}

public struct OrderLineRequest: Codable, Hashable, Sendable {
    public var line: Int
    public var sku: String
    public var qty: Int
    public var unitPrice: Double
    public init(line: Int, sku: String, qty: Int, unitPrice: Double) {
        self.line = line
        self.sku = sku
        self.qty = qty
        self.unitPrice = unitPrice
    }
}

/// An order as a sales channel submits it.
public struct OrderRequest: Codable, Hashable, Sendable {
    public var orderID: String
    /// The channel's key for this submission; a resubmission with the same key is the same order.
    public var idempotencyKey: String
    public var channel: String
    public var customer: String
    public var region: String
    public var promisedShipBy: Micros
    public var currency: String
    public var lines: [OrderLineRequest]

    public init(orderID: String, idempotencyKey: String, channel: String, customer: String, region: String,
                promisedShipBy: Micros, currency: String = "USD", lines: [OrderLineRequest])
    {
        self.orderID = orderID
        self.idempotencyKey = idempotencyKey
        self.channel = channel
        self.customer = customer
        self.region = region
        self.promisedShipBy = promisedShipBy
        self.currency = currency
        self.lines = lines
    }
}

public enum ShipmentStage: String, Codable, Hashable, Sendable {
    case awaitingRelease = "awaiting_release"
    case released, picked, packed, shipped, delivered
}

/// The part of an order fulfilled by one warehouse.
public struct Shipment: Codable, Hashable, Sendable {
    /// Unique within the order.
    public var id: Int
    public var warehouse: String
    public var lines: [AllocationLine]
    public var stage: ShipmentStage
    public var carrier: String?
    public var tracking: String?

    public var placements: [Placement] {
        lines.map { Placement(line: $0.line, sku: $0.sku, warehouse: warehouse, qty: $0.qty) }
    }
}

public struct PendingERPCall: Codable, Hashable, Sendable {
    public var call: ERPCall
    /// 1-based number of the attempt in flight or next due.
    public var attempt: Int
    /// Set while waiting for a retry timer.
    public var retryAt: Micros?
}

/// A line short at picking.
public struct LineShortage: Codable, Hashable, Sendable {
    public var line: Int
    public var qty: Int
    public init(line: Int, qty: Int) {
        self.line = line
        self.qty = qty
    }
}

/// What the ERP answered.
public struct ERPReply: Codable, Hashable, Sendable {
    /// Credit decision (credit check) or acceptance (other calls).
    public var approved: Bool
    /// Document number created by the call, such as the invoice number.
    public var reference: String?
    public init(approved: Bool = true, reference: String? = nil) {
        self.approved = approved
        self.reference = reference
    }
}

/// The persisted state of one order's workflow. Codable, so a shell can store it and resume after a restart.
public struct OrderWorkflow: Codable, Hashable, Sendable {
    public var order: OrderRequest
    public var status: OrderStatus
    public var pendingCall: PendingERPCall?
    public var shipments: [Shipment] = []
    /// Warehouses that rejected a release or short-picked this order; not used again for it.
    public var excludedWarehouses: [String] = []
    /// Units waiting for stock.
    public var backordered: [AllocationLine] = []
    /// Units given up on after the last backorder attempt.
    public var unfulfilled: [AllocationLine] = []
    public var backorderAttempts = 0
    public var awaitingAllocation = false
    /// Units to allocate once the allocation in flight is decided.
    public var reallocationQueue: [AllocationLine] = []
    public var backorderRetryAt: Micros?
    public var allocations = 0
    public var nextShipmentID = 1
    /// Sequence number of the next event; event ids are `<order id>-<seq>`.
    public var nextEventSeq = 1
    public var invoice: String?
    public var acceptedAt: Micros
    public var updatedAt: Micros

    public var orderID: String { order.orderID }
}

/// What the outside world tells a workflow.
public enum WorkflowInput: Codable, Hashable, Sendable {
    case erpSucceeded(ERPCall, ERPReply)
    case erpFailed(ERPCall, reason: String)
    case retryDue(ERPCall)
    case allocationDecided(AllocationDecision)
    case backorderRetryDue
    case releaseAccepted(shipment: Int)
    case releaseRejected(shipment: Int, reason: String)
    /// Picking finished; `short` lists what could not be found.
    case picked(shipment: Int, short: [LineShortage])
    case packed(shipment: Int)
    case shipped(shipment: Int, carrier: String, tracking: String)
    case delivered(shipment: Int)
    case cancel(reason: String)
}

/// A business event of the order lifecycle (events.md section 2), before it gets its envelope.
public enum OrderEvent: Codable, Hashable, Sendable {
    case accepted(OrderRequest)
    case validated
    case creditChecked(approved: Bool)
    /// `lines` is the order's whole current plan: one entry per line and warehouse, unallocated lines with 0 and no warehouse.
    case allocated(warehouse: String?, lines: [AllocatedLineEntry])
    case backordered(lines: [AllocationLine])
    case released(warehouse: String)
    case picked(warehouse: String)
    case shortPicked(warehouse: String, lines: [LineShortage])
    case packed(warehouse: String)
    case shipped(warehouse: String, carrier: String, tracking: String, lines: [LineShortage])
    case delivered
    case invoiced(invoice: String, amount: Double, currency: String)
    case cancelled(reason: String)
    case exception(reason: String, stage: String)

    public var type: String {
        switch self {
        case .accepted: return "order.accepted"
        case .validated: return "order.validated"
        case .creditChecked: return "order.credit_checked"
        case .allocated: return "order.allocated"
        case .backordered: return "order.backordered"
        case .released: return "order.released"
        case .picked: return "order.picked"
        case .shortPicked: return "order.short_picked"
        case .packed: return "order.packed"
        case .shipped: return "order.shipped"
        case .delivered: return "order.delivered"
        case .invoiced: return "order.invoiced"
        case .cancelled: return "order.cancelled"
        case .exception: return "order.exception"
        }
    }
}

public struct AllocatedLineEntry: Codable, Hashable, Sendable {
    public var line: Int
    public var sku: String
    public var qtyAllocated: Int
    public var warehouse: String?
    public init(line: Int, sku: String, qtyAllocated: Int, warehouse: String?) {
        self.line = line
        self.sku = sku
        self.qtyAllocated = qtyAllocated
        self.warehouse = warehouse
    }
}

/// What a workflow asks its shell to do.
public enum WorkflowAction: Codable, Hashable, Sendable {
    /// Emit this event with id `<order id>-<seq>`.
    case emit(OrderEvent, seq: Int)
    case callERP(ERPCall, attempt: Int)
    case scheduleRetry(ERPCall, attempt: Int, at: Micros)
    case allocate(AllocationRequest)
    case scheduleBackorderRetry(at: Micros)
    case requestRelease(shipment: Int, warehouse: String, lines: [AllocationLine])
    /// Compensation: give reserved units back.
    case releaseReservations([Placement])
    /// Units not found at picking: correct the books.
    case writeOff([Placement])
    /// Units shipped: they leave on hand and reserved.
    case consumeReservations([Placement])
    /// The workflow reached a final status; nothing more will happen to it.
    case finished(OrderStatus)
}

extension AllocationRequest: Codable {
    enum CodingKeys: String, CodingKey { case orderID, region, lines, excluding }
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(orderID: try c.decode(String.self, forKey: .orderID), region: try c.decode(String.self, forKey: .region),
                  lines: try c.decode([AllocationLine].self, forKey: .lines), excluding: try c.decode([String].self, forKey: .excluding))
    }
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(orderID, forKey: .orderID)
        try c.encode(region, forKey: .region)
        try c.encode(lines, forKey: .lines)
        try c.encode(excluding, forKey: .excluding)
    }
}

/// Tunables of the workflow.
public struct WorkflowPolicy: Codable, Hashable, Sendable {
    public var erpRetry: RetryPolicy
    public var backorderRetryInterval: Micros
    /// Backorder re-allocation attempts before the remaining units are given up.
    public var maxBackorderAttempts: Int

    public init(erpRetry: RetryPolicy = RetryPolicy(), backorderRetryInterval: Micros = 24 * 3_600_000_000,
                maxBackorderAttempts: Int = 3)
    {
        self.erpRetry = erpRetry
        self.backorderRetryInterval = backorderRetryInterval
        self.maxBackorderAttempts = maxBackorderAttempts
    }

    public static let standard = WorkflowPolicy()
}
