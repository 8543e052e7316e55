import Foundation
import Testing
import WaybillModel
@testable import WaybillServices
import WaybillTestSupport

/// Drives a workflow with a manual clock, as the simulator's shell would.
struct Harness {
    var state: OrderWorkflow
    var now: Micros
    var policy = WorkflowPolicy.standard
    var log: [WorkflowAction] = []

    init(_ order: OrderRequest = sampleOrder(), now: Micros = t0) {
        let (w, a) = OrderWorkflow.start(order, now: now)
        state = w
        self.now = now
        log = a
    }

    @discardableResult
    mutating func send(_ input: WorkflowInput, after: Micros = second) -> [WorkflowAction] {
        now += after
        let (w, a) = OrderWorkflow.reduce(state, input, now: now, policy: policy)
        state = w
        log += a
        return a
    }

    /// Up to the allocation request.
    mutating func throughCredit() -> AllocationRequest {
        send(.erpSucceeded(.validate, ERPReply()))
        return send(.erpSucceeded(.creditCheck, ERPReply(approved: true))).allocationRequest!
    }
}

func decision(_ placements: [Placement], backordered: [AllocationLine] = []) -> AllocationDecision {
    AllocationDecision(placements: placements, backordered: backordered, primaryWarehouse: placements.first?.warehouse)
}

@Suite struct OrderWorkflowTests {
    @Test func happyPathWalksEveryStageAndEmitsTheCanonicalEvents() {
        var h = Harness()
        #expect(h.state.status == .accepted)
        #expect(h.log.emittedTypes == ["order.accepted"])
        #expect(h.log.contains(.callERP(.validate, attempt: 1)))

        #expect(h.send(.erpSucceeded(.validate, ERPReply())).contains(.callERP(.creditCheck, attempt: 1)))
        #expect(h.state.status == .validated)
        let request = h.send(.erpSucceeded(.creditCheck, ERPReply(approved: true))).allocationRequest
        #expect(h.state.status == .creditChecked)
        #expect(request?.lines == [AllocationLine(line: 1, sku: "SKU-A", qty: 2), AllocationLine(line: 2, sku: "SKU-B", qty: 1)])

        let placements = [Placement(line: 1, sku: "SKU-A", warehouse: "DC-EAST", qty: 2), Placement(line: 2, sku: "SKU-B", warehouse: "DC-EAST", qty: 1)]
        let a = h.send(.allocationDecided(decision(placements)))
        #expect(h.state.status == .allocated)
        #expect(a.releaseRequests.map(\.1) == ["DC-EAST"])
        let id = a.releaseRequests[0].0
        h.send(.releaseAccepted(shipment: id))
        #expect(h.state.status == .released)
        h.send(.picked(shipment: id, short: []))
        #expect(h.state.status == .picked)
        h.send(.packed(shipment: id))
        #expect(h.state.status == .packed)
        let shipped = h.send(.shipped(shipment: id, carrier: "UPS", tracking: "1ZTEST"))
        #expect(h.state.status == .shipped)
        #expect(shipped.contains(.consumeReservations(placements)))
        let delivered = h.send(.delivered(shipment: id), after: 2 * 86_400 * second)
        #expect(h.state.status == .delivered)
        #expect(delivered.contains(.callERP(.postInvoice, attempt: 1)))
        let invoiced = h.send(.erpSucceeded(.postInvoice, ERPReply(reference: "INV-9")))
        #expect(h.state.status == .invoiced)
        #expect(invoiced.contains(.finished(.invoiced)))
        #expect(invoiced.emitted == [.invoiced(invoice: "INV-9", amount: 29.97, currency: "USD")])
        #expect(h.log.emittedTypes == ["order.accepted", "order.validated", "order.credit_checked", "order.allocated", "order.released",
                                       "order.picked", "order.packed", "order.shipped", "order.delivered", "order.invoiced"])
        // Event sequence numbers are 1, 2, 3, ... so ids are unique per order.
        let seqs = h.log.compactMap { if case .emit(_, let s) = $0 { return s }; return nil }
        #expect(seqs == Array(1...10))
        // Final: nothing moves any more.
        #expect(h.send(.cancel(reason: "late")).isEmpty)
    }

    @Test func declinedCreditCancelsTheOrder() {
        var h = Harness()
        h.send(.erpSucceeded(.validate, ERPReply()))
        let a = h.send(.erpSucceeded(.creditCheck, ERPReply(approved: false)))
        #expect(a.emitted == [.creditChecked(approved: false), .cancelled(reason: "credit declined")])
        #expect(h.state.status == .cancelled)
        #expect(a.contains(.finished(.cancelled)))
    }

    @Test func erpFailuresRetryWithExponentialBackoffThenRaiseAnException() {
        var h = Harness()
        h.policy.erpRetry = RetryPolicy(maxAttempts: 4, baseDelay: second, multiplier: 2, maxDelay: 60 * second, jitter: 0)
        var delays: [Micros] = []
        for attempt in 1...3 {
            let a = h.send(.erpFailed(.validate, reason: "HTTP 503"))
            guard case .scheduleRetry(.validate, let next, let at)? = a.first else { Issue.record("no retry after attempt \(attempt)"); return }
            #expect(next == attempt + 1)
            delays.append(at - h.now)
            // The timer firing early, or twice, does nothing.
            #expect(h.send(.retryDue(.validate), after: 0).isEmpty)
            h.now = at
            #expect(h.send(.retryDue(.validate), after: 0) == [.callERP(.validate, attempt: attempt + 1)])
            #expect(h.send(.retryDue(.validate), after: 0).isEmpty)
        }
        #expect(delays == [second, 2 * second, 4 * second])
        let last = h.send(.erpFailed(.validate, reason: "HTTP 503"))
        #expect(h.state.status == .exception)
        #expect(last.emitted == [.exception(reason: "validate failed after 4 attempts: HTTP 503", stage: "validation")])
    }

    @Test func retryTimerBeforeItsTimeIsIgnored() {
        var h = Harness()
        let a = h.send(.erpFailed(.validate, reason: "timeout"))
        guard case .scheduleRetry(_, _, let at)? = a.first else { Issue.record("no retry"); return }
        #expect(h.send(.retryDue(.validate), after: 0).isEmpty)
        h.now = at - 1
        #expect(h.send(.retryDue(.validate), after: 1) == [.callERP(.validate, attempt: 2)])
        // A late success of the first attempt is stale once the retry is in flight only if the call differs; same call succeeds.
        #expect(h.send(.erpSucceeded(.validate, ERPReply())).emittedTypes == ["order.validated"])
    }

    @Test func backoffIsCappedAndJitterIsDeterministic() {
        let p = RetryPolicy(maxAttempts: 10, baseDelay: second, multiplier: 2, maxDelay: 10 * second, jitter: 0.5)
        #expect(p.delay(afterAttempt: 8, key: "k") <= 10 * second)
        #expect(p.delay(afterAttempt: 8, key: "k") >= 5 * second)
        #expect(p.delay(afterAttempt: 3, key: "k") == p.delay(afterAttempt: 3, key: "k"))
        #expect((1...6).map { p.delay(afterAttempt: 2, key: "order-\($0)") }.count { $0 != p.delay(afterAttempt: 2, key: "order-1") } > 0)
    }

    @Test func rejectedReleaseReleasesReservationsAndReallocatesElsewhere() {
        var h = Harness()
        _ = h.throughCredit()
        let east = [Placement(line: 1, sku: "SKU-A", warehouse: "DC-EAST", qty: 2), Placement(line: 2, sku: "SKU-B", warehouse: "DC-EAST", qty: 1)]
        let id = h.send(.allocationDecided(decision(east))).releaseRequests[0].0
        let a = h.send(.releaseRejected(shipment: id, reason: "warehouse unavailable"))
        #expect(a.contains(.releaseReservations(east)))
        let again = a.allocationRequest
        #expect(again?.excluding == ["DC-EAST"])
        #expect(again?.lines.map(\.qty) == [2, 1])
        #expect(h.state.shipments.isEmpty)
        let west = east.map { Placement(line: $0.line, sku: $0.sku, warehouse: "DC-WEST", qty: $0.qty) }
        let b = h.send(.allocationDecided(decision(west)))
        #expect(b.emittedTypes == ["order.allocated"], "a re-allocation emits another order.allocated")
        #expect(b.releaseRequests.map(\.1) == ["DC-WEST"])
        #expect(h.state.status == .allocated)
        #expect(h.state.allocations == 2)
    }

    @Test func shortPickWritesOffAndReallocatesTheShortUnits() {
        var h = Harness()
        _ = h.throughCredit()
        let east = [Placement(line: 1, sku: "SKU-A", warehouse: "DC-EAST", qty: 2), Placement(line: 2, sku: "SKU-B", warehouse: "DC-EAST", qty: 1)]
        let id = h.send(.allocationDecided(decision(east))).releaseRequests[0].0
        h.send(.releaseAccepted(shipment: id))
        let a = h.send(.picked(shipment: id, short: [LineShortage(line: 1, qty: 1)]))
        #expect(a.emitted.first == .shortPicked(warehouse: "DC-EAST", lines: [LineShortage(line: 1, qty: 1)]))
        #expect(a.emittedTypes == ["order.short_picked", "order.picked"])
        #expect(a.contains(.writeOff([Placement(line: 1, sku: "SKU-A", warehouse: "DC-EAST", qty: 1)])))
        #expect(a.allocationRequest?.lines == [AllocationLine(line: 1, sku: "SKU-A", qty: 1)])
        #expect(a.allocationRequest?.excluding == ["DC-EAST"])
        // The picked remainder stays on its shipment.
        #expect(h.state.shipments.first?.lines == [AllocationLine(line: 1, sku: "SKU-A", qty: 1), AllocationLine(line: 2, sku: "SKU-B", qty: 1)])
        let b = h.send(.allocationDecided(decision([Placement(line: 1, sku: "SKU-A", warehouse: "DC-WEST", qty: 1)])))
        guard case .allocated(let primary, let lines)? = b.emitted.first else { Issue.record("no allocation event"); return }
        #expect(primary == "DC-EAST", "the plan still holds most units at DC-EAST")
        #expect(lines.map(\.qtyAllocated) == [1, 1, 1])
        #expect(lines.map(\.warehouse) == ["DC-EAST", "DC-WEST", "DC-EAST"])
        #expect(h.state.status == .allocated, "the new shipment still waits for release")
    }

    @Test func fullyShortPickedShipmentDisappears() {
        var h = Harness(sampleOrder(lines: [("SKU-A", 2)]))
        _ = h.throughCredit()
        let id = h.send(.allocationDecided(decision([Placement(line: 1, sku: "SKU-A", warehouse: "DC-EAST", qty: 2)]))).releaseRequests[0].0
        h.send(.releaseAccepted(shipment: id))
        let a = h.send(.picked(shipment: id, short: [LineShortage(line: 1, qty: 5)]))
        #expect(a.emittedTypes == ["order.short_picked"])
        #expect(a.contains(.writeOff([Placement(line: 1, sku: "SKU-A", warehouse: "DC-EAST", qty: 2)])), "shortage capped at the shipment quantity")
        #expect(h.state.shipments.isEmpty)
        #expect(h.state.awaitingAllocation)
    }

    @Test func partialAllocationBackordersTheRemainderAndRetriesIt() {
        var h = Harness()
        _ = h.throughCredit()
        let a = h.send(.allocationDecided(decision([Placement(line: 1, sku: "SKU-A", warehouse: "DC-EAST", qty: 2)],
                                                    backordered: [AllocationLine(line: 2, sku: "SKU-B", qty: 1)])))
        #expect(a.emittedTypes == ["order.allocated", "order.backordered"])
        guard case .allocated(_, let lines)? = a.emitted.first else { Issue.record("no allocation"); return }
        #expect(lines == [AllocatedLineEntry(line: 1, sku: "SKU-A", qtyAllocated: 2, warehouse: "DC-EAST"),
                          AllocatedLineEntry(line: 2, sku: "SKU-B", qtyAllocated: 0, warehouse: nil)])
        guard case .scheduleBackorderRetry(let at)? = a.last else { Issue.record("no backorder retry"); return }
        #expect(at == h.now + h.policy.backorderRetryInterval)
        h.now = at
        let b = h.send(.backorderRetryDue, after: 0)
        #expect(b.allocationRequest?.lines == [AllocationLine(line: 2, sku: "SKU-B", qty: 1)])
        #expect(h.state.backorderAttempts == 1)
    }

    @Test func nothingAllocatableIsBackorderedThenCancelledAfterTheLastAttempt() {
        var h = Harness()
        h.policy.maxBackorderAttempts = 1
        _ = h.throughCredit()
        let nothing = AllocationDecision(placements: [], backordered: [AllocationLine(line: 1, sku: "SKU-A", qty: 2), AllocationLine(line: 2, sku: "SKU-B", qty: 1)], primaryWarehouse: nil)
        let a = h.send(.allocationDecided(nothing))
        #expect(a.emittedTypes == ["order.allocated", "order.backordered"])
        #expect(h.state.status == .backordered)
        h.send(.backorderRetryDue, after: h.policy.backorderRetryInterval)
        let b = h.send(.allocationDecided(nothing))
        #expect(b.emittedTypes == ["order.allocated", "order.backordered", "order.cancelled"])
        #expect(b.emitted.last == .cancelled(reason: "out of stock"))
        #expect(h.state.status == .cancelled)
        #expect(h.state.unfulfilled.count == 2)
    }

    @Test func cancellationReleasesHeldReservationsAndLateAllocationsAreHandedBack() {
        var h = Harness()
        _ = h.throughCredit()
        let east = [Placement(line: 1, sku: "SKU-A", warehouse: "DC-EAST", qty: 2), Placement(line: 2, sku: "SKU-B", warehouse: "DC-EAST", qty: 1)]
        let id = h.send(.allocationDecided(decision(east))).releaseRequests[0].0
        h.send(.releaseAccepted(shipment: id))
        let a = h.send(.cancel(reason: "customer request"))
        #expect(a.contains(.releaseReservations(east)))
        #expect(a.emitted == [.cancelled(reason: "customer request")])
        #expect(h.state.status == .cancelled)
        // An allocation that lands after the end gives its units straight back.
        let late = h.send(.allocationDecided(decision(east)))
        #expect(late == [.releaseReservations(east)])
    }

    @Test func cancellationAfterShipmentIsRefused() {
        var h = Harness(sampleOrder(lines: [("SKU-A", 1)]))
        _ = h.throughCredit()
        let id = h.send(.allocationDecided(decision([Placement(line: 1, sku: "SKU-A", warehouse: "DC-EAST", qty: 1)]))).releaseRequests[0].0
        h.send(.releaseAccepted(shipment: id))
        h.send(.picked(shipment: id, short: []))
        h.send(.packed(shipment: id))
        h.send(.shipped(shipment: id, carrier: "UPS", tracking: "1Z1"))
        #expect(h.send(.cancel(reason: "too late")).isEmpty)
        #expect(h.state.status == .shipped)
    }

    @Test func splitOrderIsDeliveredOnlyWhenEveryShipmentIs() {
        var h = Harness()
        _ = h.throughCredit()
        let a = h.send(.allocationDecided(decision([Placement(line: 1, sku: "SKU-A", warehouse: "DC-EAST", qty: 2),
                                                    Placement(line: 2, sku: "SKU-B", warehouse: "DC-WEST", qty: 1)])))
        let ids = a.releaseRequests.map(\.0)
        #expect(ids.count == 2)
        for id in ids {
            h.send(.releaseAccepted(shipment: id))
            h.send(.picked(shipment: id, short: []))
            h.send(.packed(shipment: id))
            h.send(.shipped(shipment: id, carrier: "UPS", tracking: "1Z\(id)"))
        }
        #expect(h.send(.delivered(shipment: ids[0])).isEmpty == true || h.state.status == .shipped)
        #expect(h.state.status == .shipped)
        let b = h.send(.delivered(shipment: ids[1]))
        #expect(b.emittedTypes == ["order.delivered"])
        #expect(h.log.emittedTypes.filter { $0 == "order.shipped" }.count == 2)
    }

    @Test func cancellationWhileTheERPIsBusyEndsTheOrderAndLateRepliesAreIgnored() {
        var h = Harness()
        let a = h.send(.cancel(reason: "customer request"))
        #expect(a.emitted == [.cancelled(reason: "customer request")])
        #expect(!a.contains { if case .releaseReservations = $0 { return true }; return false }, "nothing was reserved yet")
        #expect(h.send(.erpSucceeded(.validate, ERPReply())).isEmpty)
        #expect(h.state.status == .cancelled)
    }

    @Test func invoicingFailureAfterDeliveryIsAnExceptionAtTheInvoicingStage() {
        var h = Harness(sampleOrder(lines: [("SKU-A", 1)]))
        h.policy.erpRetry = RetryPolicy(maxAttempts: 1)
        _ = h.throughCredit()
        let id = h.send(.allocationDecided(decision([Placement(line: 1, sku: "SKU-A", warehouse: "DC-EAST", qty: 1)]))).releaseRequests[0].0
        h.send(.releaseAccepted(shipment: id))
        h.send(.picked(shipment: id, short: []))
        h.send(.packed(shipment: id))
        h.send(.shipped(shipment: id, carrier: "UPS", tracking: "1Z1"))
        h.send(.delivered(shipment: id))
        let a = h.send(.erpFailed(.postInvoice, reason: "HTTP 503"))
        #expect(a.emitted == [.exception(reason: "post_invoice failed after 1 attempts: HTTP 503", stage: "invoicing")])
        #expect(!a.contains { if case .releaseReservations = $0 { return true }; return false }, "shipped units are no longer reserved")
        #expect(h.state.status == .exception)
    }

    @Test func warehouseStepsOutOfOrderAreIgnored() {
        var h = Harness(sampleOrder(lines: [("SKU-A", 1)]))
        _ = h.throughCredit()
        let id = h.send(.allocationDecided(decision([Placement(line: 1, sku: "SKU-A", warehouse: "DC-EAST", qty: 1)]))).releaseRequests[0].0
        #expect(h.send(.picked(shipment: id, short: [])).isEmpty, "not released yet")
        #expect(h.send(.packed(shipment: id)).isEmpty)
        #expect(h.send(.shipped(shipment: id, carrier: "UPS", tracking: "1Z1")).isEmpty)
        #expect(h.send(.delivered(shipment: id)).isEmpty)
        h.send(.releaseAccepted(shipment: id))
        #expect(h.send(.releaseAccepted(shipment: id)).isEmpty, "a duplicate acknowledgement")
        #expect(h.state.status == .released)
    }

    @Test func staleAndDuplicateInputsChangeNothing() {
        var h = Harness()
        let before = h.state
        #expect(h.send(.erpSucceeded(.creditCheck, ERPReply())).isEmpty, "credit answer while validating")
        #expect(h.send(.releaseAccepted(shipment: 42)).isEmpty)
        #expect(h.send(.backorderRetryDue).isEmpty)
        #expect(h.state == before)
    }

    @Test func workflowStateSurvivesACodableRoundTripMidFlight() throws {
        var h = Harness()
        _ = h.throughCredit()
        let id = h.send(.allocationDecided(decision([Placement(line: 1, sku: "SKU-A", warehouse: "DC-EAST", qty: 2),
                                                      Placement(line: 2, sku: "SKU-B", warehouse: "DC-EAST", qty: 1)]))).releaseRequests[0].0
        let data = try JSONEncoder().encode(h.state)
        let restored = try JSONDecoder().decode(OrderWorkflow.self, from: data)
        #expect(restored == h.state)
        let (w1, a1) = OrderWorkflow.reduce(h.state, .releaseAccepted(shipment: id), now: h.now + second)
        let (w2, a2) = OrderWorkflow.reduce(restored, .releaseAccepted(shipment: id), now: h.now + second)
        #expect(w1 == w2)
        #expect(a1 == a2)
        // Actions and inputs are Codable too, for an outbox or a journal.
        let actions = try JSONDecoder().decode([WorkflowAction].self, from: JSONEncoder().encode(h.log))
        #expect(actions == h.log)
    }

    @Test func intakeDeduplicatesByIdempotencyKeyWithinRetention() {
        var intake = OrderIntake(retention: hour)
        guard case .accepted(let w, let actions) = intake.submit(sampleOrder("SO-1"), now: t0) else { Issue.record("not accepted"); return }
        #expect(w.orderID == "SO-1")
        #expect(actions.emittedTypes == ["order.accepted"])
        var again = sampleOrder("SO-1-retry")
        again.idempotencyKey = "web:SO-1"
        #expect(intake.submit(again, now: t0 + minute) == .duplicate(orderID: "SO-1"))
        if case .accepted = intake.submit(sampleOrder("SO-2"), now: t0 + minute) {} else { Issue.record("other key refused") }
        // After the retention the key is forgotten.
        if case .accepted = intake.submit(again, now: t0 + 2 * hour) {} else { Issue.record("expired key still refused") }
        #expect(intake.count == 1)
    }
}

@Suite struct CircuitBreakerTests {
    @Test func opensAfterConsecutiveFailuresAndFailsFast() {
        var b = CircuitBreaker(failureThreshold: 3, openDuration: 30 * second)
        for i in 0..<2 {
            do { let ok = b.permit(now: t0); #expect(ok) }
            b.recordFailure(now: t0 + Micros(i))
        }
        #expect(b.state == .closed(consecutiveFailures: 2))
        b.recordSuccess(now: t0)
        #expect(b.state == .closed(consecutiveFailures: 0), "a success resets the count")
        for _ in 0..<3 { b.recordFailure(now: t0) }
        #expect(b.state == .open(until: t0 + 30 * second))
        do { let ok = b.permit(now: t0 + 29 * second); #expect(!ok) }
    }

    @Test func halfOpenAllowsOneTrialThenClosesOnSuccess() {
        var b = CircuitBreaker(failureThreshold: 1, openDuration: 10 * second, halfOpenTrials: 1)
        b.recordFailure(now: t0)
        do { let ok = b.permit(now: t0 + 10 * second); #expect(ok) }
        #expect(b.state == .halfOpen(trialsInFlight: 1))
        do { let ok = b.permit(now: t0 + 10 * second); #expect(!ok, "only one trial at a time") }
        b.recordSuccess(now: t0 + 11 * second)
        #expect(b.state == .closed(consecutiveFailures: 0))
        do { let ok = b.permit(now: t0 + 11 * second); #expect(ok) }
    }

    @Test func halfOpenFailureReopens() {
        var b = CircuitBreaker(failureThreshold: 1, openDuration: 10 * second)
        b.recordFailure(now: t0)
        do { let ok = b.permit(now: t0 + 10 * second); #expect(ok) }
        b.recordFailure(now: t0 + 11 * second)
        #expect(b.state == .open(until: t0 + 21 * second))
        #expect(b.isOpen)
    }
}
