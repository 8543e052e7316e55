import WaybillModel

/// A sales promotion: demand of the listed channels is multiplied while it runs.
public struct Promotion: Codable, Hashable, Sendable {
    public var start: Micros
    public var duration: Micros
    public var multiplier: Double
    public var channels: [String]
    public init(start: Micros, duration: Micros, multiplier: Double, channels: [String]) {
        self.start = start
        self.duration = duration
        self.multiplier = multiplier
        self.channels = channels
    }
}

/// Codable, so a checkpoint carries the config it resumes under (`SimulatorSnapshot`).
public struct SimulatorConfig: Codable, Sendable {
    public var seed: UInt64
    /// Virtual time of the first possible order.
    public var start: Micros
    /// Exactly this many orders over `days`; when nil, orders arrive at `ordersPerDay` on average.
    public var orders: Int?
    /// Length of the arrival period; nil (only with `orders == nil`) means open-ended, for real-time use.
    public var days: Double?
    public var ordersPerDay: Double
    public var faults: FaultPlan
    public var network: FulfilmentNetwork
    public var skuCount: Int
    /// Promotions; nil means one flash sale a week at a seed-chosen time.
    public var promotions: [Promotion]?
    public var workflowPolicy: WorkflowPolicy
    /// Share of orders a customer cancels soon after placing them.
    public var cancelRate: Double
    /// Share of orders a channel submits twice with the same idempotency key.
    public var resubmitRate: Double
    /// Share of credit checks declined.
    public var creditDeclineRate: Double
    /// ERP call timeout; slower replies fail as timeouts.
    public var erpTimeout: Micros
    public var erpBreaker: CircuitBreaker
    /// Whether to build and emit spans (sinks that do not want them skip this cost anyway).
    public var emitSpans: Bool
    /// How long order intake remembers an idempotency key (a resubmission within it is a duplicate).
    public var idempotencyRetention: Micros

    public init(seed: UInt64 = 1, start: Micros, orders: Int? = 10_000, days: Double? = 7, ordersPerDay: Double = 5_000,
                faults: FaultPlan = .none, network: FulfilmentNetwork = .standard, skuCount: Int = 400,
                promotions: [Promotion]? = nil, workflowPolicy: WorkflowPolicy = .standard, cancelRate: Double = 0.004,
                resubmitRate: Double = 0.01, creditDeclineRate: Double = 0.003, erpTimeout: Micros = 2_500_000,
                erpBreaker: CircuitBreaker = CircuitBreaker(), emitSpans: Bool = true,
                idempotencyRetention: Micros = 3_600_000_000)
    {
        self.seed = seed
        self.start = start
        self.orders = orders
        self.days = days
        self.ordersPerDay = ordersPerDay
        self.faults = faults
        self.network = network
        self.skuCount = skuCount
        self.promotions = promotions
        self.workflowPolicy = workflowPolicy
        self.cancelRate = cancelRate
        self.resubmitRate = resubmitRate
        self.creditDeclineRate = creditDeclineRate
        self.erpTimeout = erpTimeout
        self.erpBreaker = erpBreaker
        self.emitSpans = emitSpans
        self.idempotencyRetention = idempotencyRetention
    }

    /// `waybill simulate`: exactly `orders` orders spread over `days` days from `start`.
    public static func batch(orders: Int, seed: UInt64, days: Double, start: Micros, faults: FaultPlan = .none) -> SimulatorConfig {
        SimulatorConfig(seed: seed, start: start, orders: orders, days: days, faults: faults)
    }

    /// `waybill demo`: open-ended demand at `ordersPerDay`, to be driven with `advance(to:)`.
    public static func continuous(ordersPerDay: Double, seed: UInt64, start: Micros, faults: FaultPlan = .none) -> SimulatorConfig {
        SimulatorConfig(seed: seed, start: start, orders: nil, days: nil, ordersPerDay: ordersPerDay, faults: faults)
    }
}

public enum SimulatorConfigError: Error, Hashable, Sendable, CustomStringConvertible {
    case invalid(field: String, rule: String)
    public var description: String {
        switch self {
        case .invalid(let f, let r): return "\(f): \(r)"
        }
    }
}
