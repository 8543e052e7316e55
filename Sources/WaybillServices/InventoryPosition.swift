/// Stock of one SKU at one warehouse, in units.
public struct InventoryPosition: Codable, Hashable, Sendable {
    public var onHand: Int
    /// Units promised to orders and not yet shipped; never more than `onHand`.
    public var reserved: Int
    /// Units kept back from promising, as a buffer against inventory inaccuracy.
    public var safetyStock: Int
    /// Units on order from suppliers, not yet received.
    public var inbound: Int

    public init(onHand: Int, reserved: Int = 0, safetyStock: Int = 0, inbound: Int = 0) {
        self.onHand = onHand
        self.reserved = reserved
        self.safetyStock = safetyStock
        self.inbound = inbound
    }

    /// Available to promise now: what can be reserved without touching safety stock.
    @inline(__always) public var availableToPromise: Int { max(0, onHand - reserved - safetyStock) }
    /// Inventory position for replenishment: what will be free once inbound stock arrives.
    @inline(__always) public var projected: Int { onHand + inbound - reserved }
}

/// When and how much to reorder one SKU at one warehouse.
public struct ReplenishmentPolicy: Codable, Hashable, Sendable {
    /// Reorder when the projected position falls below this.
    public var reorderPoint: Int
    /// Order enough to bring the projected position back to this.
    public var orderUpTo: Int
    public init(reorderPoint: Int, orderUpTo: Int) {
        self.reorderPoint = reorderPoint
        self.orderUpTo = orderUpTo
    }
    public static let none = ReplenishmentPolicy(reorderPoint: 0, orderUpTo: 0)
}

/// A supplier order raised by replenishment.
public struct ReplenishmentOrder: Codable, Hashable, Sendable {
    public var warehouse: String
    public var sku: String
    public var qty: Int
}
