import WaybillModel
import WaybillStore

/// What a drill row measures (`DrillRow.family`): the numbers `KPIExplain` ranks orders by.
public enum KPIDrillFamily: Int, CaseIterable, Sendable {
    /// Every order with an allocation part: its allocation delay (µs), at `allocated_at`.
    case allocationDelay = 1
    /// Every order with a shipment part: its shipment lag (µs), at `shipped_at`.
    case shipmentLag = 2
    /// Orders short at first allocation: units short (micro-units), at `allocated_at`.
    case shortAtFirstAllocation = 3
    /// Orders shipped after their promised date: how late (µs), at `shipped_at`.
    case lateShipment = 4

    /// The rows of one order, from its KPI contribution (`OrderContribution`), groups in `KPIDimension.allCases` order.
    static func rows(_ f: OrderFacts) -> [DrillRow] {
        let c = OrderContribution(f)
        var out: [DrillRow] = []
        if let a = c.allocation {
            let groups = KPIDimension.allCases.map { a.group($0) }
            out.append(DrillRow(family: allocationDelay.rawValue, at: a.at, orderID: f.orderID, value: a.delay, groups: groups))
            if KPIExplain.isShort(a) {
                out.append(DrillRow(family: shortAtFirstAllocation.rawValue, at: a.at, orderID: f.orderID,
                                    value: a.unitsOrdered - a.unitsAllocatedFirst, groups: groups))
            }
        }
        if let s = c.shipment {
            let groups = KPIDimension.allCases.map { s.group($0) }
            out.append(DrillRow(family: shipmentLag.rawValue, at: s.at, orderID: f.orderID, value: s.lag, groups: groups))
            if let late = KPIExplain.lateness(f, s) {
                out.append(DrillRow(family: lateShipment.rawValue, at: s.at, orderID: f.orderID, value: late, groups: groups))
            }
        }
        return out
    }
}

extension KPIFactsRollup: DrillProjection {
    /// Changes whenever `KPIDrillFamily.rows` changes meaning, so stores rebuild their rows.
    public static let drillLayout = "kpi-drill1:delay,lag,short,late;warehouse,channel,region"
    public var drillLayout: String { Self.drillLayout }
    public func drillRows(_ facts: OrderFacts) -> [DrillRow] { KPIDrillFamily.rows(facts) }
}

extension KPIExplain {
    /// The allocation is short at first allocation (the fill-rate drill-downs list it).
    static func isShort(_ a: AllocationPart) -> Bool { !a.fullyAllocatedFirst || a.unitsAllocatedFirst < a.unitsOrdered }

    /// How late the order shipped (µs), when it shipped late against a promised date.
    static func lateness(_ f: OrderFacts, _ s: ShipmentPart) -> Int64? {
        guard s.onTime == false, let promised = f.accepted?.promisedShipBy else { return nil }
        return s.at - promised
    }

    /// `contributors(facts:...)` from a store's drill rows: the same list, reading only the rows a ranking
    /// needs (a count, the quantile's value and the top of the window) instead of every order's facts.
    /// Nil when the store keeps no current rows, and the caller ranks the facts.
    public static func contributors(drill: any DrillReader, metric: KPIMetric, query: KPIQuery, group: String?? = .none,
                                    limit: Int = 20) throws -> [KPIContributor]? {
        let family: KPIDrillFamily
        var field: DistributionField?
        switch metric {
        case .ordersAllocated, .shipments, .allocationDelay(.count), .shipmentLag(.count):
            throw KPIQueryError(field: "metric", rule: "\(metric) is a volume: no order makes it bad")
        case .allocationDelay(let f): (family, field) = (.allocationDelay, f)
        case .shipmentLag(let f): (family, field) = (.shipmentLag, f)
        case .fillRate, .orderFillRate: family = .shortAtFirstAllocation
        case .onTimeRate: family = .lateShipment
        }
        guard try drill.drillRowsAvailable(layout: KPIFactsRollup.drillLayout) else { return nil }
        var selection = DrillSelection(family: family.rawValue, range: query.window)
        if case .some(let wanted) = group, let by = query.by {
            selection.dimension = KPIDimension.allCases.firstIndex(of: by)
            selection.group = wanted
        }
        guard limit > 0 else { return [] }
        var threshold: Int64?
        var suffix = ""
        if let p = field?.percent {
            let n = try drill.drillCount(selection)
            if n > 0 {
                let rank = Int(QuantileRank.rank(percent: p, count: n))
                if let q = try drill.drillValue(selection, descendingRank: n - rank) {
                    threshold = q
                    suffix = " (p\(Int(p)) \(DurationText.format(q)))"
                }
            }
        }
        var ranked: [KPIContributor] = []
        for r in try drill.drillTop(selection, atLeast: threshold, limit: limit) {
            switch family {
            case .allocationDelay, .shipmentLag:
                let noun = family == .allocationDelay ? "allocation delay" : "shipment lag"
                ranked.append(KPIContributor(orderID: r.orderID, reason: "\(noun) \(DurationText.format(r.value))" + suffix,
                                             value: Double(r.value) / 1e6))
            case .shortAtFirstAllocation:
                let reason: String
                if let f = try drill.facts(orderID: r.orderID), let a = OrderContribution(f).allocation {
                    reason = shortReason(f, a)
                } else {
                    reason = "\(units(Units.double(r.value))) units short at first allocation"
                }
                ranked.append(KPIContributor(orderID: r.orderID, reason: reason, value: Units.double(r.value)))
            case .lateShipment:
                ranked.append(KPIContributor(
                    orderID: r.orderID,
                    reason: "shipped \(DurationText.format(r.value)) late (promised by \(RFC3339.format(r.at - r.value)))",
                    value: Double(r.value) / 1e6))
            }
        }
        ranked.sort { $0.value != $1.value ? $0.value > $1.value : $0.orderID < $1.orderID }
        return Array(ranked.prefix(limit))
    }
}
