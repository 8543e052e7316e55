import Foundation
import WaybillModel

/// Counters of a simulation run.
public struct SimulationStats: Codable, Hashable, Sendable {
    public var ordersAccepted = 0
    public var duplicateSubmissions = 0
    public var ordersInvoiced = 0
    public var ordersCancelled = 0
    public var ordersExcepted = 0
    public var allocations = 0
    public var splitAllocations = 0
    public var backorders = 0
    public var shortPicks = 0
    public var releaseRejections = 0
    public var erpFailures = 0
    public var breakerRejections = 0
    /// Events handed to the sink, duplicates included.
    public var eventsEmitted = 0
    public var duplicateEvents = 0
    public var delayedEvents = 0
    public var spansEmitted = 0
    public var openOrders = 0
}

/// The workload simulator: synthetic demand driving the embedded orchestration and allocation services
/// on a virtual clock, with injected faults. Everything it emits goes to the sink in emission order.
///
/// Reproducible byte for byte: the same config gives the same bytes, however `advance(to:)` is stepped.
/// Not thread-safe: drive it from one task (its hot state skips dynamic exclusivity checks for speed).
///
///     // waybill simulate: a bounded batch, as fast as possible
///     let sink = try NDJSONFileSink(path: "events.ndjson")
///     let sim = try Simulator(.batch(orders: n, seed: s, days: d, start: t, faults: try FaultPlan.parse(spec)), sink: sink)
///     sim.run(); try sink.close()
///
///     // waybill demo: open-ended demand, backfilled, then paced by the wall clock
///     let sim = try Simulator(.continuous(ordersPerDay: 5000, seed: 1, start: currentMicros() - 3 * 86_400_000_000), sink: store)
///     sim.advance(to: currentMicros())   // backfill
///     // every second: sim.advance(to: currentMicros())
public final class Simulator {
    public let config: SimulatorConfig
    public let allocation: AllocationService
    /// The virtual clock: everything due at or before it has happened.
    @exclusivity(unchecked) public internal(set) var now: Micros
    @exclusivity(unchecked) public internal(set) var stats = SimulationStats()

    let sink: TelemetrySink
    let textSink: EventTextSink?
    let wantsSpans: Bool
    let demand: DemandModel
    let network: FulfilmentNetwork
    let faults: FaultPlan
    @exclusivity(unchecked) var queue = EventQueue<Happening>()
    @exclusivity(unchecked) var live = LiveOrders()
    @exclusivity(unchecked) var intake: OrderIntake
    @exclusivity(unchecked) var breaker: CircuitBreaker
    @exclusivity(unchecked) var ops: Xoshiro256
    @exclusivity(unchecked) var faultRandom: Xoshiro256
    @exclusivity(unchecked) var writer = JSONTextWriter(capacity: 4096)
    /// Queued things that are not periodic housekeeping; the batch run ends when none is left.
    @exclusivity(unchecked) var workItems = 0
    @exclusivity(unchecked) var nextOrderNumber = 1
    @exclusivity(unchecked) var invoiceCounter = 0
    @exclusivity(unchecked) var pickBacklog: [Int]
    let warehouseIndex: [String: Int]
    let leadTimeHours: [Int]
    static let carriers = ["UPS", "FedEx", "USPS", "OnTrac"]
    /// How long an outage goes unnoticed by allocation.
    static let outageDetection: Micros = 5 * 60_000_000
    /// A warehouse refuses releases while its pick backlog exceeds this many hours of capacity.
    static let maxBacklogHours = 18.0

    /// Orders in flight by order number (numbers are dense, from 1), without hashing.
    struct LiveOrders {
        private var slots: [LiveOrder?] = []
        subscript(n: Int) -> LiveOrder? {
            get { n >= 0 && n < slots.count ? slots[n] : nil }
            set {
                if n >= slots.count { slots.append(contentsOf: repeatElement(nil, count: n - slots.count + 1)) }
                slots[n] = newValue
            }
        }
        /// Orders in flight, by order number.
        var all: [LiveOrder] { slots.compactMap { $0 } }
        /// Orders in flight with their numbers, by order number.
        var numbered: [(number: Int, order: LiveOrder)] { slots.indices.compactMap { i in slots[i].map { (i, $0) } } }

        mutating func removeValue(forKey n: Int) -> LiveOrder? {
            guard n >= 0 && n < slots.count, let o = slots[n] else { return nil }
            slots[n] = nil
            return o
        }
    }

    /// An order in flight; a class so that the workflow is updated in place.
    final class LiveOrder {
        @exclusivity(unchecked) var workflow: OrderWorkflow
        let traceHi: UInt64
        let traceLo: UInt64
        let rootSpan: UInt64
        @exclusivity(unchecked) var spanCounter: UInt64 = 0
        let region: Int
        init(workflow: OrderWorkflow, traceHi: UInt64, traceLo: UInt64, rootSpan: UInt64, region: Int) {
            self.workflow = workflow
            self.traceHi = traceHi
            self.traceLo = traceLo
            self.rootSpan = rootSpan
            self.region = region
        }
    }

    /// A technical step that ends when its input reaches the workflow.
    struct StepSpan: Codable, Sendable {
        var service: String
        var name: String
        var start: Micros
        var error: String?
        /// Warehouses whose inventory sync timed out during this step (allocation only).
        var timedOut: [Int] = []
    }

    enum Happening: Codable, Sendable {
        case arrivals(hour: Int)
        case submit(order: Int, channel: Int, resubmission: Bool)
        case input(order: Int, WorkflowInput, StepSpan?)
        case erpReply(order: Int, call: ERPCall, failure: String?, start: Micros, circuitOpen: Bool)
        case allocate(order: Int, AllocationRequest, start: Micros, down: [Int])
        case pickDone(order: Int, shipment: Int, short: [LineShortage], start: Micros, warehouse: Int, units: Int)
        case carrierScan(order: Int, ShipmentEvent, start: Micros)
        case replenish
        case receipt(ReplenishmentOrder)
        case deliverText([UInt8])
        case deliverEvent(DelayedEvent)

        var isHousekeeping: Bool {
            switch self {
            case .replenish, .receipt: return true
            default: return false
            }
        }
    }

    /// - Throws: `SimulatorConfigError` when the config cannot run (no orders horizon, unknown outage warehouse, ...).
    public convenience init(_ config: SimulatorConfig, sink: TelemetrySink) throws(SimulatorConfigError) {
        try self.init(config, sink: sink, resuming: nil)
    }

    /// A simulator that goes on from a checkpoint taken by `snapshot()`, under the config it was taken with:
    /// what it emits from here is what the original would have emitted after the checkpoint, byte for byte.
    public convenience init(resuming snapshot: SimulatorSnapshot, sink: TelemetrySink) throws(SimulatorConfigError) {
        try self.init(snapshot.config, sink: sink, resuming: snapshot)
    }

    init(_ config: SimulatorConfig, sink: TelemetrySink, resuming snapshot: SimulatorSnapshot?) throws(SimulatorConfigError) {
        if let n = config.orders {
            guard n >= 0 else { throw .invalid(field: "orders", rule: "must be >= 0, got \(n)") }
            guard let d = config.days, d > 0 else { throw .invalid(field: "days", rule: "must be > 0 when orders is given") }
        } else {
            guard config.ordersPerDay > 0 else { throw .invalid(field: "ordersPerDay", rule: "must be > 0") }
        }
        if let d = config.days, !(d > 0) { throw .invalid(field: "days", rule: "must be > 0, got \(d)") }
        guard !config.network.warehouses.isEmpty, !config.network.regions.isEmpty else {
            throw .invalid(field: "network", rule: "needs at least one warehouse and one region")
        }
        guard config.skuCount > 0 else { throw .invalid(field: "skuCount", rule: "must be > 0") }
        for o in config.faults.outages where config.network.warehouseIndex(o.warehouse) == nil {
            throw .invalid(field: "faults", rule: "warehouse-outage names unknown warehouse \"\(o.warehouse)\"")
        }
        self.config = config
        self.sink = sink
        textSink = sink as? EventTextSink
        wantsSpans = config.emitSpans && (textSink?.wantsSpans ?? true)
        faults = config.faults
        now = config.start
        intake = OrderIntake(retention: config.idempotencyRetention)
        breaker = config.erpBreaker
        ops = Xoshiro256(seed: SplitMix64.hash(config.seed, 0x0F5))
        faultRandom = Xoshiro256(seed: SplitMix64.hash(config.seed, 0xFA17))
        demand = DemandModel(config: config)

        // Size warehouse capacity and stock to the demand, so any order count gives a realistic picture.
        let (unitsPerOrder, unitsPerSKU) = demand.expectedUnits()
        let dailyUnits = demand.ordersPerDay * unitsPerOrder
        var net = config.network
        let capTotal = Double(net.warehouses.reduce(0) { $0 + $1.dailyCapacityUnits })
        for i in net.warehouses.indices {
            let share = Double(net.warehouses[i].dailyCapacityUnits) / max(capTotal, 1)
            net.warehouses[i].dailyCapacityUnits = max(50, Int((dailyUnits * 1.5 * share).rounded(.up)))
        }
        network = net
        var idx: [String: Int] = [:]
        for (i, w) in net.warehouses.enumerated() { idx[w.id] = i }
        warehouseIndex = idx
        pickBacklog = Array(repeating: 0, count: net.warehouses.count)

        var stockRandom = Xoshiro256(seed: SplitMix64.hash(config.seed, 0x570C))
        leadTimeHours = net.warehouses.map { _ in 36 + stockRandom.below(36) }
        var ledger = InventoryLedger(network: net)
        let wCount = net.warehouses.count
        for (s, sku) in demand.skus.enumerated() {
            let daily = demand.ordersPerDay * unitsPerSKU[s]
            let carriers = s < demand.skus.count / 5 ? wCount : min(wCount, 2 + stockRandom.below(2))
            var chosen = Array(0..<wCount)
            for i in 0..<(wCount - 1) { chosen.swapAt(i, i + stockRandom.below(wCount - i)) }
            chosen = Array(chosen.prefix(carriers)).sorted()
            let weights = chosen.map { _ in 0.5 + stockRandom.unit() }
            let total = weights.reduce(0, +)
            let tight = stockRandom.chance(0.02)
            for (k, w) in chosen.enumerated() {
                let d = daily * weights[k] / total
                let cover = tight ? 0.7 + stockRandom.unit() * 1.3 : 5 + stockRandom.unit() * 5
                try! ledger.stock(warehouse: net.warehouses[w].id, sku: sku, onHand: max(1, Int((d * cover).rounded(.up))),
                                  safetyStock: Int((d * 0.3).rounded(.down)),
                                  policy: ReplenishmentPolicy(reorderPoint: max(1, Int((d * 5).rounded(.up))),
                                                              orderUpTo: max(1, Int((d * 10).rounded(.up)))))
            }
        }
        allocation = AllocationService(ledger: snapshot?.inventory ?? ledger)
        if let snapshot {
            restore(snapshot)
            return
        }

        push(config.start, .arrivals(hour: 0))
        let day = config.start / 86_400_000_000 * 86_400_000_000
        var firstReplenish = day + 4 * 3_600_000_000
        if firstReplenish <= config.start { firstReplenish += 86_400_000_000 }
        push(firstReplenish, .replenish)
    }

    // MARK: Driving the clock

    /// Runs until every order has finished. Only for a config with an end (`days`).
    public func run() {
        precondition(config.days != nil, "run() needs a config with days; use advance(to:) for open-ended demand")
        while workItems > 0, let e = queue.pop() {
            process(e)
        }
    }

    /// Processes everything due up to and including `t`, then sets the clock to `t`.
    public func advance(to t: Micros) {
        while let next = queue.nextTime(), next <= t, let e = queue.pop() {
            process(e)
        }
        if t > now { now = t }
    }

    /// The workflow state of every order in flight, in order-number order (for inspection or persistence).
    public var openWorkflows: [OrderWorkflow] { live.all.map(\.workflow) }

    /// True when a bounded run has nothing left to do.
    public var isFinished: Bool { workItems == 0 }

    /// The virtual time of the next thing due, if any.
    public var nextDue: Micros? { queue.peekTime }

    func push(_ t: Micros, _ h: Happening) {
        if !h.isHousekeeping { workItems += 1 }
        queue.push(t, h)
    }

    private func process(_ e: (time: Micros, payload: Happening)) {
        if e.time > now { now = e.time }
        if !e.payload.isHousekeeping { workItems -= 1 }
        switch e.payload {
        case .arrivals(let hour):
            for a in demand.arrivals(hour: hour) {
                let n = nextOrderNumber
                nextOrderNumber += 1
                push(a.time, .submit(order: n, channel: a.channel, resubmission: false))
            }
            let next = hour + 1
            if demand.horizonHours.map({ next < $0 }) ?? true {
                push(config.start + Micros(next) * 3_600_000_000, .arrivals(hour: next))
            }
        case .submit(let n, let channel, let resubmission):
            submit(n, channel: channel, resubmission: resubmission)
        case .input(let n, let input, let step):
            deliver(n, input, step: step)
        case .erpReply(let n, let call, let failure, let start, let circuitOpen):
            erpReplied(n, call: call, failure: failure, start: start, circuitOpen: circuitOpen)
        case .allocate(let n, let request, let start, let down):
            runAllocation(n, request, start: start, down: down)
        case .pickDone(let n, let shipment, let short, let start, let w, let units):
            pickBacklog[w] -= units
            let wh = network.warehouses[w]
            deliver(n, .picked(shipment: shipment, short: short),
                    step: StepSpan(service: wh.system, name: "wms.pick", start: start, error: short.isEmpty ? nil : "short pick"))
        case .carrierScan(let n, let event, let start):
            carrierScanned(n, event, start: start)
        case .replenish:
            for o in allocation.planReplenishment() {
                let w = warehouseIndex[o.warehouse]!
                push(now + Micros(leadTimeHours[w]) * 3_600_000_000 + Micros(ops.below(6 * 3600)) * 1_000_000, .receipt(o))
            }
            push(now + 86_400_000_000, .replenish)
        case .receipt(let o):
            try! allocation.receive(warehouse: o.warehouse, sku: o.sku, qty: o.qty)
        case .deliverText(let bytes):
            bytes.withUnsafeBufferPointer { textSink!.emitEventText($0) }
            stats.eventsEmitted += 1
        case .deliverEvent(let delayed):
            sink.emit(delayed.event)
            stats.eventsEmitted += 1
        }
    }
}

extension SimulationStats: CustomStringConvertible {
    /// One line a person can read at the end of `waybill simulate`.
    public var description: String {
        "\(ordersAccepted) orders (\(ordersInvoiced) invoiced, \(ordersCancelled) cancelled, \(ordersExcepted) exceptions, \(openOrders) open); "
            + "\(allocations) allocations (\(splitAllocations) split, \(backorders) with backorders), \(shortPicks) short picks, "
            + "\(releaseRejections) rejected releases, \(erpFailures) ERP failures (\(breakerRejections) by open breaker), "
            + "\(duplicateSubmissions) duplicate submissions; \(eventsEmitted) events (\(duplicateEvents) duplicated, \(delayedEvents) delayed), \(spansEmitted) spans"
    }
}
