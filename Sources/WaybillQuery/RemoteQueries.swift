import AsyncHTTPClient
import Foundation
import NIOCore
import WaybillAlerts
import WaybillKPI
import WaybillModel
import WaybillStore

/// `WaybillQueries` over a running server's HTTP API (the CLI's `--url` mode). Parameters travel as the
/// server's query parameters, so the server's clock resolves relative times and its parser judges them.
public struct RemoteQueries: WaybillQueries {
    /// Scheme, host, port and an optional path prefix, without a trailing slash.
    public let base: String
    public let timeout: TimeAmount
    /// Sent as `Authorization: Bearer TOKEN` when set.
    public let token: String?

    public init(url: String, token: String? = nil, timeout: TimeAmount = .seconds(60)) throws(QueryFailure) {
        guard let u = URL(string: url), let scheme = u.scheme, ["http", "https"].contains(scheme.lowercased()), u.host != nil else {
            throw .badRequest(FieldError(field: "url", rule: "must be an http:// or https:// URL, e.g. http://127.0.0.1:4318"))
        }
        var b = url
        while b.hasSuffix("/") { b.removeLast() }
        base = b
        self.timeout = timeout
        self.token = token
    }

    public func trace(key: String) async throws -> TraceDocument? {
        try await get("/api/v1/traces/" + URLText.pathSegment(key), [:], TraceDocument.self)
    }

    public func search(_ request: SearchRequest) async throws -> OrderPage {
        try await required("/api/v1/traces", request.parameters, OrderPage.self)
    }

    public func kpis(_ request: KPIRequest) async throws -> KPIDocument {
        var p = request.parameters
        p["format"] = "json"
        return try await required("/api/v1/kpis", p, KPIDocument.self)
    }

    public func explain(_ request: KPIRequest) async throws -> KPIExplainDocument {
        try await required("/api/v1/kpis", request.parameters, KPIExplainDocument.self)
    }

    public func services(_ request: ServicesRequest) async throws -> ServiceReport {
        try await required("/api/v1/services", request.parameters, ServiceReport.self)
    }

    public func alerts(_ request: AlertsRequest) async throws -> AlertsDocument {
        try await required("/api/v1/alerts", request.parameters, AlertsDocument.self)
    }

    public func rules() async throws -> RulesDocument {
        try await required("/api/v1/rules", [:], RulesDocument.self)
    }

    public func audit(limit: Int) async throws -> AuditDocument {
        try await required("/api/v1/audit", ["limit": String(limit)], AuditDocument.self)
    }

    func required<T: Decodable>(_ path: String, _ query: [String: String], _ type: T.Type) async throws -> T {
        guard let doc = try await get(path, query, type) else { throw QueryFailure.notAvailable("\(base) has no \(path)") }
        return doc
    }

    /// The document at `path`; nil on 404. A 400 comes back as `badRequest` with the server's field and rule.
    func get<T: Decodable>(_ path: String, _ query: [String: String], _ type: T.Type) async throws -> T? {
        let url = base + path + (query.isEmpty ? "" : "?" + URLText.query(query))
        let (status, body) = try await fetch(url)
        if status == 404 { return nil }
        guard status == 200 else {
            let message = (try? JSONParser.parse(body))?["error"]?.stringValue ?? String(decoding: body.prefix(300), as: UTF8.self)
            if status == 400, let colon = message.range(of: ": ") {
                throw QueryFailure.badRequest(FieldError(field: String(message[..<colon.lowerBound]), rule: String(message[colon.upperBound...])))
            }
            throw QueryFailure.server(status: status, message: message)
        }
        do {
            return try JSONCoding.decode(type, from: body)
        } catch {
            throw QueryFailure.transport("\(url) answered a document Waybill cannot read: \(JSONCoding.fieldError(error))")
        }
    }

    func fetch(_ url: String) async throws -> (Int, [UInt8]) {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Accept", value: "application/json")
        if let token { request.headers.add(name: "Authorization", value: "Bearer " + token) }
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: timeout)
            let body = try await response.body.collect(upTo: 512 << 20)
            return (Int(response.status.code), Array(body.readableBytesView))
        } catch {
            throw QueryFailure.transport("cannot reach \(base): \(error)")
        }
    }
}
