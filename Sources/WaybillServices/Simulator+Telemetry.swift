import WaybillModel

/// Rendering and delivery of what the simulated services emit, with the delivery faults applied.
extension Simulator {
    func emitOrderEvent(_ event: OrderEvent, seq: Int, orderID: String, ctx: TraceContext) {
        let source = event.source(in: network)
        let type = event.type
        writer.event(idBase: orderID, idSeq: seq, source: source, type: type, time: state.now, subject: orderID, trace: ctx,
                     hasData: event.hasData) { $0.orderEventData(event) }
        dispatch {
            CloudEvent(id: orderID + "-" + String(seq), source: source, type: type, time: state.now, subject: orderID,
                       traceID: ctx.traceIDHex, data: event.data, raw: writer.bytes)
        }
    }

    func emitShipmentEvent(_ event: ShipmentEvent, seq: Int, ctx: TraceContext) {
        let subject = event.subject
        writer.event(idBase: event.tracking, idSeq: seq, source: "carrier", type: event.type, time: state.now, subject: subject,
                     trace: ctx, hasData: true) { $0.shipmentEventData(event) }
        dispatch {
            CloudEvent(id: event.tracking + "-" + String(seq), source: "carrier", type: event.type, time: state.now, subject: subject,
                       traceID: ctx.traceIDHex, data: event.data, raw: writer.bytes)
        }
    }

    /// Delivers the event in `writer` now, or later (reorder, late arrival), and maybe twice (duplicate).
    private func dispatch(_ makeEvent: () -> CloudEvent) {
        var at = state.now
        if faults.lateArrivalRate > 0, state.faultRandom.chance(faults.lateArrivalRate) {
            at += 1_800_000_000 + Micros(state.faultRandom.below(11 * 3600 + 1800)) * 1_000_000
        } else if faults.reorderRate > 0, state.faultRandom.chance(faults.reorderRate) {
            at += 1_000_000 + Micros(state.faultRandom.below(300_000)) * 1000
        }
        let duplicate = faults.duplicateRate > 0 && state.faultRandom.chance(faults.duplicateRate)
        if at > state.now { state.stats.delayedEvents += 1 }
        if duplicate { state.stats.duplicateEvents += 1 }
        if let text = textSink {
            if at == state.now {
                writer.withBytes { text.emitEventText($0) }
                state.stats.eventsEmitted += 1
            } else {
                push(at, .deliverText(writer.bytes))
            }
            if duplicate { push(at + Micros(state.faultRandom.below(60_000)) * 1000, .deliverText(writer.bytes)) }
        } else {
            let e = makeEvent()
            if at == state.now {
                sink.emit(e)
                state.stats.eventsEmitted += 1
            } else {
                push(at, .deliverEvent(DelayedEvent(event: e)))
            }
            if duplicate { push(at + Micros(state.faultRandom.below(60_000)) * 1000, .deliverEvent(DelayedEvent(event: e))) }
        }
    }

    func emitStepSpan(_ step: StepSpan, ctx: TraceContext, orderID: String, rootSpan: UInt64) {
        emitSpan(ctx, parent: rootSpan, service: step.service, name: step.name, start: step.start, end: state.now,
                 error: step.error, orderID: orderID, extra: [:])
        for (k, w) in step.timedOut.enumerated() {
            let wh = network.warehouses[w]
            let child = ctx.child(SplitMix64.hash(ctx.spanID, UInt64(k + 1)) | 1)
            emitSpan(child, parent: ctx.spanID, service: wh.system, name: "inventory.sync", start: step.start,
                     end: min(state.now, step.start + 15_000_000), error: "timeout", orderID: orderID, extra: ["warehouse": .string(wh.id)])
        }
    }

    func emitSpan(_ ctx: TraceContext, parent: UInt64?, service: String, name: String, start: Micros, end: Micros, error: String?,
                  orderID: String?, extra: [String: JSONValue])
    {
        var attributes = extra
        if let orderID { attributes["order.id"] = .string(orderID) }
        let span = Span(traceID: ctx.traceIDHex, spanID: ctx.spanIDHex, parentSpanID: parent.map(Hex.of), service: service, name: name,
                        start: start, end: max(start, end), status: error == nil ? .ok : .error, statusMessage: error,
                        attributes: attributes, resourceAttributes: ["service.name": .string(service)])
        sink.emit(span)
        state.stats.spansEmitted += 1
    }
}
