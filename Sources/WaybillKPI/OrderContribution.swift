import WaybillModel

/// Quantities are summed in millionths of a unit, so sums are exact and order independent and a
/// retraction restores the previous sum bit for bit (floating-point sums are neither).
public typealias MicroUnits = Int64

public enum Units {
    public static func micro(_ units: Double) -> MicroUnits { MicroUnits((units * 1_000_000).rounded()) }
    public static func double(_ micro: MicroUnits) -> Double { Double(micro) / 1_000_000 }
}

/// The KPI dimensions of kpis.md. Allocation KPIs group by the allocation warehouse and shipment
/// KPIs by the shipment warehouse, so one order may sit in two warehouse groups.
public enum KPIDimension: String, CaseIterable, Sendable, Hashable, Codable {
    case warehouse, channel, region
}

/// What an order adds to the allocation KPIs: present only when it has `accepted_at` and `allocated_at`.
public struct AllocationPart: Hashable, Sendable {
    /// `allocated_at`: the time that places the order in a window and a rollup bucket.
    public var at: Micros
    public var warehouse: String?
    public var channel: String?
    public var region: String?
    public var unitsOrdered: MicroUnits
    public var unitsAllocatedFirst: MicroUnits
    public var fullyAllocatedFirst: Bool
    /// `allocation_delay` in microseconds, already clamped at 0.
    public var delay: Int64

    public init(at: Micros, warehouse: String?, channel: String?, region: String?, unitsOrdered: MicroUnits,
                unitsAllocatedFirst: MicroUnits, fullyAllocatedFirst: Bool, delay: Int64)
    {
        self.at = at
        self.warehouse = warehouse
        self.channel = channel
        self.region = region
        self.unitsOrdered = unitsOrdered
        self.unitsAllocatedFirst = unitsAllocatedFirst
        self.fullyAllocatedFirst = fullyAllocatedFirst
        self.delay = Swift.max(0, delay)
    }

    public func group(_ d: KPIDimension) -> String? {
        switch d {
        case .warehouse: return warehouse
        case .channel: return channel
        case .region: return region
        }
    }
}

/// What an order adds to the shipment KPIs: present only when it has `released_at` and `shipped_at`.
public struct ShipmentPart: Hashable, Sendable {
    /// `shipped_at`.
    public var at: Micros
    public var warehouse: String?
    public var channel: String?
    public var region: String?
    /// `shipment_lag` in microseconds, already clamped at 0.
    public var lag: Int64
    /// `on_time`; nil when undefined (no promised date).
    public var onTime: Bool?

    public init(at: Micros, warehouse: String?, channel: String?, region: String?, lag: Int64, onTime: Bool?) {
        self.at = at
        self.warehouse = warehouse
        self.channel = channel
        self.region = region
        self.lag = Swift.max(0, lag)
        self.onTime = onTime
    }

    public func group(_ d: KPIDimension) -> String? {
        switch d {
        case .warehouse: return warehouse
        case .channel: return channel
        case .region: return region
        }
    }
}

/// Everything one order contributes to the KPIs of kpis.md. Two facts with equal contributions
/// need no rollup change, which is how ingest skips most updates (only first events move KPIs).
public struct OrderContribution: Hashable, Sendable {
    public var orderID: String
    public var allocation: AllocationPart?
    public var shipment: ShipmentPart?

    public init(orderID: String, allocation: AllocationPart?, shipment: ShipmentPart?) {
        self.orderID = orderID
        self.allocation = allocation
        self.shipment = shipment
    }

    public init(_ f: OrderFacts) {
        orderID = f.orderID
        if let accepted = f.acceptedAt, let allocated = f.allocatedAt {
            let fill = f.firstAllocationFill
            allocation = AllocationPart(
                at: allocated, warehouse: f.allocationWarehouse, channel: f.channel, region: f.region,
                unitsOrdered: Units.micro(f.unitsOrdered ?? 0), unitsAllocatedFirst: Units.micro(fill?.units ?? 0),
                fullyAllocatedFirst: fill?.full ?? false, delay: allocated - accepted)
        }
        if let released = f.releasedAt, let shipped = f.shippedAt {
            shipment = ShipmentPart(at: shipped, warehouse: f.shipmentWarehouse, channel: f.channel, region: f.region,
                                    lag: shipped - released, onTime: f.onTime)
        }
    }

    public var isEmpty: Bool { allocation == nil && shipment == nil }
}
