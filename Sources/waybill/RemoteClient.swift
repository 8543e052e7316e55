import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import WaybillModel

/// `waybill ingest --url`: POSTs batches to a running server's collector (reads go through `RemoteQueries`).
struct RemoteClient {
    let base: URL
    /// Sent as `Authorization: Bearer TOKEN` (`--token` or `$WAYBILL_TOKEN`).
    let token: String?

    init(_ url: String, token: String? = StoreOptions.environmentToken) throws {
        guard let u = URL(string: url) else { throw CLIError("--url: not a URL: \(url)") }
        base = u
        self.token = token
    }

    /// `path` is appended as it is: it must already be a valid URL path (the collector's fixed routes).
    func url(_ path: String) -> URL {
        var c = URLComponents(url: base, resolvingAgainstBaseURL: false)!
        c.percentEncodedPath = (c.percentEncodedPath.hasSuffix("/") ? String(c.percentEncodedPath.dropLast()) : c.percentEncodedPath) + path
        return c.url!
    }

    func send(_ request: URLRequest) async throws -> (Data, Int, [String: String]) {
        var request = request
        if let token { request.setValue("Bearer " + token, forHTTPHeaderField: "Authorization") }
        do {
            let (data, response) = try await URLSession.shared.data(for: request)
            let http = response as? HTTPURLResponse
            var headers: [String: String] = [:]
            for (k, v) in http?.allHeaderFields ?? [:] { headers[String(describing: k).lowercased()] = String(describing: v) }
            return (data, http?.statusCode ?? 0, headers)
        } catch {
            throw CLIError("cannot reach \(base.absoluteString): \(error.localizedDescription)")
        }
    }
}
