import Hummingbird
import NIOCore
import WaybillKPI
import WaybillModel
import WaybillQuery

extension WaybillAPI {
    /// `GET /api/v1/kpis?from=&to=&by=&step=&format=json|csv|table|html&split=`, or `explain=METRIC&group=&limit=`
    /// for the orders behind a figure.
    func getKPIs(_ req: Request) async throws -> Response {
        let params = req.parameterDictionary
        let request = try KPIRequest(parameters: params)
        if request.explain != nil { return try jsonDocument(await queries.explain(request)) }
        let format = try KPIReportView.parseFormat(params["format"])
        let body = try await KPIReportView.render(format, request, using: queries)
        return Response(status: .ok, headers: [.contentType: KPIReportView.contentType(format)], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// `GET /api/v1/services?from=&to=`: per service span rate, error rate and latency, and the edges between services.
    func getServices(_ req: Request) async throws -> Response {
        try jsonDocument(await queries.services(ServicesRequest(parameters: req.parameterDictionary)))
    }
}
