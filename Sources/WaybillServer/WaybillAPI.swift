import Foundation
import Hummingbird
import NIOCore
import WaybillAlerts
import WaybillCollectors
import WaybillModel
import WaybillStore

/// The routes of interfaces.md: collectors, query API, health, metrics, OpenAPI.
struct WaybillAPI: Sendable {
    let store: any WaybillStore
    let config: ServerConfig
    let metrics: ServerMetrics
    let clock: @Sendable () -> Micros
    /// Set when the embedded orchestration service runs (`waybill demo`).
    let orderDesk: OrderDesk?
    /// Set when alert rules are loaded (`serve --config`).
    let alerting: Alerting?

    func register(_ router: Router<BasicRequestContext>) {
        router.post("/v1/events") { req, ctx in try await postEvents(req, ctx) }
        router.post("/v1/traces") { req, _ in try await postTraces(req) }
        router.get("/api/v1/traces/{key}") { req, ctx in try getTrace(req, ctx) }
        router.get("/api/v1/traces") { req, _ in try searchTraces(req) }
        router.get("/api/v1/kpis") { req, _ in try getKPIs(req) }
        router.get("/api/v1/services") { req, _ in try getServices(req) }
        router.post("/api/v1/orders") { req, _ in try await postOrder(req) }
        router.get("/") { req, _ in try indexPage(req) }
        router.get("/traces/{key}") { req, ctx in try tracePage(req, ctx) }
        router.get("/api/v1/alerts") { req, _ in try await getAlerts(req) }
        router.get("/api/v1/rules") { req, _ in try await getRules(req) }
        router.get("/alerts") { req, _ in try await alertsPage(req) }
        router.get("/healthz") { _, _ in try health() }
        router.get("/metrics") { _, _ in try await metricsText() }
        router.get("/openapi.json") { _, _ in jsonResponse(OpenAPIDocument.document) }
    }

    func postEvents(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let buffer = try await req.body.collect(upTo: config.maxBodyBytes)
        let decoded: DecodedEvents
        do {
            decoded = try EventDecoder.decode(body: Array(buffer.readableBytesView), contentType: req.headers[.contentType],
                                              contentEncoding: req.headers[.contentEncoding], limit: config.maxBodyBytes)
        } catch {
            metrics.rejectedBodies.add(1)
            throw APIError(HTTPResponse.Status(code: error.httpStatus), error.description)
        }
        let result: AppendResult
        do {
            result = try await store.append(decoded.events)
        } catch StoreError.overloaded(let retry) {
            metrics.throttled.add(1)
            throw APIError(.tooManyRequests, "ingest queue is full; retry after \(retry)s", headers: [.retryAfter: String(retry)])
        } catch StoreError.unavailable(let m) {
            throw APIError(.serviceUnavailable, m, headers: [.retryAfter: "5"])
        }
        metrics.accepted.add(result.accepted)
        metrics.duplicates.add(result.duplicates)
        metrics.rejected.add(decoded.rejected.count)
        return jsonResponse(.object([
            "accepted": .number(Double(result.accepted)),
            "duplicates": .number(Double(result.duplicates)),
            "rejected": .array(decoded.rejected.map { .object(["index": .number(Double($0.index)), "error": .string($0.error)]) }),
        ]))
    }

    func getTrace(_ req: Request, _ ctx: BasicRequestContext) throws -> Response {
        guard let raw = ctx.parameters.get("key") else { throw APIError(.badRequest, "key: missing") }
        let key = raw.removingPercentEncoding ?? raw
        guard let trace = try store.trace(key: key) else {
            throw APIError(.notFound, "no order or linked key '\(key)' is known")
        }
        return jsonResponse(trace.documentJSON)
    }

    func searchTraces(_ req: Request) throws -> Response {
        var params: [String: String] = [:]
        for (k, v) in req.uri.queryParameters { params[String(k)] = String(v) }
        let query: OrderQuery
        do {
            query = try OrderQuery(parameters: params, now: clock())
        } catch {
            throw APIError(.badRequest, error.description)
        }
        do {
            return jsonResponse(try store.searchOrders(query).documentJSON)
        } catch let e as QueryError {
            throw APIError(.badRequest, e.description)
        }
    }

    func health() throws -> Response {
        jsonResponse(.object(["status": "ok"]))
    }

    func metricsText() async throws -> Response {
        var text = metrics.prometheusText(stats: try store.stats())
        if let alerting { text += ServerMetrics.alertText(alerts: await alerting.engine.alerts(), rules: await alerting.engine.rules()) }
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}
