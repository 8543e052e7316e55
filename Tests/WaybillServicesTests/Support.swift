import WaybillModel
@testable import WaybillServices
import WaybillTestSupport

/// Records everything emitted, in order.
final class RecordingSink: TelemetrySink {
    var events: [CloudEvent] = []
    var spans: [Span] = []
    func emit(_ event: CloudEvent) { events.append(event) }
    func emit(_ span: Span) { spans.append(span) }
    var bytes: [UInt8] { events.flatMap { $0.raw + [0x0A] } }
}

/// Takes event text like the NDJSON sink does, without a file.
final class TextRecordingSink: EventTextSink {
    var text: [UInt8] = []
    var count = 0
    let wantsSpans: Bool
    init(wantsSpans: Bool = false) { self.wantsSpans = wantsSpans }
    func emitEventText(_ t: UnsafeBufferPointer<UInt8>) {
        text.append(contentsOf: t)
        text.append(0x0A)
        count += 1
    }
    func emit(_ event: CloudEvent) {
        text.append(contentsOf: event.raw)
        text.append(0x0A)
        count += 1
    }
    func emit(_ span: Span) {}
}

let t0 = RFC3339.parse("2026-11-16T00:00:00Z")!

/// A three-warehouse network where distances make the order of preference obvious for region "east".
func smallNetwork() -> FulfilmentNetwork {
    FulfilmentNetwork(
        warehouses: [
            Warehouse(id: "DC-EAST", latitude: 40, longitude: -75, handlingCostPerUnit: 1, dailyCapacityUnits: 1000,
                      pickMinutes: 30, packMinutes: 10, pickupsUTC: [16 * 3600]),
            Warehouse(id: "DC-CENTRAL", latitude: 39, longitude: -95, handlingCostPerUnit: 1, dailyCapacityUnits: 1000,
                      pickMinutes: 30, packMinutes: 10, pickupsUTC: [16 * 3600]),
            Warehouse(id: "DC-WEST", latitude: 34, longitude: -118, handlingCostPerUnit: 1, dailyCapacityUnits: 1000,
                      pickMinutes: 30, packMinutes: 10, pickupsUTC: [16 * 3600]),
        ],
        regions: [Region(name: "east", latitude: 41, longitude: -74), Region(name: "west", latitude: 37, longitude: -121)])
}

func sampleOrder(_ id: String = "SO-1", lines: [(String, Int)] = [("SKU-A", 2), ("SKU-B", 1)]) -> OrderRequest {
    OrderRequest(orderID: id, idempotencyKey: "web:" + id, channel: "web", customer: "C1", region: "east",
                 promisedShipBy: t0 + 24 * hour,
                 lines: lines.enumerated().map { OrderLineRequest(line: $0.offset + 1, sku: $0.element.0, qty: $0.element.1, unitPrice: 9.99) })
}

extension Array where Element == WorkflowAction {
    var emittedTypes: [String] {
        compactMap { if case .emit(let e, _) = $0 { return e.type }; return nil }
    }
    var emitted: [OrderEvent] {
        compactMap { if case .emit(let e, _) = $0 { return e }; return nil }
    }
    var allocationRequest: AllocationRequest? {
        for a in self { if case .allocate(let r) = a { return r } }
        return nil
    }
    var releaseRequests: [(Int, String)] {
        compactMap { if case .requestRelease(let id, let w, _) = $0 { return (id, w) }; return nil }
    }
}
