import Crypto
import Foundation
import Hummingbird
import Logging
import ServiceLifecycle
import WaybillModel
import WaybillStore

/// Requests a second per token on the ingest routes, with a burst (`serve --ingest-rate-limit`).
public struct RateLimit: Sendable, Equatable {
    public var perSecond: Double
    public var burst: Int
    public init(perSecond: Double, burst: Int) {
        self.perSecond = perSecond
        self.burst = burst
    }
}

/// Bearer tokens: made here, stored only as their SHA-256.
public enum AccessTokens {
    public static let prefix = "wbt_"

    /// A new token: `wbt_` and 32 random bytes in base64url (256 bits from the system's CSPRNG).
    public static func generate() -> String {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &rng) }
        let b64 = Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return prefix + b64
    }

    public static func hash(_ token: String) -> String {
        SHA256.hash(data: Data(token.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Equal strings of equal length, in time that depends only on the length.
    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in 0..<x.count { diff |= x[i] ^ y[i] }
        return diff == 0
    }

    /// Loopback addresses, where a server without tokens may answer openly.
    public static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host == "[::1]" || host.hasPrefix("127.")
    }

    /// `serve` and `demo` refuse a non-loopback address while no token exists, unless the user says
    /// `--insecure-no-auth`.
    public static func checkExposure(host: String, store: any AccessStore, insecureNoAuth: Bool) throws {
        guard !isLoopback(host), !insecureNoAuth else { return }
        if try store.accessTokens().isEmpty {
            throw ExposureRefused(host: host)
        }
    }
}

public struct ExposureRefused: Error, CustomStringConvertible {
    public let host: String
    public var description: String {
        "refusing to serve on \(host) with no access token: anyone who can reach the port could read orders and write events. "
            + "Create one first (`waybill tokens create --scope admin --db PATH` prints it), or pass --insecure-no-auth if you mean it"
    }
}

/// Which scope each route needs, and whether a request's bearer token has it.
///
/// Contract: `/healthz` is always open. Once any token has been created (even if since revoked or
/// expired), every other route needs an active token of its scope: `ingest` for the collector routes
/// and `POST /api/v1/orders`, `admin` for the audit log and for sending a saved report now
/// (`POST /api/v1/reports/{name}/send`), `read` (or `admin`) for everything else. Until
/// then a server answers openly when it is `open` (loopback, or `--insecure-no-auth`), and refuses
/// otherwise. A token added or revoked by any process is seen from the next request on.
final class AccessControl: @unchecked Sendable {
    enum Decision: Equatable {
        case allow(token: String?)
        case unauthorized(String)
        case forbidden(String)
    }

    let store: any AccessStore
    let open: Bool
    let clock: @Sendable () -> Micros
    private let lock = NSLock()
    private var version: Int64 = -1
    private var tokens: [AccessToken] = []
    private var used: [String: Micros] = [:]

    private var limiter: RateLimiter?

    init(store: any AccessStore, open: Bool, clock: @escaping @Sendable () -> Micros, ingestRateLimit: RateLimit? = nil) {
        self.store = store
        self.open = open
        self.clock = clock
        limiter = ingestRateLimit.map { RateLimiter(perSecond: $0.perSecond, burst: $0.burst) }
    }

    /// Whether the ingest request of this token (nil: a server answering openly) is within its rate; else Retry-After seconds.
    func admitIngest(token: String?) -> Int? {
        let now = clock()
        return lock.withLock { limiter?.admit(token ?? "", at: now) }
    }

    /// The name of the token the request being handled was allowed with (nil: an open server's anonymous
    /// client), for handlers that write who did what to the audit log.
    @TaskLocal static var caller: String?

    static func scope(method: HTTPRequest.Method, path: String) -> TokenScope? {
        switch path {
        case "/healthz": return nil
        case "/v1/events", "/v1/traces", "/api/v1/orders": return method == .post ? .ingest : .read
        case "/api/v1/audit": return .admin
        // Re-reading the alert rules changes what the server notifies.
        case "/api/v1/rules/reload": return .admin
        // Sending a saved report now (`POST /api/v1/reports/{name}/send`) makes the server post to the report's hooks.
        case _ where method == .post && path.hasPrefix("/api/v1/reports/") && path.hasSuffix("/send"): return .admin
        default: return .read
        }
    }

    func decide(method: HTTPRequest.Method, path: String, authorization: String?) async throws -> Decision {
        guard let needed = Self.scope(method: method, path: path) else { return .allow(token: nil) }
        let current = try await currentTokens()
        if current.isEmpty {
            return open ? .allow(token: nil) : .unauthorized("no access token is configured on this server; create one with `waybill tokens create`")
        }
        guard let header = authorization, header.lowercased().hasPrefix("bearer ") else {
            return .unauthorized("authorization: a bearer token is required (Authorization: Bearer TOKEN)")
        }
        let presented = AccessTokens.hash(String(header.dropFirst(7)).trimmingCharacters(in: .whitespaces))
        var match: AccessToken?
        for t in current where AccessTokens.constantTimeEqual(t.hash, presented) { match = t }
        let now = clock()
        guard let token = match, token.isActive(at: now) else {
            return .unauthorized("authorization: the token is unknown, revoked or expired")
        }
        guard token.scope.allows(needed) else {
            return .forbidden("authorization: token '\(token.name)' has scope \(token.scope.rawValue); this route needs \(needed.rawValue)")
        }
        lock.withLock { used[token.name] = now }
        return .allow(token: token.name)
    }

    /// The stored tokens, reloaded when the store's access version moved. Async reads: an engine that
    /// waits on the network (ClickHouse) holds no thread of the server while it does.
    private func currentTokens() async throws -> [AccessToken] {
        let v = try await store.currentAccessVersion()
        if let cached = lock.withLock({ v == version ? tokens : nil }) { return cached }
        let fresh = try await store.currentAccessTokens()
        lock.withLock {
            tokens = fresh
            version = v
        }
        return fresh
    }

    /// The last use of each token since the previous call.
    func takeUsage() -> [String: Micros] {
        lock.withLock {
            defer { used = [:] }
            return used
        }
    }
}

/// Token buckets, one per key: `burst` requests at once, refilled at `perSecond`.
///
/// Contract: a key's request is admitted while its bucket holds a whole token; otherwise it is refused
/// with the seconds until one is back (at least 1). Pure: the caller gives the time.
struct RateLimiter: Sendable {
    let perSecond: Double
    let burst: Double
    private var buckets: [String: (tokens: Double, at: Micros)] = [:]

    init(perSecond: Double, burst: Int) {
        self.perSecond = perSecond
        self.burst = Double(max(1, burst))
    }

    /// nil when admitted, else the Retry-After seconds.
    mutating func admit(_ key: String, at now: Micros) -> Int? {
        var b = buckets[key] ?? (burst, now)
        b.tokens = min(burst, b.tokens + Double(max(0, now - b.at)) / 1e6 * perSecond)
        b.at = now
        defer { buckets[key] = b }
        if b.tokens >= 1 {
            b.tokens -= 1
            return nil
        }
        return max(1, Int(((1 - b.tokens) / perSecond).rounded(.up)))
    }
}

struct AccessMiddleware<Context: RequestContext>: RouterMiddleware {
    let access: AccessControl

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        switch try await access.decide(method: request.method, path: request.uri.path, authorization: request.headers[.authorization]) {
        case .allow(let token):
            if AccessControl.scope(method: request.method, path: request.uri.path) == .ingest, let wait = access.admitIngest(token: token) {
                throw APIError(.tooManyRequests, "ingest rate limit of this token exceeded; retry after \(wait)s", headers: [.retryAfter: String(wait)])
            }
            return try await AccessControl.$caller.withValue(token) { try await next(request, context) }
        case .unauthorized(let m): throw APIError(.unauthorized, m, headers: [.wwwAuthenticate: "Bearer realm=\"waybill\""])
        case .forbidden(let m): throw APIError(.forbidden, m)
        }
    }
}

/// Writes when each token was last used, once a minute and at shutdown (not on every request).
struct TokenUsageService: Service {
    let access: AccessControl
    let clock: any ServiceClock
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            try? await cancelWhenGracefulShutdown { try await clock.sleep(for: 60_000_000) }
            do { try await access.store.recordTokenUse(access.takeUsage()) } catch {
                logger.warning("could not record token use", metadata: ["error": "\(error)"])
            }
        }
    }
}
