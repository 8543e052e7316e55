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
    /// Everything the simulator changes as it runs; the rest is derived from `config` (or is scratch space).
    /// Hot: the event loop reads and writes it in place, as `state.x`, never as a copy.
    @exclusivity(unchecked) var state: State

    let sink: TelemetrySink
    let textSink: EventTextSink?
    let wantsSpans: Bool
    let demand: DemandModel
    let network: FulfilmentNetwork
    let faults: FaultPlan
    @exclusivity(unchecked) var writer = JSONTextWriter(capacity: 4096)
    let warehouseIndex: [String: Int]
    let leadTimeHours: [Int]
    static let carriers = ["UPS", "FedEx", "USPS", "OnTrac"]
    /// How long an outage goes unnoticed by allocation.
    static let outageDetection: Micros = 5 * 60_000_000
    /// A warehouse refuses releases while its pick backlog exceeds this many hours of capacity.
    static let maxBacklogHours = 18.0

    /// The simulator's mutable state, as one value: the virtual clock, what is pending on it, the
    /// workflows in flight, the inventory, the idempotency keys of order intake, the circuit breaker,
    /// the generators and the counters. A checkpoint (`SimulatorSnapshot`) is the config and this.
    public struct State: Codable, Sendable {
        /// The virtual clock: everything due at or before it has happened.
        var now: Micros
        var stats = SimulationStats()
        /// Happenings due on the clock; ties pop in the order they were pushed (also after decoding).
        var queue = EventQueue<Happening>()
        var live = LiveOrders()
        var intake: OrderIntake
        var breaker: CircuitBreaker
        var ops: Xoshiro256
        var faultRandom: Xoshiro256
        /// Queued things that are not periodic housekeeping; the batch run ends when none is left.
        var workItems = 0
        var nextOrderNumber = 1
        var invoiceCounter = 0
        /// Units released to each warehouse and not yet picked, by warehouse index.
        var pickBacklog: [Int]
        /// The allocation service's books.
        var inventory: InventoryLedger
    }

    /// Orders in flight by order number (numbers are dense, from 1), without hashing: the orders are kept
    /// densely, and an array indexed by order number (4 bytes per number ever used) says where. Encoded as
    /// the orders in flight, in order-number order.
    struct LiveOrders: Codable, Sendable {
        /// By order number: 1 + the order's index in `orders`, or 0 when it is not in flight.
        private var position: [Int32] = []
        private var orders: [LiveOrder] = []

        init() {}

        @inline(__always) private func index(_ n: Int) -> Int? {
            guard n >= 0 && n < position.count else { return nil }
            let p = Int(position[n]) - 1
            return p >= 0 ? p : nil
        }

        func contains(_ n: Int) -> Bool { index(n) != nil }

        subscript(n: Int) -> LiveOrder? {
            if let p = index(n) { return orders[p] }
            return nil
        }

        /// The order numbered `n`, which must be in flight; changes go in place.
        subscript(inFlight n: Int) -> LiveOrder {
            _read { yield orders[index(n)!] }
            _modify { yield &orders[index(n)!] }
        }

        /// Adds the order, or replaces the one in flight with its number.
        mutating func insert(_ o: LiveOrder) {
            if let p = index(o.number) {
                orders[p] = o
                return
            }
            if o.number >= position.count { position.append(contentsOf: repeatElement(0, count: o.number - position.count + 1)) }
            orders.append(o)
            position[o.number] = Int32(orders.count)
        }

        mutating func remove(_ n: Int) -> LiveOrder? {
            guard let p = index(n) else { return nil }
            position[n] = 0
            orders.swapAt(p, orders.count - 1)
            let o = orders.removeLast()
            if p < orders.count { position[orders[p].number] = Int32(p + 1) }
            return o
        }

        /// Orders in flight, by order number.
        var all: [LiveOrder] { orders.sorted { $0.number < $1.number } }

        init(from decoder: any Decoder) throws {
            for o in try decoder.singleValueContainer().decode([LiveOrder].self) { insert(o) }
        }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            try c.encode(all)
        }
    }

    /// An order in flight with its trace identity.
    struct LiveOrder: Codable, Sendable {
        let number: Int
        var workflow: OrderWorkflow
        let traceHi: UInt64
        let traceLo: UInt64
        let rootSpan: UInt64
        var spanCounter: UInt64 = 0
        let region: Int

        /// The id of the order's next span.
        mutating func nextSpan() -> UInt64 {
            spanCounter += 1
            return SplitMix64.hash(traceLo, spanCounter) | 1
        }

        /// Hands one input to the workflow in a new span: the workflow's actions, the span's context and the order id.
        mutating func apply(_ input: WorkflowInput, now: Micros, policy: WorkflowPolicy)
            -> (actions: [WorkflowAction], ctx: TraceContext, orderID: String)
        {
            let span = nextSpan()
            let actions = workflow.apply(input, now: now, policy: policy)
            // Stored properties only: a debug build copies the whole order to call a method or getter on it.
            return (actions, TraceContext(traceHi: traceHi, traceLo: traceLo, spanID: span), workflow.order.orderID)
        }

        func context(_ span: UInt64) -> TraceContext { TraceContext(traceHi: traceHi, traceLo: traceLo, spanID: span) }
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

        var stockRandom = Xoshiro256(seed: SplitMix64.hash(config.seed, 0x570C))
        leadTimeHours = net.warehouses.map { _ in 36 + stockRandom.below(36) }
        if let snapshot {
            state = snapshot.state
            return
        }
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
        state = State(now: config.start, intake: OrderIntake(retention: config.idempotencyRetention), breaker: config.erpBreaker,
                      ops: Xoshiro256(seed: SplitMix64.hash(config.seed, 0x0F5)), faultRandom: Xoshiro256(seed: SplitMix64.hash(config.seed, 0xFA17)),
                      pickBacklog: Array(repeating: 0, count: net.warehouses.count), inventory: ledger)

        push(config.start, .arrivals(hour: 0))
        let day = config.start / 86_400_000_000 * 86_400_000_000
        var firstReplenish = day + 4 * 3_600_000_000
        if firstReplenish <= config.start { firstReplenish += 86_400_000_000 }
        push(firstReplenish, .replenish)
    }

    // MARK: Driving the clock

    /// The virtual clock: everything due at or before it has happened.
    public var now: Micros { state.now }

    public var stats: SimulationStats { state.stats }

    /// The allocation service's books as of now.
    public var inventory: InventoryLedger { state.inventory }

    /// Runs until every order has finished. Only for a config with an end (`days`).
    public func run() {
        precondition(config.days != nil, "run() needs a config with days; use advance(to:) for open-ended demand")
        while state.workItems > 0, let e = state.queue.pop() {
            process(e)
        }
    }

    /// Processes everything due up to and including `t`, then sets the clock to `t`.
    public func advance(to t: Micros) {
        while let next = state.queue.nextTime(), next <= t, let e = state.queue.pop() {
            process(e)
        }
        if t > state.now { state.now = t }
    }

    /// The workflow state of every order in flight, in order-number order (for inspection or persistence).
    public var openWorkflows: [OrderWorkflow] { state.live.all.map(\.workflow) }

    /// True when a bounded run has nothing left to do.
    public var isFinished: Bool { state.workItems == 0 }

    /// The virtual time of the next thing due, if any.
    public var nextDue: Micros? { state.queue.peekTime }

    func push(_ t: Micros, _ h: Happening) {
        if !h.isHousekeeping { state.workItems += 1 }
        state.queue.push(t, h)
    }

    private func process(_ e: (time: Micros, payload: Happening)) {
        if e.time > state.now { state.now = e.time }
        if !e.payload.isHousekeeping { state.workItems -= 1 }
        switch e.payload {
        case .arrivals(let hour):
            for a in demand.arrivals(hour: hour) {
                let n = state.nextOrderNumber
                state.nextOrderNumber += 1
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
            state.pickBacklog[w] -= units
            let wh = network.warehouses[w]
            deliver(n, .picked(shipment: shipment, short: short),
                    step: StepSpan(service: wh.system, name: "wms.pick", start: start, error: short.isEmpty ? nil : "short pick"))
        case .carrierScan(let n, let event, let start):
            carrierScanned(n, event, start: start)
        case .replenish:
            for o in state.inventory.planReplenishment() {
                let w = warehouseIndex[o.warehouse]!
                push(state.now + Micros(leadTimeHours[w]) * 3_600_000_000 + Micros(state.ops.below(6 * 3600)) * 1_000_000, .receipt(o))
            }
            push(state.now + 86_400_000_000, .replenish)
        case .receipt(let o):
            try! state.inventory.receive(warehouse: o.warehouse, sku: o.sku, qty: o.qty)
        case .deliverText(let bytes):
            bytes.withUnsafeBufferPointer { textSink!.emitEventText($0) }
            state.stats.eventsEmitted += 1
        case .deliverEvent(let delayed):
            sink.emit(delayed.event)
            state.stats.eventsEmitted += 1
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
