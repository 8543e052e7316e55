import Hummingbird
import NIOCore
import WaybillModel
import WaybillQuery
import WaybillReports
import WaybillStore

extension WaybillAPI {
    /// `GET /api/v1/export/ocel?from=&to=`: the window's events as an OCEL 2.0 JSON log, streamed as it is
    /// made (constant memory; a slow client slows the export). Parameters are checked before the first
    /// byte, so a bad one is a 400; a failure after it cuts the body short, which leaves invalid JSON
    /// rather than a log that looks complete. `Accept-Encoding: gzip` gets the stream gzip-compressed.
    func exportOCEL(_ req: Request) async throws -> Response {
        let request = try OCELRequest(parameters: req.parameterDictionary)
        let window = try request.window(now: clock())
        guard let scanner = store as? any EventScanner else {
            throw APIError(.notImplemented, "this storage engine cannot scan events by time, which the export needs")
        }
        let gzip = (req.headers[.acceptEncoding] ?? "").lowercased().split(separator: ",").contains {
            $0.split(separator: ";").first?.trimmingCharacters(in: .whitespaces) == "gzip"
        }
        var headers: HTTPFields = [.contentType: "application/json",
                                   .contentDisposition: "attachment; filename=\"waybill-ocel.json\""]
        if gzip { headers[.contentEncoding] = "gzip" }
        let exporter = OCELExporter()
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            _ = try await exporter.stream(from: scanner, window: window, gzip: gzip) { chunk in
                try await writer.write(ByteBuffer(bytes: chunk))
            }
            try await writer.finish(nil)
        })
    }
}
