import Hummingbird

/// Times every request for `waybill_http_request_duration_seconds{route,method,status}`. The outermost
/// middleware: the errors below it are already `APIError`s with their status; the route is the
/// pattern the router matched (`context.endpointPath`), never the path asked.
struct RequestMetricsMiddleware<Context: RequestContext>: RouterMiddleware {
    let metrics: ServerMetrics

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let start = ContinuousClock.now
        func record(_ status: Int) {
            let d = ContinuousClock.now - start
            metrics.request(route: context.endpointPath, method: request.method.rawValue, status: status,
                            nanoseconds: d.components.seconds * 1_000_000_000 + d.components.attoseconds / 1_000_000_000)
        }
        do {
            let response = try await next(request, context)
            record(Int(response.status.code))
            return response
        } catch let e as any HTTPResponseError {
            record(Int(e.status.code))
            throw e
        } catch {
            record(500)
            throw error
        }
    }
}
