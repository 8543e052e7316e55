import WaybillModel

/// One KPI distribution of kpis.md (`allocation_delay`, `shipment_lag`), in seconds. Every field
/// but `count` is nil over nothing (a mean or quantile of no values is undefined, written `null`).
public struct DistributionSummary: Hashable, Sendable {
    public var count: Int64
    public var meanSeconds: Double?
    public var p50Seconds: Double?
    public var p90Seconds: Double?
    public var p95Seconds: Double?
    public var p99Seconds: Double?
    public var maxSeconds: Double?

    public init(count: Int64, meanSeconds: Double?, p50Seconds: Double?, p90Seconds: Double?, p95Seconds: Double?,
                p99Seconds: Double?, maxSeconds: Double?)
    {
        self.count = count
        self.meanSeconds = meanSeconds
        self.p50Seconds = p50Seconds
        self.p90Seconds = p90Seconds
        self.p95Seconds = p95Seconds
        self.p99Seconds = p99Seconds
        self.maxSeconds = maxSeconds
    }

    public static let empty = DistributionSummary(count: 0, meanSeconds: nil, p50Seconds: nil, p90Seconds: nil,
                                                  p95Seconds: nil, p99Seconds: nil, maxSeconds: nil)

    /// Exact: the reference computation over every value (microseconds).
    public init(exact values: [Int64]) {
        guard !values.isEmpty else { self = .empty; return }
        let sorted = values.sorted()
        func q(_ p: Double) -> Double? { QuantileRank.exact(sorted: sorted, percent: p).map { Double($0) / 1e6 } }
        let sum = sorted.reduce(Int64(0), &+)
        self.init(count: Int64(sorted.count), meanSeconds: Double(sum) / Double(sorted.count) / 1e6,
                  p50Seconds: q(50), p90Seconds: q(90), p95Seconds: q(95), p99Seconds: q(99),
                  maxSeconds: Double(sorted[sorted.count - 1]) / 1e6)
    }

    /// From a sketch: count and mean exact, quantiles within the sketch's accuracy, max exact where the
    /// sketch knows it (`QuantileSketch.maxIsExact`; KPI queries merge only rollup rows that do).
    public init(sketch s: QuantileSketch) {
        guard s.count > 0 else { self = .empty; return }
        func q(_ p: Double) -> Double? { s.quantile(percent: p).map { $0 / 1e6 } }
        self.init(count: s.count, meanSeconds: s.mean.map { $0 / 1e6 }, p50Seconds: q(50), p90Seconds: q(90),
                  p95Seconds: q(95), p99Seconds: q(99), maxSeconds: s.max.map { Double($0) / 1e6 })
    }

    public func value(_ field: DistributionField) -> Double? {
        switch field {
        case .count: return Double(count)
        case .mean: return meanSeconds
        case .p50: return p50Seconds
        case .p90: return p90Seconds
        case .p95: return p95Seconds
        case .p99: return p99Seconds
        case .max: return maxSeconds
        }
    }

    public var json: JSONValue {
        var o: [String: JSONValue] = ["count": .number(Double(count))]
        for f in DistributionField.allCases where f != .count { o[f.rawValue] = value(f).map(JSONValue.number) ?? .null }
        return .object(o)
    }

    public init?(json: JSONValue) {
        guard let c = json["count"]?.doubleValue else { return nil }
        func v(_ f: DistributionField) -> Double? { json[f.rawValue]?.doubleValue }
        self.init(count: Int64(c), meanSeconds: v(.mean), p50Seconds: v(.p50), p90Seconds: v(.p90), p95Seconds: v(.p95),
                  p99Seconds: v(.p99), maxSeconds: v(.max))
    }
}

public enum DistributionField: String, CaseIterable, Sendable, Hashable {
    case count, mean = "mean_s", p50 = "p50_s", p90 = "p90_s", p95 = "p95_s", p99 = "p99_s", max = "max_s"

    /// The percentile behind a quantile field.
    public var percent: Double? {
        switch self {
        case .p50: return 50
        case .p90: return 90
        case .p95: return 95
        case .p99: return 99
        default: return nil
        }
    }
}

/// A KPI name as rules and `explain` write it: `fill_rate`, `allocation_delay.p95_s`, ...
public enum KPIMetric: Hashable, Sendable, CustomStringConvertible {
    case ordersAllocated, fillRate, orderFillRate, allocationDelay(DistributionField)
    case shipments, shipmentLag(DistributionField), onTimeRate

    public init?(_ text: String) {
        switch text {
        case "orders_allocated": self = .ordersAllocated
        case "fill_rate": self = .fillRate
        case "order_fill_rate": self = .orderFillRate
        case "shipments": self = .shipments
        case "on_time_rate": self = .onTimeRate
        default:
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 2, let f = DistributionField(rawValue: String(parts[1])) else { return nil }
            switch parts[0] {
            case "allocation_delay": self = .allocationDelay(f)
            case "shipment_lag": self = .shipmentLag(f)
            default: return nil
            }
        }
    }

    /// Like `init?(_:)`, with an error that lists the valid names.
    public static func parse(_ text: String) throws(KPIQueryError) -> KPIMetric {
        guard let m = KPIMetric(text) else {
            throw KPIQueryError(field: "metric", rule: "'\(text)' is not a KPI; use one of " + all.map(\.description).joined(separator: ", "))
        }
        return m
    }

    public var description: String {
        switch self {
        case .ordersAllocated: return "orders_allocated"
        case .fillRate: return "fill_rate"
        case .orderFillRate: return "order_fill_rate"
        case .allocationDelay(let f): return "allocation_delay.\(f.rawValue)"
        case .shipments: return "shipments"
        case .shipmentLag(let f): return "shipment_lag.\(f.rawValue)"
        case .onTimeRate: return "on_time_rate"
        }
    }

    public static let all: [KPIMetric] = [.ordersAllocated, .fillRate, .orderFillRate]
        + DistributionField.allCases.map(KPIMetric.allocationDelay) + [.shipments]
        + DistributionField.allCases.map(KPIMetric.shipmentLag) + [.onTimeRate]

    public enum Kind: Sendable { case count, ratio, seconds }

    public var kind: Kind {
        switch self {
        case .ordersAllocated, .shipments: return .count
        case .fillRate, .orderFillRate, .onTimeRate: return .ratio
        case .allocationDelay(let f), .shipmentLag(let f): return f == .count ? .count : .seconds
        }
    }

    /// Whether a larger value is good news (rates, volumes) or bad news (delays, lags).
    public var higherIsBetter: Bool {
        switch kind {
        case .count, .ratio: return true
        case .seconds: return false
        }
    }

    /// A short human label for reports.
    public var label: String {
        switch self {
        case .ordersAllocated: return "Orders allocated"
        case .fillRate: return "Fill rate"
        case .orderFillRate: return "Order fill rate"
        case .allocationDelay(let f): return "Allocation delay " + f.label
        case .shipments: return "Shipments"
        case .shipmentLag(let f): return "Shipment lag " + f.label
        case .onTimeRate: return "On-time rate"
        }
    }
}

extension DistributionField {
    public var label: String {
        switch self {
        case .count: return "count"
        case .mean: return "mean"
        case .p50: return "p50"
        case .p90: return "p90"
        case .p95: return "p95"
        case .p99: return "p99"
        case .max: return "max"
        }
    }
}

/// The KPIs of kpis.md over one window and group (`KPIS` of interfaces.md). Ratios over nothing are nil.
public struct KPIs: Hashable, Sendable {
    public var ordersAllocated: Int64
    public var fillRate: Double?
    public var orderFillRate: Double?
    public var allocationDelay: DistributionSummary
    public var shipments: Int64
    public var shipmentLag: DistributionSummary
    public var onTimeRate: Double?

    public init(ordersAllocated: Int64, fillRate: Double?, orderFillRate: Double?, allocationDelay: DistributionSummary,
                shipments: Int64, shipmentLag: DistributionSummary, onTimeRate: Double?)
    {
        self.ordersAllocated = ordersAllocated
        self.fillRate = fillRate
        self.orderFillRate = orderFillRate
        self.allocationDelay = allocationDelay
        self.shipments = shipments
        self.shipmentLag = shipmentLag
        self.onTimeRate = onTimeRate
    }

    public static let empty = KPIs(ordersAllocated: 0, fillRate: nil, orderFillRate: nil, allocationDelay: .empty,
                                   shipments: 0, shipmentLag: .empty, onTimeRate: nil)

    public func value(_ m: KPIMetric) -> Double? {
        switch m {
        case .ordersAllocated: return Double(ordersAllocated)
        case .fillRate: return fillRate
        case .orderFillRate: return orderFillRate
        case .allocationDelay(let f): return allocationDelay.value(f)
        case .shipments: return Double(shipments)
        case .shipmentLag(let f): return shipmentLag.value(f)
        case .onTimeRate: return onTimeRate
        }
    }

    /// The `KPIS` object of interfaces.md.
    public var json: JSONValue {
        [
            "orders_allocated": .number(Double(ordersAllocated)),
            "fill_rate": fillRate.map(JSONValue.number) ?? .null,
            "order_fill_rate": orderFillRate.map(JSONValue.number) ?? .null,
            "allocation_delay": allocationDelay.json,
            "shipments": .number(Double(shipments)),
            "shipment_lag": shipmentLag.json,
            "on_time_rate": onTimeRate.map(JSONValue.number) ?? .null,
        ]
    }

    public init?(json j: JSONValue) {
        guard let oa = j["orders_allocated"]?.doubleValue, let sh = j["shipments"]?.doubleValue,
              let ad = j["allocation_delay"].flatMap(DistributionSummary.init(json:)),
              let sl = j["shipment_lag"].flatMap(DistributionSummary.init(json:))
        else { return nil }
        self.init(ordersAllocated: Int64(oa), fillRate: j["fill_rate"]?.doubleValue, orderFillRate: j["order_fill_rate"]?.doubleValue,
                  allocationDelay: ad, shipments: Int64(sh), shipmentLag: sl, onTimeRate: j["on_time_rate"]?.doubleValue)
    }
}

func ratio(_ a: Int64, _ b: Int64) -> Double? { b == 0 ? nil : Double(a) / Double(b) }
