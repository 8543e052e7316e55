/// One order line as the allocator sees it.
public struct AllocationLine: Codable, Hashable, Sendable {
    public var line: Int
    public var sku: String
    public var qty: Int
    public init(line: Int, sku: String, qty: Int) {
        self.line = line
        self.sku = sku
        self.qty = qty
    }
}

public struct AllocationRequest: Hashable, Sendable {
    public var orderID: String
    public var region: String
    public var lines: [AllocationLine]
    /// Warehouses not to use (down, or that already failed this order).
    public var excluding: [String]
    public init(orderID: String, region: String, lines: [AllocationLine], excluding: [String] = []) {
        self.orderID = orderID
        self.region = region
        self.lines = lines
        self.excluding = excluding
    }
}

/// Units of one line reserved at one warehouse.
public struct Placement: Codable, Hashable, Sendable {
    public var line: Int
    public var sku: String
    public var warehouse: String
    public var qty: Int
    public init(line: Int, sku: String, warehouse: String, qty: Int) {
        self.line = line
        self.sku = sku
        self.warehouse = warehouse
        self.qty = qty
    }
}

/// The outcome of one allocation: what was reserved where, and what could not be served.
public struct AllocationDecision: Codable, Hashable, Sendable {
    /// Reserved units; every placement has `qty > 0`.
    public var placements: [Placement]
    /// Units no warehouse could promise; every entry has `qty > 0`.
    public var backordered: [AllocationLine]
    /// The warehouse holding the most allocated units (ties: the better-scored one); nil when nothing was allocated.
    public var primaryWarehouse: String?

    public init(placements: [Placement], backordered: [AllocationLine], primaryWarehouse: String?) {
        self.placements = placements
        self.backordered = backordered
        self.primaryWarehouse = primaryWarehouse
    }

    /// Warehouses used, in order of first placement.
    public var warehouses: [String] {
        var out: [String] = []
        for p in placements where !out.contains(p.warehouse) { out.append(p.warehouse) }
        return out
    }
    public var isSplit: Bool { warehouses.count > 1 }
    public var allocatedUnits: Int { placements.reduce(0) { $0 + $1.qty } }
}

/// Weights of the node score; lower scores win.
public struct AllocationScoring: Codable, Hashable, Sendable {
    /// Score per 1000 km between warehouse and region.
    public var distance: Double
    /// Score per currency unit of shipping cost per unit.
    public var cost: Double
    /// Score per unit of load (outstanding reserved units / daily capacity).
    public var load: Double
    /// Most warehouses one order is split across; the remainder is backordered.
    public var maxSplit: Int
    public init(distance: Double = 1.0, cost: Double = 0.5, load: Double = 1.5, maxSplit: Int = 3) {
        self.distance = distance
        self.cost = cost
        self.load = load
        self.maxSplit = maxSplit
    }
}

public enum InventoryError: Error, Equatable, Sendable, CustomStringConvertible {
    case unknownWarehouse(String)
    case unknownSKU(String)
    case notReserved(warehouse: String, sku: String, requested: Int, reserved: Int)
    case invalidQuantity(Int)

    public var description: String {
        switch self {
        case .unknownWarehouse(let w): return "unknown warehouse \"\(w)\""
        case .unknownSKU(let s): return "unknown SKU \"\(s)\""
        case .notReserved(let w, let s, let q, let r): return "cannot release \(q) units of \(s) at \(w): only \(r) reserved"
        case .invalidQuantity(let q): return "quantity must be > 0, got \(q)"
        }
    }
}

/// Inventory of every SKU at every warehouse and the allocation decision over it, as a pure value.
///
/// Invariants (kept by every mutation): `0 <= reserved <= onHand`; a reservation is only made from
/// available-to-promise, so nothing is ever promised twice.
public struct InventoryLedger: Codable, Sendable {
    public let network: FulfilmentNetwork
    public var scoring: AllocationScoring
    public private(set) var skus: [String] = []
    var skuIndex: [String: Int] = [:]
    /// `positions[sku * W + warehouse]`.
    var positions: [InventoryPosition] = []
    var policies: [ReplenishmentPolicy] = []
    /// Sum of `reserved` per warehouse, for the load term of the score.
    var reservedByWarehouse: [Int]
    /// `baseScore[region * W + warehouse]`: distance and cost terms.
    let baseScore: [Double]
    var warehouseIndex: [String: Int] = [:]
    var regionIndex: [String: Int] = [:]

    public init(network: FulfilmentNetwork, scoring: AllocationScoring = AllocationScoring()) {
        self.network = network
        self.scoring = scoring
        let w = network.warehouses.count
        reservedByWarehouse = Array(repeating: 0, count: w)
        var base: [Double] = []
        for r in network.regions.indices {
            for i in 0..<w {
                base.append(scoring.distance * network.distanceKm(region: r, warehouse: i) / 1000
                    + scoring.cost * network.shippingCostPerUnit(region: r, warehouse: i))
            }
        }
        baseScore = base
        for (i, wh) in network.warehouses.enumerated() { warehouseIndex[wh.id] = i }
        for (i, r) in network.regions.enumerated() { regionIndex[r.name] = i }
    }

    var warehouseCount: Int { network.warehouses.count }

    @discardableResult
    mutating func skuSlot(_ sku: String) -> Int {
        if let i = skuIndex[sku] { return i }
        let i = skus.count
        skus.append(sku)
        skuIndex[sku] = i
        positions.append(contentsOf: repeatElement(InventoryPosition(onHand: 0), count: warehouseCount))
        policies.append(contentsOf: repeatElement(ReplenishmentPolicy.none, count: warehouseCount))
        return i
    }

    func slot(_ warehouse: String, _ sku: String) throws(InventoryError) -> Int {
        guard let w = warehouseIndex[warehouse] else { throw .unknownWarehouse(warehouse) }
        guard let s = skuIndex[sku] else { throw .unknownSKU(sku) }
        return s * warehouseCount + w
    }

    /// Sets stock levels (not reservations) of a SKU at a warehouse, and its replenishment policy.
    public mutating func stock(warehouse: String, sku: String, onHand: Int, safetyStock: Int = 0,
                               policy: ReplenishmentPolicy = .none) throws(InventoryError)
    {
        guard let w = warehouseIndex[warehouse] else { throw .unknownWarehouse(warehouse) }
        let s = skuSlot(sku)
        let i = s * warehouseCount + w
        positions[i].onHand = max(onHand, positions[i].reserved)
        positions[i].safetyStock = max(0, safetyStock)
        policies[i] = policy
    }

    public func position(warehouse: String, sku: String) -> InventoryPosition? {
        guard let i = try? slot(warehouse, sku) else { return nil }
        return positions[i]
    }

    /// Available to promise across all warehouses.
    public func availableToPromise(sku: String) -> Int {
        guard let s = skuIndex[sku] else { return 0 }
        var total = 0
        for w in 0..<warehouseCount { total += positions[s * warehouseCount + w].availableToPromise }
        return total
    }

    /// Every position, warehouse by warehouse in network order, SKUs in the order they were first stocked.
    public var allPositions: [(warehouse: String, sku: String, position: InventoryPosition)] {
        var out: [(String, String, InventoryPosition)] = []
        for w in 0..<warehouseCount {
            for s in skus.indices { out.append((network.warehouses[w].id, skus[s], positions[s * warehouseCount + w])) }
        }
        return out
    }

    // MARK: Allocation

    /// Chooses warehouses for the request and reserves the units. One warehouse that can serve every
    /// line wins by best score; otherwise the order is split, each time taking the warehouse that covers
    /// the most remaining units (ties: best score), up to `maxSplit` warehouses. The rest is backordered.
    public mutating func allocate(_ request: AllocationRequest) -> AllocationDecision {
        let wCount = warehouseCount
        let region = regionIndex[request.region]
        var scores = [Double](repeating: 0, count: wCount)
        var eligible = [Bool](repeating: true, count: wCount)
        for w in 0..<wCount {
            let base = region.map { baseScore[$0 * wCount + w] } ?? 0
            let cap = Double(max(1, network.warehouses[w].dailyCapacityUnits))
            scores[w] = base + scoring.load * Double(reservedByWarehouse[w]) / cap
        }
        for x in request.excluding { if let w = warehouseIndex[x] { eligible[w] = false } }
        let skuSlots = request.lines.map { skuIndex[$0.sku] }

        // Units needed per SKU: lines may repeat a SKU, and together they must fit.
        var needSKU: [Int] = [], needQty: [Int] = []
        var servable = true
        for (k, l) in request.lines.enumerated() where l.qty > 0 {
            guard let s = skuSlots[k] else { servable = false; break }
            if let i = needSKU.firstIndex(of: s) { needQty[i] += l.qty } else { needSKU.append(s); needQty.append(l.qty) }
        }
        var best = -1
        if servable {
            for w in 0..<wCount where eligible[w] {
                var serves = true
                for i in needSKU.indices where positions[needSKU[i] * wCount + w].availableToPromise < needQty[i] { serves = false; break }
                if serves && (best < 0 || scores[w] < scores[best]) { best = w }
            }
        }

        var placements: [Placement] = []
        placements.reserveCapacity(request.lines.count)
        var remaining = request.lines.map { max(0, $0.qty) }
        if best >= 0 {
            for (k, l) in request.lines.enumerated() where remaining[k] > 0 {
                reserve(slot: skuSlots[k]! * wCount + best, warehouse: best, qty: remaining[k])
                placements.append(Placement(line: l.line, sku: l.sku, warehouse: network.warehouses[best].id, qty: remaining[k]))
                remaining[k] = 0
            }
        } else {
            var used = 0
            while used < scoring.maxSplit {
                var pick = -1, pickUnits = 0
                for w in 0..<wCount where eligible[w] {
                    var units = 0
                    for k in request.lines.indices where remaining[k] > 0 {
                        if let s = skuSlots[k] { units += min(remaining[k], positions[s * wCount + w].availableToPromise) }
                    }
                    if units > pickUnits || (units == pickUnits && units > 0 && scores[w] < scores[pick]) { pick = w; pickUnits = units }
                }
                if pick < 0 { break }
                eligible[pick] = false
                used += 1
                for (k, l) in request.lines.enumerated() where remaining[k] > 0 {
                    guard let s = skuSlots[k] else { continue }
                    let q = min(remaining[k], positions[s * wCount + pick].availableToPromise)
                    if q == 0 { continue }
                    reserve(slot: s * wCount + pick, warehouse: pick, qty: q)
                    placements.append(Placement(line: l.line, sku: l.sku, warehouse: network.warehouses[pick].id, qty: q))
                    remaining[k] -= q
                }
            }
        }
        var backordered: [AllocationLine] = []
        for (k, l) in request.lines.enumerated() where remaining[k] > 0 {
            backordered.append(AllocationLine(line: l.line, sku: l.sku, qty: remaining[k]))
        }
        return AllocationDecision(placements: placements, backordered: backordered,
                                  primaryWarehouse: primary(placements, scores: scores))
    }

    private func primary(_ placements: [Placement], scores: [Double]) -> String? {
        guard !placements.isEmpty else { return nil }
        var units = [Int](repeating: 0, count: warehouseCount)
        for p in placements { units[warehouseIndex[p.warehouse]!] += p.qty }
        var best = -1
        for w in 0..<warehouseCount where units[w] > 0 {
            if best < 0 || units[w] > units[best] || (units[w] == units[best] && scores[w] < scores[best]) { best = w }
        }
        return network.warehouses[best].id
    }

    @inline(__always) private mutating func reserve(slot: Int, warehouse: Int, qty: Int) {
        positions[slot].reserved += qty
        reservedByWarehouse[warehouse] += qty
    }

    // MARK: Reservation lifecycle

    /// Gives reserved units back to available-to-promise (cancellation, re-routing).
    public mutating func release(warehouse: String, sku: String, qty: Int) throws(InventoryError) {
        let i = try reservedSlot(warehouse, sku, qty)
        positions[i].reserved -= qty
        reservedByWarehouse[i % warehouseCount] -= qty
    }

    /// Releases every placement, all or nothing: on an error the ones already released are reserved again.
    public mutating func release(_ placements: [Placement]) throws(InventoryError) {
        for (k, p) in placements.enumerated() {
            do {
                try release(warehouse: p.warehouse, sku: p.sku, qty: p.qty)
            } catch {
                for q in placements[..<k] {
                    let i = try! slot(q.warehouse, q.sku)
                    positions[i].reserved += q.qty
                    reservedByWarehouse[i % warehouseCount] += q.qty
                }
                throw error
            }
        }
    }

    /// Reserved units left the building: on hand and reserved both drop.
    public mutating func ship(warehouse: String, sku: String, qty: Int) throws(InventoryError) {
        let i = try reservedSlot(warehouse, sku, qty)
        positions[i].reserved -= qty
        positions[i].onHand -= qty
        reservedByWarehouse[i % warehouseCount] -= qty
    }

    /// Reserved units were not found at picking: the books are corrected (on hand and reserved drop).
    public mutating func writeOff(warehouse: String, sku: String, qty: Int) throws(InventoryError) {
        try ship(warehouse: warehouse, sku: sku, qty: qty)
    }

    private func reservedSlot(_ warehouse: String, _ sku: String, _ qty: Int) throws(InventoryError) -> Int {
        guard qty > 0 else { throw .invalidQuantity(qty) }
        let i = try slot(warehouse, sku)
        guard positions[i].reserved >= qty else {
            throw .notReserved(warehouse: warehouse, sku: sku, requested: qty, reserved: positions[i].reserved)
        }
        return i
    }

    // MARK: Replenishment

    /// Raises supplier orders for every position whose projected stock is below its reorder point.
    public mutating func planReplenishment() -> [ReplenishmentOrder] {
        var out: [ReplenishmentOrder] = []
        let wCount = warehouseCount
        for w in 0..<wCount {
            for s in skus.indices {
                let i = s * wCount + w
                let p = policies[i]
                guard p.orderUpTo > 0 else { continue }
                let projected = positions[i].projected
                if projected < p.reorderPoint {
                    let qty = p.orderUpTo - projected
                    positions[i].inbound += qty
                    out.append(ReplenishmentOrder(warehouse: network.warehouses[w].id, sku: skus[s], qty: qty))
                }
            }
        }
        return out
    }

    /// Supplier stock arrived: inbound becomes on hand.
    public mutating func receive(warehouse: String, sku: String, qty: Int) throws(InventoryError) {
        guard qty > 0 else { throw .invalidQuantity(qty) }
        guard let w = warehouseIndex[warehouse] else { throw .unknownWarehouse(warehouse) }
        let i = skuSlot(sku) * warehouseCount + w
        positions[i].inbound = max(0, positions[i].inbound - qty)
        positions[i].onHand += qty
    }
}
