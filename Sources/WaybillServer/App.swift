import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import WaybillCollectors
import WaybillModel
import WaybillQuery
import WaybillReports
import WaybillStore

public struct ServerConfig: Sendable {
    public var host = "127.0.0.1"
    public var port = 4318
    /// Largest request body, also after decompression.
    public var maxBodyBytes = EventDecoder.defaultBodyLimit
    public var serverName = "waybill"
    /// Events older than this are deleted (checked hourly); nil keeps everything.
    public var retention: Micros?
    /// Answer without tokens while none exists, even on a non-loopback address (`--insecure-no-auth`).
    public var insecureNoAuth = false
    /// TLS from certificate files, reloaded when they change (`serve --tls-cert --tls-key`); nil: plain HTTP.
    public var tls: TLSFiles?
    /// Connections at once, and how long a started request may take to be answered.
    public var connectionLimits = ConnectionLimits()
    /// Per-token limit on the ingest routes (429 with Retry-After beyond it); nil: none.
    public var ingestRateLimit: RateLimit?
    /// Saved reports and searches (`serve --queries DIR`): served at `/api/v1/reports`; scheduled reports are
    /// sent by the server that runs alerting (their hooks are given to its delivery worker).
    public var savedQueries: SavedQueries?
    /// The overview page's panels (`serve --dashboards DIR`); nil: the shipped `dashboards/overview.yaml`.
    public var dashboard: Dashboard?
    /// The alert rules files and directories the rules were read from (`--config`, `$WAYBILL_ALERTS`), read
    /// again by `POST /api/v1/rules/reload`; empty: rules are not reloadable (none, or the demo's shipped ones).
    public var rulesPaths: [String] = []
    /// Whether `SIGHUP` reloads the rules (the CLI's servers; not servers built inside a test process).
    public var reloadRulesOnSIGHUP = false
    /// Whether a server with no token answers openly: on loopback, or when the user said so.
    public var openWithoutTokens: Bool { insecureNoAuth || AccessTokens.isLoopback(host) }
    public init() {}
}

/// Builds the HTTP application; `main` only wires and runs it, and tests drive the same router.
public func buildApplication(store: any WaybillStore, config: ServerConfig, logger: Logger? = nil,
                             clock: any ServiceClock = SystemClock(),
                             services: [any Service] = [], orderDesk: OrderDesk? = nil,
                             alerting: Alerting? = nil, alertRules: AlertRulesView? = nil,
                             ingestObserver: IngestObserver? = nil) -> some ApplicationProtocol
{
    var log = logger ?? Logger(label: "waybill")
    if logger == nil { log.logLevel = .info }
    let rulesView = alerting.map {
        AlertRulesView(config: $0.config, source: $0.source, baseURL: "http://\(config.host):\(config.port)", engine: $0.engine)
    } ?? alertRules  // rules this server answers from the store without evaluating them (a shared store's other servers)
    let now: @Sendable () -> Micros = { clock.now() }
    let metrics = ServerMetrics(clock: now)
    if let alerting { metrics.attach(alerting) }
    ingestObserver?.attach { decoded, result in metrics.events(decoded, result: result, arrivedAt: now()) }
    metrics.observeCommits(of: store)
    let access = AccessControl(store: store, open: config.openWithoutTokens, clock: now, ingestRateLimit: config.ingestRateLimit)
    let queries = LocalQueries(store: store, lanes: .standard(), clock: now, alerting: rulesView)
    var api = WaybillAPI(store: store, config: config, metrics: metrics, clock: now, orderDesk: orderDesk, alerting: alerting, queries: queries)
    let reloader = config.rulesPaths.isEmpty || (alerting == nil && alertRules == nil)
        ? nil : RulesReloader(paths: config.rulesPaths, alerting: alerting, view: alerting == nil ? alertRules : nil, store: store)
    api.rulesReloader = reloader
    let router = Router()
    router.middlewares.add(RequestMetricsMiddleware(metrics: metrics))
    router.middlewares.add(ErrorMiddleware(metrics: metrics, logger: log, routeMethods: api.routes.map { ($0.method, $0.path) }))
    router.middlewares.add(SecurityHeadersMiddleware())
    router.middlewares.add(AccessMiddleware(access: access))
    api.register(router)
    var app = Application(
        router: router,
        server: .http1(tls: config.tls, limits: config.connectionLimits),
        configuration: .init(address: .hostname(config.host, port: config.port), serverName: config.serverName),
        logger: log)
    app.addServices(services)
    app.addServices(ReadLanesService(lanes: queries.lanes), TokenUsageService(access: access, clock: clock, logger: log))
    if let alerting {
        app.addServices(AlertService(alerting: alerting, clock: clock, logger: log, metrics: metrics))
        if let reports = ReportScheduleService.make(config.savedQueries, store: store, queries: queries, baseURL: alerting.engine.baseURL,
                                                    clock: clock, logger: log) {
            app.addServices(reports)
        }
    }
    if let reloader, config.reloadRulesOnSIGHUP {
        app.addServices(RulesReloadSignalService(reloader: reloader, clock: clock, logger: log))
    }
    if let retention = config.retention {
        app.addServices(RetentionService(store: store, retention: retention, interval: 3_600_000_000, clock: clock, logger: log))
    }
    return app
}

/// Ends the reader threads of the query layer when the server shuts down.
struct ReadLanesService: Service {
    let lanes: ReadLanes

    func run() async throws {
        try? await gracefulShutdown()
        lanes.stop()
    }
}

/// Errors as JSON bodies naming what was wrong: `{"error": "..."}`.
struct APIError: HTTPResponseError {
    let status: HTTPResponse.Status
    let message: String
    var headers: HTTPFields = [:]

    init(_ status: HTTPResponse.Status, _ message: String, headers: HTTPFields = [:]) {
        self.status = status
        self.message = message
        self.headers = headers
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var h = headers
        h[.xContentTypeOptions] = "nosniff"
        if request.uri.path == "/v1/traces" {
            // OTLP/HTTP: the error body is a google.rpc.Status in the request's encoding; a JSON
            // request's Status also carries Waybill's usual "error" member.
            let status = OTLPStatus(httpStatus: Int(self.status.code), message: message)
            if request.mediaType == "application/x-protobuf" {
                h[.contentType] = "application/x-protobuf"
                return Response(status: self.status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: status.protobufBytes)))
            }
            h[.contentType] = "application/json"
            return Response(status: self.status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: JSONValue.object([
                "code": .number(Double(status.code)), "message": .string(message), "error": .string(message),
            ]).jsonBytes)))
        }
        h[.contentType] = "application/json"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(bytes: JSONValue.object(["error": .string(message)]).jsonBytes)))
    }
}

struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics
    let logger: Logger
    /// Every route's method and path, for 405.
    var routeMethods: [(method: HTTPRequest.Method, path: String)] = []
    let faultLog = FaultLog()

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            let r = try await next(request, context)
            metrics.count(status: Int(r.status.code))
            return r
        } catch let e as APIError {
            metrics.count(status: Int(e.status.code))
            throw e
        } catch let e as QueryFailure {
            let status: HTTPResponse.Status
            switch e {
            case .badRequest: status = .badRequest
            case .notAvailable: status = .notFound
            case .server, .transport: status = .badGateway
            }
            metrics.count(status: Int(status.code))
            throw APIError(status, e.description)
        } catch StoreError.fault(let f) {
            // A fault that may pass (disk full, I/O error, lock): 503 with Retry-After, which collectors retry.
            metrics.count(status: 503)
            faultLog.record(f, path: request.uri.path, logger: logger)
            throw APIError(fault: f)
        } catch is NIOTooManyBytesError {
            metrics.count(status: 413)
            throw APIError(.contentTooLarge, "request body too large")
        } catch let e as HTTPError {
            // A known path asked with a method it is not served with: 405 with Allow, not 404.
            let allowed = e.status == .notFound ? WaybillAPI.methods(for: request.uri.path, in: routeMethods) : []
            if !allowed.isEmpty {
                metrics.count(status: 405)
                throw APIError(.methodNotAllowed, "method: \(request.method) is not served on \(request.uri.path); allowed: "
                    + allowed.map(\.rawValue).joined(separator: ", "), headers: [.allow: allowed.map(\.rawValue).joined(separator: ", ")])
            }
            metrics.count(status: Int(e.status.code))
            throw APIError(e.status, e.body ?? e.status.reasonPhrase)
        } catch {
            metrics.count(status: 500)
            logger.error("request failed", metadata: ["path": "\(request.uri.path)", "error": "\(error)"])
            throw APIError(.internalServerError, "internal error: \(error)")
        }
    }
}

func jsonResponse(_ v: JSONValue, status: HTTPResponse.Status = .ok) -> Response {
    Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: v.jsonBytes)))
}
