import WaybillModel

/// The simulated landscape around the workflow: sales channels, ERP, allocation, WMS, TMS and carriers.
extension Simulator {
    // MARK: Channels

    func submit(_ n: Int, channel: Int, resubmission: Bool) {
        submit(demand.order(n, channel: channel, at: state.now), number: n, channel: channel, resubmission: resubmission)
    }

    /// An order from outside the demand model (the Orders API), taken at the simulator's `now`
    /// through the same idempotent intake as the channels' orders.
    /// - Returns: the order id, and whether the idempotency key had been used already.
    public func submitExternal(_ order: OrderRequest) -> (orderID: String, duplicate: Bool) {
        let n = state.nextOrderNumber
        state.nextOrderNumber += 1
        // `resubmission: true`: the channel replay below regenerates demand orders, not this one.
        return submit(order, number: n, channel: 0, resubmission: true)
    }

    @discardableResult
    func submit(_ order: OrderRequest, number n: Int, channel: Int, resubmission: Bool) -> (orderID: String, duplicate: Bool) {
        switch state.intake.submit(order, now: state.now) {
        case .duplicate(let existing):
            state.stats.duplicateSubmissions += 1
            if wantsSpans {
                let hi = SplitMix64.hash(config.seed, 0x7AC3, UInt64(n)), lo = SplitMix64.hash(hi, UInt64(n))
                let replay = TraceContext(traceHi: hi, traceLo: lo, spanID: SplitMix64.hash(lo, 0xD0B) | 1)
                emitSpan(replay, parent: nil, service: "orchestrator", name: "order.submit", start: state.now, end: state.now + 2_000,
                         error: nil, orderID: order.orderID, extra: ["idempotent_replay": true, "channel": .string(order.channel)])
            }
            return (existing, true)
        case .accepted(let workflow, let actions):
            let hi = SplitMix64.hash(config.seed, 0x7ACE, UInt64(n))
            let lo = SplitMix64.hash(hi, UInt64(n)) | 1
            var o = LiveOrder(number: n, workflow: workflow, traceHi: hi, traceLo: lo, rootSpan: SplitMix64.hash(lo, 0x7007) | 1,
                              region: network.regionIndex(order.region) ?? 0)
            let step = o.nextSpan()
            state.live.insert(o)
            state.stats.ordersAccepted += 1
            state.stats.openOrders += 1
            if !resubmission, config.resubmitRate > 0, state.ops.chance(config.resubmitRate) {
                push(state.now + 1_000_000 + Micros(state.ops.below(120)) * 1_000_000, .submit(order: n, channel: channel, resubmission: true))
            }
            if config.cancelRate > 0, state.ops.chance(config.cancelRate) {
                let at = state.now + 300_000_000 + Micros(state.ops.below(3 * 3600)) * 1_000_000
                push(at, .input(order: n, .cancel(reason: "customer request"),
                                StepSpan(service: "orchestrator", name: "order.cancel", start: at)))
            }
            let ctx = o.context(step)
            perform(actions, order: n, orderID: order.orderID, ctx: ctx)
            if wantsSpans {
                emitSpan(ctx, parent: o.rootSpan, service: "orchestrator", name: "order.accept", start: state.now, end: state.now + 3_000,
                         error: nil, orderID: order.orderID, extra: ["channel": .string(order.channel)])
            }
            return (order.orderID, false)
        }
    }

    // MARK: Workflow shell

    /// Hands one input to an order's workflow, carries out the resulting actions, and moves the
    /// simulated warehouse on to its next step.
    func deliver(_ n: Int, _ input: WorkflowInput, step: StepSpan?) {
        guard state.live.contains(n) else {
            if case .allocationDecided(let d) = input, !d.placements.isEmpty { try! state.inventory.release(d.placements) }
            return
        }
        let (actions, ctx, orderID) = state.live[inFlight: n].apply(input, now: state.now, policy: config.workflowPolicy)
        if wantsSpans, let step { emitStepSpan(step, ctx: ctx, orderID: orderID, rootSpan: state.live[inFlight: n].rootSpan) }
        perform(actions, order: n, orderID: orderID, ctx: ctx)
        progressWarehouse(n, after: input)
    }

    /// Carries out a workflow's actions for order `n`, which is in flight until its `finished` action.
    func perform(_ actions: [WorkflowAction], order n: Int, orderID: String, ctx: TraceContext) {
        var inFlight = true
        for a in actions {
            switch a {
            case .emit(let event, let seq):
                guard inFlight else { continue }
                emitOrderEvent(event, seq: seq, orderID: orderID, ctx: ctx)
            case .callERP(let call, _):
                callERP(n, call)
            case .scheduleRetry(let call, _, let at):
                push(at, .input(order: n, .retryDue(call), nil))
            case .allocate(let request):
                requestAllocation(n, request)
            case .scheduleBackorderRetry(let at):
                push(at, .input(order: n, .backorderRetryDue, nil))
            case .requestRelease(let id, let warehouse, _):
                requestRelease(n, shipment: id, warehouse: warehouse)
            case .releaseReservations(let placements):
                try! state.inventory.release(placements)
            case .writeOff(let placements):
                state.stats.shortPicks += 1
                for p in placements { try! state.inventory.writeOff(warehouse: p.warehouse, sku: p.sku, qty: p.qty) }
            case .consumeReservations(let placements):
                for p in placements { try! state.inventory.ship(warehouse: p.warehouse, sku: p.sku, qty: p.qty) }
            case .finished(let status):
                finish(n, status)
                inFlight = false
            }
        }
    }

    func finish(_ n: Int, _ status: OrderStatus) {
        guard let o = state.live.remove(n) else { return }
        state.stats.openOrders -= 1
        switch status {
        case .invoiced: state.stats.ordersInvoiced += 1
        case .cancelled: state.stats.ordersCancelled += 1
        case .exception: state.stats.ordersExcepted += 1
        default: break
        }
        if wantsSpans {
            let root = TraceContext(traceHi: o.traceHi, traceLo: o.traceLo, spanID: o.rootSpan)
            emitSpan(root, parent: nil, service: "orchestrator", name: "order.fulfil", start: o.workflow.acceptedAt, end: state.now,
                     error: status == .exception ? "order exception" : nil, orderID: o.workflow.orderID,
                     extra: ["order.status": .string(status.rawValue)])
        }
    }

    // MARK: ERP

    func callERP(_ n: Int, _ call: ERPCall) {
        guard state.breaker.permit(now: state.now) else {
            state.stats.breakerRejections += 1
            push(state.now, .erpReply(order: n, call: call, failure: "circuit open", start: state.now, circuitOpen: true))
            return
        }
        let median: Double = call == .validate ? 250_000 : call == .creditCheck ? 400_000 : 300_000
        var latency = Micros(state.ops.logNormal(median: median, sigma: 0.45))
        let extra = faults.erpExtraLatency(at: state.now)
        if extra > 0 { latency += Micros(Double(extra) * (0.5 + state.ops.unit())) }
        if faults.erpErrorRate > 0, state.ops.chance(faults.erpErrorRate) {
            push(state.now + Micros(state.ops.logNormal(median: 80_000, sigma: 0.3)),
                 .erpReply(order: n, call: call, failure: "HTTP 503 Service Unavailable", start: state.now, circuitOpen: false))
        } else if latency > config.erpTimeout {
            push(state.now + config.erpTimeout, .erpReply(order: n, call: call, failure: "timeout after \(DurationText.format(config.erpTimeout))",
                                                    start: state.now, circuitOpen: false))
        } else {
            push(state.now + latency, .erpReply(order: n, call: call, failure: nil, start: state.now, circuitOpen: false))
        }
    }

    func erpReplied(_ n: Int, call: ERPCall, failure: String?, start: Micros, circuitOpen: Bool) {
        if !circuitOpen {
            if failure == nil { state.breaker.recordSuccess(now: state.now) } else { state.breaker.recordFailure(now: state.now) }
        }
        let step = StepSpan(service: circuitOpen ? "orchestrator" : "erp", name: "erp." + call.rawValue, start: start, error: failure)
        if let failure {
            state.stats.erpFailures += 1
            deliver(n, .erpFailed(call, reason: failure), step: step)
            return
        }
        var reply = ERPReply()
        switch call {
        case .validate: break
        case .creditCheck: reply.approved = !(config.creditDeclineRate > 0 && state.ops.chance(config.creditDeclineRate))
        case .postInvoice:
            state.invoiceCounter += 1
            let digits = String(state.invoiceCounter)
            reply.reference = "INV-" + demand.idTag + "-" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
        }
        deliver(n, .erpSucceeded(call, reply), step: step)
    }

    // MARK: Allocation

    func requestAllocation(_ n: Int, _ request: AllocationRequest) {
        var request = request
        var down: [Int] = []
        for (i, w) in network.warehouses.enumerated() {
            guard let since = faults.outageStart(w.id, at: state.now) else { continue }
            down.append(i)
            // Health monitoring notices an outage only after a few failed polls; until then the node's
            // last inventory feed still looks fine and orders are routed to it (and bounce at release).
            if state.now - since >= Simulator.outageDetection, !request.excluding.contains(w.id) { request.excluding.append(w.id) }
        }
        var latency = Micros(state.ops.logNormal(median: 120_000, sigma: 0.5))
        // A node that does not answer the inventory sync costs a timeout before it is routed around.
        if !down.isEmpty { latency += 15_000_000 + Micros(state.ops.below(5_000)) * 1000 }
        push(state.now + latency, .allocate(order: n, request, start: state.now, down: down))
    }

    func runAllocation(_ n: Int, _ request: AllocationRequest, start: Micros, down: [Int]) {
        guard state.live.contains(n) else { return }
        let decision = state.inventory.allocate(request)
        state.stats.allocations += 1
        if decision.isSplit { state.stats.splitAllocations += 1 }
        if !decision.backordered.isEmpty { state.stats.backorders += 1 }
        deliver(n, .allocationDecided(decision),
                step: StepSpan(service: "allocation", name: "allocation.allocate", start: start, error: nil, timedOut: down))
    }

    // MARK: Warehouses, TMS and carriers

    func requestRelease(_ n: Int, shipment: Int, warehouse: String) {
        let w = warehouseIndex[warehouse]!
        let system = network.warehouses[w].system
        let latency = Micros(state.ops.logNormal(median: 40_000_000, sigma: 0.5))
        let wh = network.warehouses[w]
        let backlogHours = Double(state.pickBacklog[w]) / (Double(wh.dailyCapacityUnits) / 24)
        var rejection: String?
        if faults.outageEnd(warehouse, at: state.now) != nil || faults.outageEnd(warehouse, at: state.now + latency) != nil {
            rejection = "warehouse unavailable"
        } else if backlogHours > Simulator.maxBacklogHours {
            rejection = "wave capacity exceeded"
        }
        if let rejection {
            state.stats.releaseRejections += 1
            // An unreachable WMS costs the client timeout; a full one answers at once.
            let after = rejection == "warehouse unavailable" ? 60_000_000 : latency
            push(state.now + after, .input(order: n, .releaseRejected(shipment: shipment, reason: rejection),
                                     StepSpan(service: system, name: "wms.release", start: state.now, error: rejection)))
        } else {
            push(state.now + latency, .input(order: n, .releaseAccepted(shipment: shipment),
                                       StepSpan(service: system, name: "wms.release", start: state.now)))
        }
    }

    /// After a warehouse input reached the workflow, schedules the warehouse's next step for that shipment.
    func progressWarehouse(_ n: Int, after input: WorkflowInput) {
        let id: Int
        switch input {
        case .releaseAccepted(let s), .picked(let s, _), .packed(let s), .shipped(let s, _, _): id = s
        default: return
        }
        guard let s = state.live[n]?.workflow.shipments.first(where: { $0.id == id }) else { return }
        let w = warehouseIndex[s.warehouse]!
        let wh = network.warehouses[w]
        switch (input, s.stage) {
        case (.releaseAccepted, .released):
            let units = s.lines.reduce(0) { $0 + $1.qty }
            let perHour = Double(wh.dailyCapacityUnits) / 24
            let queueWait = Micros(Double(state.pickBacklog[w]) / perHour * 3_600_000_000)
            state.pickBacklog[w] += units
            var done = state.now + queueWait + Micros(state.ops.logNormal(median: wh.pickMinutes * 60_000_000, sigma: 0.5))
            done = afterOutage(wh.id, done)
            var short: [LineShortage] = []
            if faults.shortPickRate > 0 {
                for l in s.lines where state.ops.chance(faults.shortPickRate) {
                    short.append(LineShortage(line: l.line, qty: 1 + state.ops.below(l.qty)))
                }
            }
            push(done, .pickDone(order: n, shipment: id, short: short, start: state.now, warehouse: w, units: units))
        case (.picked, .picked):
            let done = afterOutage(wh.id, state.now + Micros(state.ops.logNormal(median: wh.packMinutes * 60_000_000, sigma: 0.4)))
            push(done, .input(order: n, .packed(shipment: id), StepSpan(service: wh.system, name: "wms.pack", start: state.now)))
        case (.packed, .packed):
            var pickup = wh.nextPickup(after: state.now + 15 * 60_000_000)
            let deferred = afterOutage(wh.id, pickup)
            if deferred != pickup { pickup = wh.nextPickup(after: deferred) }
            let key = SplitMix64.hash(config.seed, UInt64(n), UInt64(id))
            let carrier = Simulator.carriers[Int(key % UInt64(Simulator.carriers.count))]
            let tracking = "1Z" + String(Hex.of(SplitMix64.mix(key)).uppercased())
            push(pickup, .input(order: n, .shipped(shipment: id, carrier: carrier, tracking: tracking),
                                StepSpan(service: "tms", name: "tms.ship", start: state.now)))
        case (.shipped, .shipped):
            guard let carrier = s.carrier, let tracking = s.tracking else { return }
            let scanned = state.now + 7_200_000_000 + Micros(state.ops.below(4 * 3600)) * 1_000_000
            push(scanned, .carrierScan(order: n, .inTransit(carrier: carrier, tracking: tracking, location: wh.id + " gateway"), start: state.now))
            let km = network.distanceKm(region: state.live[inFlight: n].region, warehouse: w)
            var days: Micros = km < 700 ? 1 : km < 1600 ? 2 : km < 2800 ? 3 : 4
            if state.ops.chance(0.1) { days += 1 }
            let dayStart = (state.now / 86_400_000_000 + days) * 86_400_000_000
            let delivered = max(scanned + 3_600_000_000, dayStart + 14 * 3_600_000_000 + Micros(state.ops.below(9 * 3600)) * 1_000_000)
            push(delivered, .carrierScan(order: n, .delivered(carrier: carrier, tracking: tracking), start: scanned))
            let confirmed = delivered + 60_000_000 + Micros(state.ops.below(30 * 60)) * 1_000_000
            push(confirmed, .input(order: n, .delivered(shipment: id), StepSpan(service: "tms", name: "tms.delivery_confirmed", start: delivered)))
        default:
            return
        }
    }

    /// A warehouse step due during an outage happens after it, once the backlog clears.
    func afterOutage(_ warehouse: String, _ t: Micros) -> Micros {
        guard let end = faults.outageEnd(warehouse, at: t), end != Micros.max else { return t }
        return end + Micros(state.ops.below(45 * 60)) * 1_000_000
    }

    func carrierScanned(_ n: Int, _ event: ShipmentEvent, start: Micros) {
        let tracking = event.tracking
        let hi = SplitMix64.hash(StableHash.of(tracking), config.seed)
        let lo = SplitMix64.hash(hi, 0xCA77) | 1
        var scan: UInt64 = 1
        if case .delivered = event { scan = 2 }
        let ctx = TraceContext(traceHi: hi, traceLo: lo, spanID: SplitMix64.hash(lo, scan) | 1)
        emitShipmentEvent(event, seq: Int(scan), ctx: ctx)
        if wantsSpans {
            let carrier: String
            switch event {
            case .inTransit(let c, _, _), .delivered(let c, _): carrier = c
            }
            emitSpan(ctx, parent: nil, service: "carrier", name: "carrier.scan", start: start, end: state.now, error: nil, orderID: nil,
                     extra: ["waybill.correlation_id": .string(event.subject), "shipment.tracking": .string(tracking),
                             "carrier": .string(carrier), "scan": .string(event.type)])
        }
    }
}
