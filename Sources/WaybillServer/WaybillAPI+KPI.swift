import Foundation
import Hummingbird
import NIOCore
import WaybillKPI
import WaybillModel
import WaybillStore

extension WaybillAPI {
    /// `GET /api/v1/kpis?from=&to=&by=&step=&format=json|csv|table|html&explain=METRIC&group=&limit=`
    func getKPIs(_ req: Request) throws -> Response {
        let p = req.uri.queryParameters
        func param(_ k: String) -> String? { p[k[...]].map(String.init) }
        let query: KPIQuery
        do {
            query = try KPIQuery.parse(from: param("from"), to: param("to"), by: param("by"), step: param("step"), now: clock())
        } catch {
            throw APIError(.badRequest, error.description)
        }
        let service = KPIService(reader: store)
        if let m = param("explain") {
            let metric: KPIMetric
            do { metric = try KPIMetric.parse(m) } catch { throw APIError(.badRequest, error.description) }
            var limit = 20
            if let l = param("limit") {
                guard let n = Int(l), (1...10_000).contains(n) else { throw APIError(.badRequest, "limit: must be an integer from 1 to 10000") }
                limit = n
            }
            let group: String?? = param("group").map { $0 == "null" ? .some(nil) : .some($0) } ?? .none
            let list: [KPIContributor]
            do { list = try service.explain(metric, query, group: group, limit: limit) } catch let e as KPIQueryError {
                throw APIError(.badRequest, e.description)
            }
            return jsonResponse(.object(["metric": .string(m), "orders": .array(list.map(\.json))]))
        }
        if let splitText = param("split") {
            let split: TelemetrySplit
            do { split = try TelemetrySplit.parse(splitText) } catch { throw APIError(.badRequest, error.description) }
            let doc = try service.splitDocument(query, split: split, traces: store)
            guard let format = KPIFormat(rawValue: param("format") ?? "json"), format == .json || format == .csv || format == .table else {
                throw APIError(.badRequest, "format: a split report is json, csv or table")
            }
            let body = KPIRender.render(format, current: doc, previous: nil)
            return Response(status: .ok, headers: [.contentType: format == .json ? "application/json" : "text/plain; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        let formatName = param("format") ?? "json"
        guard let format = KPIFormat(rawValue: formatName) else {
            throw APIError(.badRequest, "format: must be one of json, csv, table, html")
        }
        let body = try service.report(query, format: format)
        let type: String
        switch format {
        case .json: type = "application/json"
        case .csv: type = "text/csv; charset=utf-8"
        case .html: type = "text/html; charset=utf-8"
        case .table: type = "text/plain; charset=utf-8"
        }
        return Response(status: .ok, headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

extension WaybillAPI {
    /// Spans read for one service view at most; a busier window says `truncated`.
    static let serviceViewSpanLimit = 500_000

    /// `GET /api/v1/services?from=&to=`: per service span rate, error rate and latency, and the edges between services.
    func getServices(_ req: Request) throws -> Response {
        let p = req.uri.queryParameters
        let now = clock()
        var from = now - 3_600_000_000, to = now
        if let t = p["to"].map(String.init) {
            guard let v = TimeText.parse(t, now: now) else { throw APIError(.badRequest, "to: must be RFC 3339 or relative like -1h") }
            to = v
            from = to - 3_600_000_000
        }
        if let f = p["from"].map(String.init) {
            guard let v = TimeText.parse(f, now: now) else { throw APIError(.badRequest, "from: must be RFC 3339 or relative like -1h") }
            from = v
        }
        guard from < to else { throw APIError(.badRequest, "to: must be after from") }
        let spans = try store.spans(startingIn: from..<to, limit: Self.serviceViewSpanLimit + 1)
        let report = ServiceReport(spans: spans.prefix(Self.serviceViewSpanLimit), from: from, to: to,
                                   truncated: spans.count > Self.serviceViewSpanLimit)
        return jsonResponse(report.json)
    }
}
