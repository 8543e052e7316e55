import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import WaybillCollectors
import WaybillKPI
import WaybillModel
import WaybillSQLite
import WaybillStore
import WaybillTestSupport
@testable import WaybillServer

/// Scoped bearer tokens on every route: each route × {no token, unknown, wrong scope, revoked, expired}.
@Suite struct AccessControlTests {
    static let tokens: [(name: String, scope: TokenScope, expires: Micros?, revoke: Bool)] = [
        ("ing", .ingest, nil, false), ("rd", .read, nil, false), ("adm", .admin, nil, false),
        ("old", .admin, 1, false), ("gone", .admin, nil, true),
    ]
    /// The secret of each token by name.
    static func secret(_ name: String) -> String { "wbt_test-secret-of-" + name }

    static func store(withTokens: Bool = true) async throws -> SQLiteStore {
        let store = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
        if withTokens {
            for t in tokens {
                let audit = AuditEntry(at: 1, actor: "test", action: "token.create", detail: t.name)
                try await store.addToken(AccessToken(name: t.name, scope: t.scope, hash: AccessTokens.hash(secret(t.name)), createdAt: 1,
                                                     expiresAt: t.expires), audit: audit)
                if t.revoke { _ = try await store.revokeToken(name: t.name, at: 2, audit: audit) }
            }
        }
        return store
    }

    static let event = #"{"specversion":"1.0","id":"a1","source":"oms","type":"order.accepted","time":"2026-11-23T14:00:00Z","subject":"SO-1","data":{}}"#
    static let otlp = #"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"erp"}}]},"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"x","startTimeUnixNano":"1795442400000000000","endTimeUnixNano":"1795442400250000000"}]}]}]}"#

    /// Every route with the scope it needs, and a request that would write when it is a collector route.
    static let routes: [(method: HTTPRequest.Method, path: String, scope: TokenScope, contentType: String?, body: String?)] = [
        (.post, "/v1/events", .ingest, "application/cloudevents+json", event),
        (.post, "/v1/traces", .ingest, "application/json", otlp),
        (.get, "/api/v1/traces/SO-1", .read, nil, nil),
        (.get, "/api/v1/traces?limit=5", .read, nil, nil),
        (.get, "/api/v1/kpis", .read, nil, nil),
        (.get, "/api/v1/services", .read, nil, nil),
        (.get, "/api/v1/alerts", .read, nil, nil),
        (.get, "/api/v1/rules", .read, nil, nil),
        (.get, "/api/v1/audit", .admin, nil, nil),
        (.get, "/", .read, nil, nil),
        (.get, "/traces/SO-1", .read, nil, nil),
        (.get, "/alerts", .read, nil, nil),
        (.get, "/metrics", .read, nil, nil),
        (.get, "/openapi.json", .read, nil, nil),
        (.post, "/api/v1/orders", .ingest, "application/json", #"{"region":"west","lines":[{"sku":"A","qty":1}]}"#),
    ]

    static func headers(_ contentType: String?, token: String?) -> HTTPFields {
        var h: HTTPFields = [:]
        if let contentType { h[.contentType] = contentType }
        if let token { h[.authorization] = "Bearer " + token }
        return h
    }

    @Test func everyRouteRefusesMissingUnknownWrongScopeRevokedAndExpiredTokensAndWritesNothing() async throws {
        let store = try await Self.store()
        defer { store.close() }
        let app = buildApplication(store: store, config: ServerConfig())
        try await app.test(.router) { client in
            for r in Self.routes {
                let wrongScope = r.scope == .ingest ? "rd" : "ing"
                let cases: [(String, String?, HTTPResponse.Status)] = [
                    ("no token", nil, .unauthorized), ("unknown token", "wbt_nobody", .unauthorized),
                    ("wrong scope", Self.secret(wrongScope), .forbidden), ("revoked", Self.secret("gone"), .unauthorized),
                    ("expired", Self.secret("old"), .unauthorized),
                ]
                for (label, token, status) in cases {
                    try await client.execute(uri: r.path, method: r.method, headers: Self.headers(r.contentType, token: token),
                                             body: r.body.map { ByteBuffer(string: $0) }) { resp in
                        #expect(resp.status == status, "\(r.method) \(r.path), \(label)")
                        #expect(resp.json["error"]?.stringValue?.isEmpty == false, "\(r.path), \(label): a JSON error body")
                        if status == .unauthorized { #expect(resp.headers[.wwwAuthenticate]?.hasPrefix("Bearer") == true) }
                    }
                }
                let right = r.scope == .ingest ? "ing" : (r.scope == .admin ? "adm" : "rd")
                try await client.execute(uri: r.path, method: r.method, headers: Self.headers(r.contentType, token: Self.secret(right)),
                                         body: r.body.map { ByteBuffer(string: $0) }) { resp in
                    #expect(resp.status != .unauthorized && resp.status != .forbidden, "\(r.method) \(r.path) with scope \(right)")
                }
            }
            // OTLP's protobuf exporters get a google.rpc.Status, not JSON.
            try await client.execute(uri: "/v1/traces", method: .post, headers: Self.headers("application/x-protobuf", token: nil), body: ByteBuffer()) { resp in
                #expect(resp.status == .unauthorized)
                #expect(resp.headers[.contentType] == "application/x-protobuf")
                let status = OTLPStatus(protobuf: Array(resp.body.readableBytesView))
                #expect(status?.code == 16)
                #expect(status?.message.contains("bearer token") == true)
            }
            try await client.execute(uri: "/v1/traces", method: .post, headers: Self.headers("application/x-protobuf", token: Self.secret("rd")), body: ByteBuffer()) { resp in
                #expect(resp.status == .forbidden)
                #expect(OTLPStatus(protobuf: Array(resp.body.readableBytesView))?.code == 7)
            }
            // Nothing refused was written: only the one accepted event and span.
            #expect(try store.stats().events == 1)
            #expect(try store.spans(startingIn: 0..<Micros.max, limit: 10).count == 1)
            // admin implies read; /healthz needs nothing.
            try await client.execute(uri: "/api/v1/kpis", method: .get, headers: Self.headers(nil, token: Self.secret("adm"))) { #expect($0.status == .ok) }
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok) }
        }
    }

    @Test func loopbackIsOpenUntilTheFirstTokenAndARevocationCountsFromTheNextRequest() async throws {
        let store = try await Self.store(withTokens: false)
        defer { store.close() }
        let app = buildApplication(store: store, config: ServerConfig())
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/v1/kpis", method: .get) { #expect($0.status == .ok) }
            let audit = AuditEntry(at: 1, actor: "test", action: "token.create", detail: "rd")
            try await store.addToken(AccessToken(name: "rd", scope: .read, hash: AccessTokens.hash(Self.secret("rd")), createdAt: 1), audit: audit)
            try await client.execute(uri: "/api/v1/kpis", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/api/v1/kpis", method: .get, headers: Self.headers(nil, token: Self.secret("rd"))) { #expect($0.status == .ok) }
            #expect(try await store.revokeToken(name: "rd", at: 2, audit: AuditEntry(at: 2, actor: "test", action: "token.revoke", detail: "rd")))
            try await client.execute(uri: "/api/v1/kpis", method: .get, headers: Self.headers(nil, token: Self.secret("rd"))) {
                #expect($0.status == .unauthorized)
            }
        }
        #expect(try store.auditEntries(limit: 10).map(\.action) == ["token.revoke", "token.create"])
    }

    @Test func aNonLoopbackServerWithoutTokensAnswersNothing() async throws {
        let store = try await Self.store(withTokens: false)
        defer { store.close() }
        var config = ServerConfig()
        config.host = "0.0.0.0"
        #expect(throws: ExposureRefused.self) { try AccessTokens.checkExposure(host: config.host, store: store, insecureNoAuth: false) }
        try AccessTokens.checkExposure(host: config.host, store: store, insecureNoAuth: true)
        let app = buildApplication(store: store, config: config)
        try await app.test(.router) { client in
            try await client.execute(uri: "/api/v1/kpis", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.status == .ok && $0.json["auth"] == nil) }
        }
        config.insecureNoAuth = true
        let insecure = buildApplication(store: store, config: config)
        try await insecure.test(.router) { client in
            try await client.execute(uri: "/api/v1/kpis", method: .get) { #expect($0.status == .ok, "--insecure-no-auth answers openly") }
            try await client.execute(uri: "/healthz", method: .get) { #expect($0.json["auth"]?.stringValue?.contains("disabled") == true) }
        }
    }

    /// A token over its ingest rate gets 429 with Retry-After (nothing stored), other tokens are unaffected,
    /// and it may send again once the bucket refills; reading is never limited.
    @Test func theIngestRateLimitKicksInPerTokenAndRecovers() async throws {
        let store = try await Self.store()
        defer { store.close() }
        let audit = AuditEntry(at: 1, actor: "test", action: "token.create", detail: "ing2")
        try await store.addToken(AccessToken(name: "ing2", scope: .ingest, hash: AccessTokens.hash(Self.secret("ing2")), createdAt: 1), audit: audit)
        var config = ServerConfig()
        config.ingestRateLimit = RateLimit(perSecond: 2, burst: 3)
        let clock = ManualClock(now: t("2026-11-23T15:00:00Z"))
        let app = buildApplication(store: store, config: config, clock: clock)
        try await app.test(.router) { client in
            for i in 0..<3 {
                let r = try await Self.post(client, "b\(i)", token: "ing")
                #expect(r.0 == .ok, "within the burst")
            }
            let (status, retry) = try await Self.post(client, "b3", token: "ing")
            #expect(status == .tooManyRequests && retry == "1")
            let other = try await Self.post(client, "c0", token: "ing2")
            #expect(other.0 == .ok, "another token has its own bucket")
            try await client.execute(uri: "/api/v1/kpis", method: .get, headers: Self.headers(nil, token: Self.secret("rd"))) { #expect($0.status == .ok) }
            clock.advance(by: 500 * 1000)  // half a second: one request's worth
            let recovered = try await Self.post(client, "b4", token: "ing")
            #expect(recovered.0 == .ok, "recovered")
            let again = try await Self.post(client, "b5", token: "ing")
            #expect(again.0 == .tooManyRequests)
        }
        #expect(try store.stats().events == 5, "refused requests stored nothing")
    }

    static func post(_ client: some TestClientProtocol, _ id: String, token: String) async throws -> (HTTPResponse.Status, String?) {
        let body = event.replacingOccurrences(of: "\"a1\"", with: "\"\(id)\"")
        return try await client.execute(uri: "/v1/events", method: .post, headers: headers("application/cloudevents+json", token: secret(token)),
                                        body: ByteBuffer(string: body)) { ($0.status, $0.headers[.retryAfter]) }
    }

    /// A known path asked with another method is 405 with `Allow` (schemathesis' undeclared-method check), an unknown one 404.
    @Test func aKnownPathWithAnotherMethodIs405WithAllow() async throws {
        let store = try await Self.store(withTokens: false)
        defer { store.close() }
        try await buildApplication(store: store, config: ServerConfig()).test(.router) { client in
            try await client.execute(uri: "/api/v1/kpis", method: .delete) { r in
                #expect(r.status == .methodNotAllowed && r.headers[.allow] == "GET" && r.json["error"] != nil)
            }
            try await client.execute(uri: "/api/v1/traces/SO-1", method: .post) { #expect($0.status == .methodNotAllowed) }
            try await client.execute(uri: "/v1/events", method: .get) { #expect($0.status == .methodNotAllowed && $0.headers[.allow] == "POST") }
            try await client.execute(uri: "/nowhere", method: .get) { #expect($0.status == .notFound) }
        }
    }

    @Test func tokensAreStoredOnlyAsHashesAndCompareInConstantTime() {
        let t = AccessTokens.generate()
        #expect(t.hasPrefix("wbt_") && t.count == 47)
        #expect(AccessTokens.generate() != t)
        #expect(AccessTokens.hash(t).count == 64 && !AccessTokens.hash(t).contains(t))
        #expect(AccessTokens.constantTimeEqual("abc", "abc") && !AccessTokens.constantTimeEqual("abc", "abd") && !AccessTokens.constantTimeEqual("ab", "abc"))
    }

    /// As a user does it: `waybill tokens` on the store, the CLI's `--url` with `--token`/`WAYBILL_TOKEN`,
    /// revocation seen by the running server, `waybill audit`, and `serve` refusing a public address.
    @Test func tokensFromTheCLIAgainstARunningServer() async throws {
        let db = temporaryDatabase()
        let created = try await CLIRun.run(["tokens", "create", "--scope", "read", "--name", "ci-reader", "--db", db])
        #expect(created.status == 0, "\(created.stderr)")
        let token = try #require(created.stdout.split(separator: "\n").last.map(String.init))
        #expect(token.hasPrefix("wbt_"))
        let ingest = try await CLIRun.run(["tokens", "create", "--scope", "ingest", "--db", db])
        let ingestToken = try #require(ingest.stdout.split(separator: "\n").last.map(String.init))
        let list = try await CLIRun.run(["tokens", "list", "--db", db])
        #expect(list.stdout.contains("ci-reader") && list.stdout.contains("read") && !list.stdout.contains(token))
        let again = try await CLIRun.run(["tokens", "create", "--scope", "admin", "--name", "ci-reader", "--db", db])
        #expect(again.status != 0 && again.stderr.contains("ci-reader"))

        let server = try await ServerProcess.start(db: db)
        defer { server.stop() }
        let file = URL(fileURLWithPath: db).deletingLastPathComponent().appendingPathComponent("e.ndjson")
        try (eventJSON("t1", "order.accepted", "2026-11-23T14:00:00Z", "SO-T") + "\n").write(to: file, atomically: true, encoding: .utf8)
        let refused = try await CLIRun.run(["ingest", file.path, "--url", server.base])
        #expect(refused.status != 0 && refused.stderr.contains("401"), "\(refused.stderr)")
        let sent = try await CLIRun.run(["ingest", file.path, "--url", server.base, "--token", ingestToken])
        #expect(sent.status == 0, "\(sent.stderr)")
        let noToken = try await CLIRun.run(["trace", "SO-T", "--url", server.base])
        #expect(noToken.status != 0 && noToken.stderr.contains("401"), "\(noToken.stderr)")
        let read = try await CLIRun.run(["trace", "SO-T", "--url", server.base, "--token", token, "--json"])
        #expect(read.json?["correlation_id"] == "SO-T", "\(read.stderr)")
        let wrongScope = try await CLIRun.run(["trace", "SO-T", "--url", server.base, "--token", ingestToken])
        #expect(wrongScope.status != 0 && wrongScope.stderr.contains("403"), "\(wrongScope.stderr)")

        let revoked = try await CLIRun.run(["tokens", "revoke", "ci-reader", "--db", db])
        #expect(revoked.status == 0, "\(revoked.stderr)")
        let afterRevoke = try await CLIRun.run(["trace", "SO-T", "--url", server.base, "--token", token])
        #expect(afterRevoke.status != 0 && afterRevoke.stderr.contains("401"), "\(afterRevoke.stderr)")
        let audit = try await CLIRun.run(["audit", "--db", db, "--json"])
        let actions = audit.json?["entries"]?.arrayValue?.compactMap { $0["action"]?.stringValue } ?? []
        #expect(actions == ["token.revoke", "token.create", "token.create"], "\(audit.stdout)")

        let publicDB = temporaryDatabase()
        let exposed = try await CLIRun.run(["serve", "--host", "0.0.0.0", "--port", "1", "--db", publicDB])
        #expect(exposed.status != 0 && exposed.stderr.contains("--insecure-no-auth"), "\(exposed.stderr)")
    }
}
