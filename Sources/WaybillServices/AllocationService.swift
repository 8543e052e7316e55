import Foundation

/// The allocation service: an `InventoryLedger` behind a lock, so concurrent callers never oversell.
/// Every method is synchronous and atomic with respect to the others.
public final class AllocationService: @unchecked Sendable {
    private let lock = NSLock()
    /// Guarded by `lock`, which already serialises access.
    @exclusivity(unchecked) private var ledger: InventoryLedger

    public init(ledger: InventoryLedger) { self.ledger = ledger }

    public convenience init(network: FulfilmentNetwork, scoring: AllocationScoring = AllocationScoring()) {
        self.init(ledger: InventoryLedger(network: network, scoring: scoring))
    }

    public var network: FulfilmentNetwork { ledger.network }

    @inline(__always) private func locked<T>(_ body: (inout InventoryLedger) throws(InventoryError) -> T) throws(InventoryError) -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&ledger)
    }

    public func allocate(_ request: AllocationRequest) -> AllocationDecision {
        lock.lock()
        defer { lock.unlock() }
        return ledger.allocate(request)
    }

    public func stock(warehouse: String, sku: String, onHand: Int, safetyStock: Int = 0,
                      policy: ReplenishmentPolicy = .none) throws(InventoryError)
    {
        try locked { (l) throws(InventoryError) in try l.stock(warehouse: warehouse, sku: sku, onHand: onHand, safetyStock: safetyStock, policy: policy) }
    }

    public func release(warehouse: String, sku: String, qty: Int) throws(InventoryError) {
        try locked { (l) throws(InventoryError) in try l.release(warehouse: warehouse, sku: sku, qty: qty) }
    }

    /// Releases every placement, all or nothing.
    public func release(_ placements: [Placement]) throws(InventoryError) {
        try locked { (l) throws(InventoryError) in try l.release(placements) }
    }

    public func ship(warehouse: String, sku: String, qty: Int) throws(InventoryError) {
        try locked { (l) throws(InventoryError) in try l.ship(warehouse: warehouse, sku: sku, qty: qty) }
    }

    public func writeOff(warehouse: String, sku: String, qty: Int) throws(InventoryError) {
        try locked { (l) throws(InventoryError) in try l.writeOff(warehouse: warehouse, sku: sku, qty: qty) }
    }

    public func planReplenishment() -> [ReplenishmentOrder] {
        lock.lock()
        defer { lock.unlock() }
        return ledger.planReplenishment()
    }

    public func receive(warehouse: String, sku: String, qty: Int) throws(InventoryError) {
        try locked { (l) throws(InventoryError) in try l.receive(warehouse: warehouse, sku: sku, qty: qty) }
    }

    public func position(warehouse: String, sku: String) -> InventoryPosition? {
        lock.lock()
        defer { lock.unlock() }
        return ledger.position(warehouse: warehouse, sku: sku)
    }

    public func availableToPromise(sku: String) -> Int {
        lock.lock()
        defer { lock.unlock() }
        return ledger.availableToPromise(sku: sku)
    }

    /// A consistent copy of the whole ledger.
    public func snapshot() -> InventoryLedger {
        lock.lock()
        defer { lock.unlock() }
        return ledger
    }
}
