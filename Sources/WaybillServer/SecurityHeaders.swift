import Hummingbird

/// Headers that keep a browser from doing more with a response than showing it. Every response gets
/// `X-Content-Type-Options: nosniff` (a JSON body is never taken for HTML; error bodies get it from
/// `APIError`). Every page (`text/html`: `/`, `/traces/{key}`, `/alerts`, the KPI report) also gets a
/// Content-Security-Policy that allows nothing but its own inline styles, data: images, forms submitted
/// to the server itself and scripts from files the server serves (`/assets/brush.js`; no inline script,
/// no frames, no fetches: `connect-src` stays `'none'`), and `X-Frame-Options: DENY`.
struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    static var contentSecurityPolicy: String {
        "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var r = try await next(request, context)
        r.headers[.xContentTypeOptions] = "nosniff"
        if r.headers[.contentType]?.lowercased().hasPrefix("text/html") == true {
            r.headers[.contentSecurityPolicy] = Self.contentSecurityPolicy
            r.headers[.init("X-Frame-Options")!] = "DENY"
        }
        return r
    }
}
