import Foundation
import Hummingbird
import NIOCore
import Synchronization
import WaybillModel
import WaybillServices

/// Hands orders from the Orders API to the embedded orchestration service, which owns the (not
/// thread-safe) simulator and takes them on its next tick.
public final class OrderDesk: Sendable {
    public typealias Receipt = (orderID: String, duplicate: Bool)
    private let waiting = Mutex<[(OrderRequest, CheckedContinuation<Receipt, any Error>)]>([])
    private let open = Atomic<Bool>(true)

    public init() {}

    func submit(_ order: OrderRequest) async throws -> Receipt {
        try await withCheckedThrowingContinuation { c in
            guard open.load(ordering: .acquiring) else {
                c.resume(throwing: APIError(.serviceUnavailable, "the orchestration service is stopping"))
                return
            }
            waiting.withLock { $0.append((order, c)) }
        }
    }

    /// Orders taken from the desk and submitted, not yet answered.
    public struct Taken: Sendable {
        fileprivate var answers: [(Receipt, CheckedContinuation<Receipt, any Error>)]
        init() { answers = [] }
        fileprivate init(answers: [(Receipt, CheckedContinuation<Receipt, any Error>)]) { self.answers = answers }
        public var isEmpty: Bool { answers.isEmpty }
        public var count: Int { answers.count }

        /// Answers every request with its receipt (once what the orders started is stored).
        public func answer() {
            for (r, c) in answers { c.resume(returning: r) }
        }

        /// Fails every request: its order is running but was not stored, and a retry with the same key says so.
        public func fail(_ error: any Error) {
            for (_, c) in answers {
                c.resume(throwing: APIError(.serviceUnavailable, "the order was taken but not stored (\(error)); retry with the same Idempotency-Key"))
            }
        }
    }

    /// Takes every waiting order; `submit` submits one and returns its receipt. The caller answers
    /// them with `answer()` once they are durable, so an acknowledged order survives a crash.
    public func take(_ submit: (OrderRequest) -> Receipt) -> Taken {
        let batch = waiting.withLock { w in defer { w.removeAll() }; return w }
        return Taken(answers: batch.map { (submit($0.0), $0.1) })
    }

    /// Refuses new orders and fails those still waiting.
    public func close() {
        open.store(false, ordering: .releasing)
        let batch = waiting.withLock { w in defer { w.removeAll() }; return w }
        for (_, c) in batch { c.resume(throwing: APIError(.serviceUnavailable, "the orchestration service stopped")) }
    }
}

extension WaybillAPI {
    /// `POST /api/v1/orders` with an `Idempotency-Key` header: submits an order to the embedded
    /// orchestration service (running under `waybill demo`). A repeated key returns the first order.
    func postOrder(_ req: Request) async throws -> Response {
        guard let desk = orderDesk else {
            throw APIError(.serviceUnavailable, "the embedded orchestration service runs under `waybill demo`; this server only collects and serves")
        }
        guard let key = req.headers[.init("Idempotency-Key")!], !key.isEmpty, key.utf8.count <= 256 else {
            throw APIError(.badRequest, "Idempotency-Key: header required (1 to 256 bytes); a retry with the same key returns the same order")
        }
        let body = try await req.body.collect(upTo: 1 << 20)
        let json: JSONValue
        do { json = try JSONParser.parse(Array(body.readableBytesView)) } catch { throw APIError(.badRequest, error.description) }
        let order: OrderRequest
        do { order = try Self.orderRequest(json, key: key, now: clock()) } catch { throw APIError(.badRequest, error.description) }
        let receipt = try await desk.submit(order)
        return jsonResponse(.object([
            "order_id": .string(receipt.orderID), "duplicate": .bool(receipt.duplicate),
            "trace": .string("/api/v1/traces/" + URLText.pathSegment(receipt.orderID)),
        ]), status: receipt.duplicate ? .ok : .accepted)
    }

    static func orderRequest(_ j: JSONValue, key: String, now: Micros) throws(FieldError) -> OrderRequest {
        guard case .object(let o) = j else { throw FieldError(field: "body", rule: "must be a JSON object") }
        func string(_ k: String, default d: String? = nil) throws(FieldError) -> String {
            guard let v = o[k] else {
                if let d { return d }
                throw FieldError(field: k, rule: "required")
            }
            guard let s = v.stringValue, !s.isEmpty, s.utf8.count <= 256 else { throw FieldError(field: k, rule: "must be a non-empty string") }
            return s
        }
        let regions = FulfilmentNetwork.standard.regions.map(\.name)
        let region = try string("region")
        guard regions.contains(region) else { throw FieldError(field: "region", rule: "must be one of \(regions.joined(separator: ", "))") }
        var promised = now + 48 * 3_600_000_000
        if let p = o["promised_ship_by"] {
            guard let t = p.stringValue.flatMap(RFC3339.parse) else { throw FieldError(field: "promised_ship_by", rule: "must be an RFC 3339 date-time") }
            promised = t
        }
        guard let lines = o["lines"]?.arrayValue, !lines.isEmpty, lines.count <= 100 else {
            throw FieldError(field: "lines", rule: "must be an array of 1 to 100 lines")
        }
        var out: [OrderLineRequest] = []
        for (i, l) in lines.enumerated() {
            guard let sku = l["sku"]?.stringValue, !sku.isEmpty else { throw FieldError(field: "lines[\(i)].sku", rule: "must be a non-empty string") }
            guard let q = l["qty"]?.doubleValue, q >= 1, q <= 1_000_000, q == q.rounded() else {
                throw FieldError(field: "lines[\(i)].qty", rule: "must be a whole number from 1 to 1000000")
            }
            let price = l["unit_price"]?.doubleValue ?? 10
            out.append(OrderLineRequest(line: i + 1, sku: sku, qty: Int(q), unitPrice: price))
        }
        let id = try string("order_id", default: "API-" + String(UUID().uuidString.prefix(8)))
        return OrderRequest(orderID: id, idempotencyKey: key, channel: try string("channel", default: "api"),
                            customer: try string("customer", default: "API"), region: region, promisedShipBy: promised,
                            currency: try string("currency", default: "USD"), lines: out)
    }
}
