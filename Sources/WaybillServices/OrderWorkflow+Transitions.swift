import WaybillModel

extension OrderWorkflow {
    /// Starts the workflow of a newly accepted order: `order.accepted`, then ERP validation.
    public static func start(_ order: OrderRequest, now: Micros) -> (OrderWorkflow, [WorkflowAction]) {
        var w = OrderWorkflow(order: order, status: .accepted, pendingCall: PendingERPCall(call: .validate, attempt: 1),
                              acceptedAt: now, updatedAt: now)
        var actions: [WorkflowAction] = []
        w.emit(.accepted(order), &actions)
        actions.append(.callERP(.validate, attempt: 1))
        return (w, actions)
    }

    /// The pure transition function: the next state and what the shell must do. Inputs that do not fit the
    /// current state (stale, duplicated, or after the end) change nothing, except that units reserved by
    /// an allocation nobody waits for any more are handed back.
    public static func reduce(_ state: OrderWorkflow, _ input: WorkflowInput, now: Micros,
                              policy: WorkflowPolicy = .standard) -> (OrderWorkflow, [WorkflowAction])
    {
        var w = state
        let actions = w.apply(input, now: now, policy: policy)
        return (w, actions)
    }

    /// `reduce` in place: the same transition, without copying the state (for shells that own it).
    public mutating func apply(_ input: WorkflowInput, now: Micros, policy: WorkflowPolicy = .standard) -> [WorkflowAction] {
        var actions: [WorkflowAction] = []
        if status.isFinal {
            if case .allocationDecided(let d) = input, !d.placements.isEmpty { actions.append(.releaseReservations(d.placements)) }
            return actions
        }
        handle(input, now: now, policy: policy, &actions)
        if !actions.isEmpty { updatedAt = now }
        return actions
    }

    private mutating func handle(_ input: WorkflowInput, now: Micros, policy: WorkflowPolicy, _ actions: inout [WorkflowAction]) {
        switch input {
        case .erpSucceeded(let call, let reply):
            guard let p = pendingCall, p.call == call, p.retryAt == nil else { return }
            pendingCall = nil
            switch call {
            case .validate:
                status = .validated
                emit(.validated, &actions)
                pendingCall = PendingERPCall(call: .creditCheck, attempt: 1)
                actions.append(.callERP(.creditCheck, attempt: 1))
            case .creditCheck:
                emit(.creditChecked(approved: reply.approved), &actions)
                if reply.approved {
                    status = .creditChecked
                    requestAllocation(order.lines.map { AllocationLine(line: $0.line, sku: $0.sku, qty: $0.qty) }, &actions)
                } else {
                    cancel(reason: "credit declined", &actions)
                }
            case .postInvoice:
                let number = reply.reference ?? "INV-" + order.orderID
                invoice = number
                status = .invoiced
                emit(.invoiced(invoice: number, amount: invoicedAmount, currency: order.currency), &actions)
                actions.append(.finished(.invoiced))
            }

        case .erpFailed(let call, let reason):
            guard let p = pendingCall, p.call == call, p.retryAt == nil else { return }
            if p.attempt < policy.erpRetry.maxAttempts {
                let at = now + policy.erpRetry.delay(afterAttempt: p.attempt, key: order.orderID + "/" + call.rawValue)
                pendingCall?.retryAt = at
                actions.append(.scheduleRetry(call, attempt: p.attempt + 1, at: at))
            } else {
                pendingCall = nil
                raiseException(reason: "\(call.rawValue) failed after \(p.attempt) attempts: \(reason)", stage: call.stage, &actions)
            }

        case .retryDue(let call):
            guard let p = pendingCall, p.call == call, let at = p.retryAt, now >= at else { return }
            pendingCall = PendingERPCall(call: call, attempt: p.attempt + 1, retryAt: nil)
            actions.append(.callERP(call, attempt: p.attempt + 1))

        case .allocationDecided(let d):
            guard awaitingAllocation else {
                if !d.placements.isEmpty { actions.append(.releaseReservations(d.placements)) }
                return
            }
            awaitingAllocation = false
            allocations += 1
            for wh in d.warehouses {
                let lines = d.placements.filter { $0.warehouse == wh }.map { AllocationLine(line: $0.line, sku: $0.sku, qty: $0.qty) }
                let id = nextShipmentID
                nextShipmentID += 1
                shipments.append(Shipment(id: id, warehouse: wh, lines: lines, stage: .awaitingRelease))
                actions.append(.requestRelease(shipment: id, warehouse: wh, lines: lines))
            }
            emit(.allocated(warehouse: primaryWarehouse(preferring: d.primaryWarehouse), lines: planEntries()), &actions)
            if !d.backordered.isEmpty {
                emit(.backordered(lines: d.backordered), &actions)
                backordered += d.backordered
            }
            if !reallocationQueue.isEmpty {
                let queued = reallocationQueue
                reallocationQueue = []
                requestAllocation(queued, &actions)
            } else if !backordered.isEmpty, backorderRetryAt == nil {
                if backorderAttempts < policy.maxBackorderAttempts {
                    let at = now + policy.backorderRetryInterval
                    backorderRetryAt = at
                    actions.append(.scheduleBackorderRetry(at: at))
                } else {
                    unfulfilled += backordered
                    backordered = []
                }
            }
            settle(&actions)

        case .backorderRetryDue:
            guard let at = backorderRetryAt, now >= at, !backordered.isEmpty else { return }
            backorderRetryAt = nil
            backorderAttempts += 1
            excludedWarehouses = []
            let lines = backordered
            backordered = []
            requestAllocation(lines, &actions)

        case .releaseAccepted(let id):
            guard let i = shipmentIndex(id, .awaitingRelease) else { return }
            shipments[i].stage = .released
            emit(.released(warehouse: shipments[i].warehouse), &actions)
            settle(&actions)

        case .releaseRejected(let id, _):
            guard let i = shipmentIndex(id, .awaitingRelease) else { return }
            let s = shipments.remove(at: i)
            actions.append(.releaseReservations(s.placements))
            exclude(s.warehouse)
            requestAllocation(s.lines, &actions)

        case .picked(let id, let short):
            guard let i = shipmentIndex(id, .released) else { return }
            let wh = shipments[i].warehouse
            var shortLines: [AllocationLine] = []
            for sh in short where sh.qty > 0 {
                guard let k = shipments[i].lines.firstIndex(where: { $0.line == sh.line && $0.qty > 0 }) else { continue }
                let q = min(sh.qty, shipments[i].lines[k].qty)
                shipments[i].lines[k].qty -= q
                shortLines.append(AllocationLine(line: sh.line, sku: shipments[i].lines[k].sku, qty: q))
            }
            if !shortLines.isEmpty {
                emit(.shortPicked(warehouse: wh, lines: shortLines.map { LineShortage(line: $0.line, qty: $0.qty) }), &actions)
                actions.append(.writeOff(shortLines.map { Placement(line: $0.line, sku: $0.sku, warehouse: wh, qty: $0.qty) }))
                shipments[i].lines.removeAll { $0.qty == 0 }
                exclude(wh)
            }
            if shipments[i].lines.isEmpty {
                shipments.remove(at: i)
            } else {
                shipments[i].stage = .picked
                emit(.picked(warehouse: wh), &actions)
            }
            if !shortLines.isEmpty { requestAllocation(shortLines, &actions) }
            settle(&actions)

        case .packed(let id):
            guard let i = shipmentIndex(id, .picked) else { return }
            shipments[i].stage = .packed
            emit(.packed(warehouse: shipments[i].warehouse), &actions)
            settle(&actions)

        case .shipped(let id, let carrier, let tracking):
            guard let i = shipmentIndex(id, .packed) else { return }
            shipments[i].stage = .shipped
            shipments[i].carrier = carrier
            shipments[i].tracking = tracking
            let s = shipments[i]
            emit(.shipped(warehouse: s.warehouse, carrier: carrier, tracking: tracking,
                          lines: s.lines.map { LineShortage(line: $0.line, qty: $0.qty) }), &actions)
            actions.append(.consumeReservations(s.placements))
            settle(&actions)

        case .delivered(let id):
            guard let i = shipmentIndex(id, .shipped) else { return }
            shipments[i].stage = .delivered
            settle(&actions)

        case .cancel(let reason):
            guard !shipments.contains(where: { $0.stage == .shipped || $0.stage == .delivered }) else { return }
            cancel(reason: reason, &actions)
        }
    }

    // MARK: Helpers

    private func shipmentIndex(_ id: Int, _ stage: ShipmentStage) -> Int? {
        shipments.firstIndex { $0.id == id && $0.stage == stage }
    }

    private mutating func emit(_ event: OrderEvent, _ actions: inout [WorkflowAction]) {
        actions.append(.emit(event, seq: nextEventSeq))
        nextEventSeq += 1
    }

    private mutating func exclude(_ warehouse: String) {
        if !excludedWarehouses.contains(warehouse) { excludedWarehouses.append(warehouse) }
    }

    private mutating func requestAllocation(_ lines: [AllocationLine], _ actions: inout [WorkflowAction]) {
        if awaitingAllocation {
            reallocationQueue += lines
            return
        }
        awaitingAllocation = true
        actions.append(.allocate(AllocationRequest(orderID: order.orderID, region: order.region, lines: lines,
                                                   excluding: excludedWarehouses)))
    }

    /// Reservations still held: every shipment not yet shipped.
    private var heldPlacements: [Placement] {
        shipments.filter { $0.stage != .shipped && $0.stage != .delivered }.flatMap(\.placements)
    }

    private mutating func cancel(reason: String, _ actions: inout [WorkflowAction]) {
        let held = heldPlacements
        if !held.isEmpty { actions.append(.releaseReservations(held)) }
        shipments.removeAll()
        backordered = []
        reallocationQueue = []
        pendingCall = nil
        backorderRetryAt = nil
        status = .cancelled
        emit(.cancelled(reason: reason), &actions)
        actions.append(.finished(.cancelled))
    }

    private mutating func raiseException(reason: String, stage: String, _ actions: inout [WorkflowAction]) {
        let held = heldPlacements
        if !held.isEmpty { actions.append(.releaseReservations(held)) }
        shipments.removeAll { $0.stage != .shipped && $0.stage != .delivered }
        backordered = []
        reallocationQueue = []
        backorderRetryAt = nil
        status = .exception
        emit(.exception(reason: reason, stage: stage), &actions)
        actions.append(.finished(.exception))
    }

    /// Recomputes the status from the shipments and moves on when the order is complete or unservable.
    private mutating func settle(_ actions: inout [WorkflowAction]) {
        let waiting = awaitingAllocation || !backordered.isEmpty || !reallocationQueue.isEmpty
        if shipments.isEmpty {
            if waiting {
                if !awaitingAllocation { status = .backordered }
            } else {
                cancel(reason: "out of stock", &actions)
            }
            return
        }
        let least = shipments.map(\.stage).min { rank($0) < rank($1) }!
        if least == .delivered {
            if waiting {
                status = awaitingAllocation ? status : .backordered
                return
            }
            guard status != .delivered else { return }
            status = .delivered
            emit(.delivered, &actions)
            pendingCall = PendingERPCall(call: .postInvoice, attempt: 1)
            actions.append(.callERP(.postInvoice, attempt: 1))
            return
        }
        switch least {
        case .awaitingRelease: status = .allocated
        case .released: status = .released
        case .picked: status = .picked
        case .packed: status = .packed
        case .shipped, .delivered: status = .shipped
        }
    }

    private func rank(_ s: ShipmentStage) -> Int {
        switch s {
        case .awaitingRelease: return 0
        case .released: return 1
        case .picked: return 2
        case .packed: return 3
        case .shipped: return 4
        case .delivered: return 5
        }
    }

    /// The order's whole plan as `order.allocated` lists it.
    func planEntries() -> [AllocatedLineEntry] {
        var out: [AllocatedLineEntry] = []
        for l in order.lines {
            var any = false
            for s in shipments {
                for sl in s.lines where sl.line == l.line && sl.qty > 0 {
                    out.append(AllocatedLineEntry(line: l.line, sku: l.sku, qtyAllocated: sl.qty, warehouse: s.warehouse))
                    any = true
                }
            }
            if !any { out.append(AllocatedLineEntry(line: l.line, sku: l.sku, qtyAllocated: 0, warehouse: nil)) }
        }
        return out
    }

    /// The warehouse with the most units in the plan; ties go to `preferred`, then to the earliest shipment.
    func primaryWarehouse(preferring preferred: String?) -> String? {
        var order: [String] = []
        var units: [Int] = []
        for s in shipments {
            let q = s.lines.reduce(0) { $0 + $1.qty }
            if let k = order.firstIndex(of: s.warehouse) { units[k] += q } else { order.append(s.warehouse); units.append(q) }
        }
        guard let top = units.max(), top > 0 else { return nil }
        if let p = preferred, let k = order.firstIndex(of: p), units[k] == top { return p }
        return order[units.firstIndex(of: top)!]
    }

    /// Delivered units at their unit prices, rounded to cents.
    var invoicedAmount: Double {
        var cents = 0.0
        for s in shipments where s.stage == .delivered {
            for l in s.lines {
                let price = order.lines.first { $0.line == l.line }?.unitPrice ?? 0
                cents += (price * 100).rounded() * Double(l.qty)
            }
        }
        return cents / 100
    }
}
