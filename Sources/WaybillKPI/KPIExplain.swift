import WaybillModel

/// An order behind a bad number, for "orders that contributed most" lists (each links to its trace).
public struct KPIContributor: Hashable, Sendable, Codable {
    public var orderID: String
    public var reason: String
    /// The order's own number behind the KPI: seconds for delays, lags and lateness; units short for fill rates.
    public var value: Double

    public init(orderID: String, reason: String, value: Double) {
        self.orderID = orderID
        self.reason = reason
        self.value = value
    }

    enum CodingKeys: String, CodingKey { case orderID = "order", reason, value }
}

/// The drill-down document (`GET /api/v1/kpis?explain=METRIC`, `waybill kpi --explain`): the orders behind one figure.
public struct KPIExplainDocument: Codable, Sendable, Equatable {
    public var metric: String
    public var orders: [KPIContributor]
    public init(metric: String, orders: [KPIContributor]) {
        self.metric = metric
        self.orders = orders
    }
}

/// Ranks the orders behind a KPI over a window (and optionally one group), worst first.
///
/// - Distributions (`allocation_delay.*`, `shipment_lag.*`): for a quantile, the orders at or above
///   it (the exact quantile over the same orders); for `mean_s`/`max_s`, the slowest orders.
/// - `fill_rate`, `order_fill_rate`: the orders short at first allocation, most units short first.
/// - `on_time_rate`: the late orders, latest first.
/// Ties go to the smallest order id, so the list is deterministic.
public enum KPIExplain {
    public static func contributors<S: Sequence>(facts: S, metric: KPIMetric, query: KPIQuery, group: String?? = .none,
                                                 limit: Int = 20) throws(KPIQueryError) -> [KPIContributor]
    where S.Element == OrderFacts {
        func inGroup(_ value: String?) -> Bool {
            guard case .some(let wanted) = group, query.by != nil else { return true }
            return value == wanted
        }
        var ranked: [KPIContributor] = []
        switch metric {
        case .ordersAllocated, .shipments, .allocationDelay(.count), .shipmentLag(.count):
            throw KPIQueryError(field: "metric", rule: "\(metric) is a volume: no order makes it bad")

        case .allocationDelay(let field):
            var parts: [(String, AllocationPart)] = []
            for f in facts {
                guard let a = OrderContribution(f).allocation, query.window.contains(a.at),
                      inGroup(query.by.flatMap(a.group)) else { continue }
                parts.append((f.orderID, a))
            }
            ranked = slowest(parts.map { ($0.0, $0.1.delay) }, field: field, noun: "allocation delay")

        case .shipmentLag(let field):
            var parts: [(String, ShipmentPart)] = []
            for f in facts {
                guard let s = OrderContribution(f).shipment, query.window.contains(s.at),
                      inGroup(query.by.flatMap(s.group)) else { continue }
                parts.append((f.orderID, s))
            }
            ranked = slowest(parts.map { ($0.0, $0.1.lag) }, field: field, noun: "shipment lag")

        case .fillRate, .orderFillRate:
            for f in facts {
                guard let a = OrderContribution(f).allocation, query.window.contains(a.at),
                      inGroup(query.by.flatMap(a.group)), isShort(a)
                else { continue }
                let short = Units.double(a.unitsOrdered - a.unitsAllocatedFirst)
                ranked.append(KPIContributor(orderID: f.orderID, reason: shortReason(f, a), value: short))
            }

        case .onTimeRate:
            for f in facts {
                guard let s = OrderContribution(f).shipment, query.window.contains(s.at),
                      inGroup(query.by.flatMap(s.group)), let late = lateness(f, s) else { continue }
                let promised = s.at - late
                ranked.append(KPIContributor(
                    orderID: f.orderID,
                    reason: "shipped \(DurationText.format(late)) late (promised by \(RFC3339.format(promised)))",
                    value: Double(late) / 1e6))
            }
        }
        ranked.sort { $0.value != $1.value ? $0.value > $1.value : $0.orderID < $1.orderID }
        return Array(ranked.prefix(Swift.max(0, limit)))
    }

    static func slowest(_ values: [(String, Int64)], field: DistributionField, noun: String) -> [KPIContributor] {
        var threshold: Int64 = 0
        var suffix = ""
        if let p = field.percent, let q = QuantileRank.exact(sorted: values.map(\.1).sorted(), percent: p) {
            threshold = q
            suffix = " (p\(Int(p)) \(DurationText.format(q)))"
        }
        return values.filter { $0.1 >= threshold }.map {
            KPIContributor(orderID: $0.0, reason: "\(noun) \(DurationText.format($0.1))" + suffix, value: Double($0.1) / 1e6)
        }
    }

    /// `allocated 6 of 10 units at first allocation (line 2: 2 of 6)`.
    static func shortReason(_ f: OrderFacts, _ a: AllocationPart) -> String {
        var ordered: [String: Double] = [:]
        var order: [String] = []
        for l in f.accepted?.lines ?? [] {
            if ordered[l.line] == nil { order.append(l.line) }
            ordered[l.line, default: 0] += l.qty
        }
        var allocated: [String: Double] = [:]
        for l in f.firstAllocation?.lines ?? [] { allocated[l.line, default: 0] += l.qtyAllocated }
        let shortLines = order.filter { allocated[$0, default: 0] < ordered[$0]! }.map {
            "line \($0): \(units(allocated[$0, default: 0])) of \(units(ordered[$0]!))"
        }
        var text = "allocated \(units(Units.double(a.unitsAllocatedFirst))) of \(units(Units.double(a.unitsOrdered))) units at first allocation"
        if !shortLines.isEmpty { text += " (" + shortLines.joined(separator: ", ") + ")" }
        return text
    }

    static func units(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : "\(v)"
    }
}

extension KPIRender {
    /// The orders behind a KPI as `waybill kpi --explain` prints them: an aligned table, the drill-down
    /// document (`{"metric", "orders": [{"order", "reason", "value"}]}`, as the API answers) or CSV.
    public static func contributors(_ doc: KPIExplainDocument, format: KPIFormat) -> String {
        let list = doc.orders
        switch format {
        case .json:
            return ((try? JSONCoding.encode(doc)) ?? .null).jsonString + "\n"
        case .csv:
            return (["order,value,reason"] + list.map { [$0.orderID, csvNumber($0.value), $0.reason].map(csvField).joined(separator: ",") })
                .joined(separator: "\r\n") + "\r\n"
        case .table, .html:
            guard !list.isEmpty else { return "No orders stand out.\n" }
            return aligned([["order", "reason"]] + list.map { [$0.orderID, $0.reason] }, leftColumns: 2)
        }
    }
}
