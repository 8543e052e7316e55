import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import WaybillModel

/// The CLI's remote mode: talks to a running server's HTTP API.
struct RemoteClient {
    let base: URL

    init(_ url: String) throws {
        guard let u = URL(string: url) else { throw CLIError("--url: not a URL: \(url)") }
        base = u
    }

    func url(_ path: String, query: [String: String] = [:]) -> URL {
        var c = URLComponents(url: base, resolvingAgainstBaseURL: false)!
        c.path = (c.path.hasSuffix("/") ? String(c.path.dropLast()) : c.path) + path
        if !query.isEmpty { c.queryItems = query.sorted { $0.key < $1.key }.map { URLQueryItem(name: $0.key, value: $0.value) } }
        return c.url!
    }

    /// GET a JSON document; nil on 404; throws with the server's error message otherwise.
    func getJSON(_ path: String, query: [String: String] = [:]) async throws -> JSONValue? {
        let (data, status, _) = try await send(URLRequest(url: url(path, query: query)))
        if status == 404 { return nil }
        let body = try? JSONParser.parse(Array(data))
        guard status == 200, let body else {
            throw CLIError("server answered \(status): \(body?["error"]?.stringValue ?? String(decoding: data.prefix(300), as: UTF8.self))")
        }
        return body
    }

    func send(_ request: URLRequest) async throws -> (Data, Int, [String: String]) {
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
