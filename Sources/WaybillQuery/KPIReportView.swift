import WaybillKPI
import WaybillModel

/// A KPI report in one format, from the documents of any `WaybillQueries` (so the CLI renders a remote
/// server's report as it renders a local one, and the HTTP API renders its own the same way).
public enum KPIReportView {
    /// JSON and CSV carry the document; table and HTML also compare with the previous window of the same
    /// length, and HTML lists the 20 slowest allocations behind the p95. A split report is json, csv or table.
    public static func render(_ format: KPIFormat, _ request: KPIRequest, using queries: any WaybillQueries) async throws -> String {
        if request.split != nil, format == .html {
            throw QueryFailure.badRequest(FieldError(field: "format", rule: "a split report is json, csv or table"))
        }
        let current = try await queries.kpis(request)
        guard request.split == nil, format == .table || format == .html else {
            return KPIRender.render(format, current: current, previous: nil)
        }
        let previous = try await queries.kpis(request.previous(of: current))
        var contributors: [KPIContributor] = []
        if format == .html {
            let slowest = KPIRequest(from: RFC3339.format(current.query.from), to: RFC3339.format(current.query.to),
                                     explain: .allocationDelay(.p95), limit: KPIRequest.defaultExplainLimit)
            contributors = try await queries.explain(slowest).orders
        }
        return KPIRender.render(format, current: current, previous: previous, contributors: contributors)
    }

    public static func parseFormat(_ text: String?) throws(QueryFailure) -> KPIFormat {
        guard let f = KPIFormat(rawValue: text ?? "json") else {
            throw .badRequest(FieldError(field: "format", rule: "must be one of json, csv, table, html"))
        }
        return f
    }

    public static func contentType(_ format: KPIFormat) -> String {
        switch format {
        case .json: return "application/json"
        case .csv: return "text/csv; charset=utf-8"
        case .html: return "text/html; charset=utf-8"
        case .table: return "text/plain; charset=utf-8"
        }
    }
}
