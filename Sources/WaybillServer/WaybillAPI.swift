import Foundation
import Hummingbird
import NIOCore
import WaybillAlerts
import WaybillCollectors
import WaybillModel
import WaybillQuery
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
    /// Every read of the query API and the pages, on reader threads of its own.
    let queries: LocalQueries
    /// Set when the server was started with rules files (`serve --config`): `POST /api/v1/rules/reload`.
    var rulesReloader: RulesReloader? = nil

    typealias Handler = @Sendable (Request, BasicRequestContext) async throws -> Response

    /// Every route, defined once: registered on the router, and read to answer `405` with `Allow` for
    /// a known path asked with another method.
    var routes: [(method: HTTPRequest.Method, path: String, handler: Handler)] {
        [
            (.post, "/v1/events", { req, ctx in try await postEvents(req, ctx) }),
            (.post, "/v1/traces", { req, _ in try await postTraces(req) }),
            (.get, "/api/v1/traces/{key}", { req, ctx in try await getTrace(req, ctx) }),
            (.get, "/api/v1/traces", { req, _ in try await searchTraces(req) }),
            (.get, "/api/v1/kpis", { req, _ in try await getKPIs(req) }),
            (.get, "/api/v1/services", { req, _ in try await getServices(req) }),
            (.get, "/api/v1/export/ocel", { req, _ in try await exportOCEL(req) }),
            (.post, "/api/v1/orders", { req, _ in try await postOrder(req) }),
            (.get, "/", { req, _ in try await indexPage(req) }),
            (.get, "/search", { req, _ in try await searchPage(req) }),
            (.get, "/kpis", { req, _ in try await kpisPage(req) }),
            (.get, "/api/v1/stuck", { req, _ in try await jsonDocument(queries.stuck(StuckRequest(parameters: req.parameterDictionary))) }),
            (.get, "/api/v1/deliveries", { _, _ in try await jsonDocument(queries.deliveries()) }),
            (.get, "/traces/{key}", { req, ctx in try await orderPage(req, ctx) }),
            (.get, "/orders/{key}", { req, ctx in try await orderPage(req, ctx) }),
            (.get, "/services", { req, _ in try await servicesPage(req) }),
            (.get, "/assets/brush.js", { _, _ in BrushScript.response() }),
            (.get, "/api/v1/alerts", { req, _ in try await getAlerts(req) }),
            (.get, "/api/v1/rules", { req, _ in try await getRules(req) }),
            (.post, "/api/v1/rules/reload", { _, _ in try await reloadRules() }),
            (.get, "/api/v1/audit", { req, _ in try await jsonDocument(queries.audit(limit: AuditDocument.limit(req.parameterDictionary["limit"]))) }),
            (.get, "/alerts", { req, _ in try await alertsPageView(req) }),
            (.get, "/api/v1/reports", { req, _ in try await listReports(req) }),
            (.get, "/api/v1/reports/{name}", { req, ctx in try await getReport(req, ctx) }),
            (.post, "/api/v1/reports/{name}/send", { req, ctx in try await sendReport(req, ctx) }),
            (.get, "/reports", { req, _ in try await reportsPage(req) }),
            (.get, "/healthz", { _, _ in try health() }),
            (.get, "/metrics", { _, _ in try await metricsText() }),
            (.get, "/openapi.json", { _, _ in jsonResponse(OpenAPIDocument.document) }),
        ]
    }

    func register(_ router: Router<BasicRequestContext>) {
        for r in routes { router.on(RouterPath(r.path), method: r.method, use: r.handler) }
    }

    /// The methods a path is served with (`{name}` segments match any one segment); empty for an unknown path.
    static func methods(for path: String, in routes: [(method: HTTPRequest.Method, path: String)]) -> [HTTPRequest.Method] {
        let asked = path.split(separator: "/", omittingEmptySubsequences: false)
        return routes.filter { r in
            let pattern = r.path.split(separator: "/", omittingEmptySubsequences: false)
            return pattern.count == asked.count && zip(pattern, asked).allSatisfy { p, a in p.hasPrefix("{") || p == a }
        }.map(\.method)
    }

    func postEvents(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let buffer = try await req.collectBody(upTo: config.maxBodyBytes)
        let decoded: DecodedEvents
        do {
            decoded = try EventDecoder.decode(body: Array(buffer.readableBytesView), contentType: req.headers[.contentType],
                                              contentEncoding: req.headers[.contentEncoding], limit: config.maxBodyBytes)
        } catch {
            metrics.rejectedBodies.increment()
            throw APIError(HTTPResponse.Status(code: error.httpStatus), error.description)
        }
        let result: AppendResult
        let started = ContinuousClock.now
        do {
            result = try await store.append(decoded.events)
        } catch StoreError.overloaded(let retry) {
            metrics.throttled.increment()
            throw APIError(.tooManyRequests, "ingest queue is full; retry after \(retry)s", headers: [.retryAfter: String(retry)])
        } catch StoreError.unavailable(let m) {
            throw APIError(.serviceUnavailable, m, headers: [.retryAfter: "5"])
        }
        metrics.commit(signal: "events", since: started)
        metrics.events(decoded, result: result, arrivedAt: clock())
        return jsonResponse(.object([
            "accepted": .number(Double(result.accepted)),
            "duplicates": .number(Double(result.duplicates)),
            "rejected": .array(decoded.rejected.map { .object(["index": .number(Double($0.index)), "error": .string($0.error)]) }),
        ]))
    }

    func getTrace(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let key = try ctx.pathKey()
        guard let doc = try await queries.trace(key: key) else {
            throw APIError(.notFound, "no order or linked key '\(key)' is known")
        }
        return try jsonDocument(doc)
    }

    func searchTraces(_ req: Request) async throws -> Response {
        try jsonDocument(await queries.search(SearchRequest(parameters: req.parameterDictionary)))
    }

    /// `200 {"status": "ok"}`, or `503` naming the storage fault while writes fail (`storageHealthResponse`).
    func health() throws -> Response {
        storageHealthResponse()
    }

    func metricsText() async throws -> Response {
        let text = await metrics.exposition(store: store, queries: queries, alerting: alerting)
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

/// A document of the query layer as the JSON response.
func jsonDocument<T: Encodable>(_ doc: T) throws -> Response { jsonResponse(try JSONCoding.encode(doc)) }

extension Request {
    /// The query parameters by name (the last of repeated ones). An empty value is the same as leaving
    /// the parameter out (an HTML form sends its empty fields), on every route.
    var parameterDictionary: [String: String] {
        var p: [String: String] = [:]
        for (k, v) in uri.queryParameters where !v.isEmpty { p[String(k)] = String(v) }
        return p
    }
}

extension BasicRequestContext {
    /// The `{key}` path parameter, percent-decoded once (clients encode it once: `URLText.pathSegment`).
    func pathKey() throws -> String {
        guard let raw = parameters.get("key") else { throw APIError(.badRequest, "key: missing") }
        return raw.removingPercentEncoding ?? raw
    }
}
