import Foundation
import Hummingbird
import NIOCore
import WaybillCollectors
import WaybillModel
import WaybillStore

extension Request {
    /// The `Content-Type` without its parameters, lowercased (`application/x-protobuf`); nil when absent.
    var mediaType: String? {
        headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
    }
}

extension WaybillAPI {
    /// `POST /v1/traces`: OTLP/HTTP traces, protobuf or JSON, gzip or not, answered with
    /// `ExportTraceServiceResponse` (its `partialSuccess` names the spans refused and why).
    func postTraces(_ req: Request) async throws -> Response {
        let base = req.mediaType
        let protobuf = base == "application/x-protobuf"
        guard base == "application/json" || protobuf else {
            metrics.rejectedBodies.increment()
            throw APIError(.unsupportedMediaType, "Content-Type \(base.map { "'\($0)'" } ?? "missing"): send application/x-protobuf or application/json (OTLP)")
        }
        let buffer = try await req.collectBody(upTo: config.maxBodyBytes)
        var bytes = Array(buffer.readableBytesView)
        let decoded: DecodedSpans
        do {
            switch req.headers[.contentEncoding]?.lowercased() ?? "identity" {
            case "identity", "": break
            case "gzip", "x-gzip": bytes = try EventDecoder.inflate(bytes, limit: config.maxBodyBytes)
            case let other: throw BodyError.unsupportedMediaType("Content-Encoding '\(other)': only gzip is supported")
            }
            decoded = protobuf ? try OTLPProtobuf.decode(bytes) : try OTLPJSON.decode(bytes)
        } catch let e as BodyError {
            metrics.rejectedBodies.increment()
            throw APIError(HTTPResponse.Status(code: e.httpStatus), e.description)
        }
        let result: AppendResult
        let started = ContinuousClock.now
        do {
            result = try await store.appendSpans(decoded.spans)
        } catch StoreError.overloaded(let retry) {
            metrics.throttled.increment()
            throw APIError(.tooManyRequests, "ingest queue is full; retry after \(retry)s", headers: [.retryAfter: String(retry)])
        } catch StoreError.unavailable(let m) {
            throw APIError(.serviceUnavailable, m, headers: [.retryAfter: "5"])
        }
        metrics.commit(signal: "spans", since: started)
        metrics.spans(decoded.spans, rejected: decoded.rejected.count, result: result)
        let message = decoded.rejected.prefix(5).map { "\($0.path): \($0.error)" }.joined(separator: "; ")
        if protobuf {
            // The OTLP response is in the request's encoding.
            return Response(status: .ok, headers: [.contentType: "application/x-protobuf"],
                            body: .init(byteBuffer: ByteBuffer(bytes: OTLPProtobuf.response(rejected: decoded.rejected.count, message: message))))
        }
        if decoded.rejected.isEmpty { return jsonResponse(.object([:])) }
        return jsonResponse(.object(["partialSuccess": .object([
            "rejectedSpans": .string(String(decoded.rejected.count)), "errorMessage": .string(message),
        ])]))
    }
}
