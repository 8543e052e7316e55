import AsyncHTTPClient
import Foundation
import NIOCore
import WaybillModel
import WaybillQuery
import WaybillStore

/// Hands the chunks of an export made on a thread of its own to an async consumer (an HTTP response
/// body), at most `capacity` chunks ahead: when the consumer is slower (a slow client), the export
/// waits, so memory stays bounded. When the consumer stops (client gone), the export ends with an error.
public final class OCELChunkPipe: @unchecked Sendable {
    private let condition = NSCondition()
    private var chunks: [[UInt8]] = []
    private var waiter: CheckedContinuation<[UInt8]?, any Error>?
    private var finished = false
    private var failure: (any Error)?
    private var cancelled = false
    public let capacity: Int

    public init(capacity: Int = 4) {
        self.capacity = max(1, capacity)
    }

    /// Producer: blocks while `capacity` chunks wait; throws once the consumer cancelled.
    public func put(_ chunk: [UInt8]) throws {
        condition.lock()
        while chunks.count >= capacity && !cancelled { condition.wait() }
        if cancelled {
            condition.unlock()
            throw CancellationError()
        }
        if let w = waiter {
            waiter = nil
            condition.unlock()
            w.resume(returning: chunk)
            return
        }
        chunks.append(chunk)
        condition.unlock()
    }

    /// Producer: no more chunks; `error` ends the stream with a failure.
    public func finish(_ error: (any Error)?) {
        condition.lock()
        finished = true
        failure = error
        let w = waiter
        waiter = nil
        condition.unlock()
        if let w {
            if let error { w.resume(throwing: error) } else { w.resume(returning: nil) }
        }
    }

    /// Consumer: the next chunk, or nil at the end.
    public func next() async throws -> [UInt8]? {
        try await withCheckedThrowingContinuation { (c: CheckedContinuation<[UInt8]?, any Error>) in
            condition.lock()
            if !chunks.isEmpty {
                let chunk = chunks.removeFirst()
                condition.signal()
                condition.unlock()
                c.resume(returning: chunk)
            } else if finished {
                let f = failure
                condition.unlock()
                if let f { c.resume(throwing: f) } else { c.resume(returning: nil) }
            } else {
                waiter = c
                condition.unlock()
            }
        }
    }

    /// Consumer: stop; a waiting or later `put` throws.
    public func cancel() {
        condition.lock()
        cancelled = true
        condition.broadcast()
        condition.unlock()
    }
}

extension OCELExporter {
    /// Runs the export on a thread of its own and streams it through `consume` (an HTTP body writer).
    /// `gzip` compresses the stream. Returns the summary once everything was consumed.
    public func stream(from scanner: any EventScanner, window: Range<Micros>, gzip: Bool,
                       consume: ([UInt8]) async throws -> Void) async throws -> OCELExportSummary
    {
        let pipe = OCELChunkPipe()
        let result = OCELResultBox()
        let exporter = self
        let thread = Thread {
            // Named from inside: on Linux, setting `name` before `start` renames the calling thread.
            Thread.current.name = "waybill-ocel-export"
            do {
                var summary: OCELExportSummary
                if gzip {
                    let z = try OCELGzipStream { try pipe.put($0) }
                    summary = try exporter.export(from: scanner, window: window) { try z.write($0) }
                    try z.finish()
                } else {
                    summary = try exporter.export(from: scanner, window: window) { try pipe.put($0) }
                }
                result.set(.success(summary))
                pipe.finish(nil)
            } catch {
                result.set(.failure(error))
                pipe.finish(error)
            }
        }
        thread.stackSize = 4 << 20
        thread.start()
        do {
            while let chunk = try await pipe.next() { try await consume(chunk) }
        } catch {
            pipe.cancel()
            throw error
        }
        return try result.get()
    }
}

final class OCELResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Result<OCELExportSummary, any Error>?
    func set(_ v: Result<OCELExportSummary, any Error>) {
        lock.lock()
        value = v
        lock.unlock()
    }

    func get() throws -> OCELExportSummary {
        lock.lock()
        defer { lock.unlock() }
        guard let value else { throw OCELExportError.temporary("the export ended without a result") }
        return try value.get()
    }
}

/// The export from a running server (`waybill export ocel --url`): `GET /api/v1/export/ocel`, the body
/// streamed through `write` as it arrives. A refused parameter comes back as `QueryFailure.badRequest`.
public enum OCELRemote {
    public static func export(url: String, token: String?, request: OCELRequest, gzip: Bool,
                              write: ([UInt8]) throws -> Void) async throws -> Int
    {
        let base = try RemoteQueries(url: url, token: token).base
        let target = base + "/api/v1/export/ocel" + (request.parameters.isEmpty ? "" : "?" + URLText.query(request.parameters))
        var req = HTTPClientRequest(url: target)
        req.headers.add(name: "Accept", value: "application/json")
        if gzip { req.headers.add(name: "Accept-Encoding", value: "gzip") }
        if let token { req.headers.add(name: "Authorization", value: "Bearer " + token) }
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(req, timeout: .hours(24))
        } catch {
            throw QueryFailure.transport("cannot reach \(base): \(error)")
        }
        guard response.status.code == 200 else {
            let body = try await response.body.collect(upTo: 1 << 20)
            let text = Array(body.readableBytesView)
            let message = (try? JSONParser.parse(text))?["error"]?.stringValue ?? String(decoding: text.prefix(300), as: UTF8.self)
            if response.status.code == 400, let colon = message.range(of: ": ") {
                throw QueryFailure.badRequest(FieldError(field: String(message[..<colon.lowerBound]), rule: String(message[colon.upperBound...])))
            }
            throw QueryFailure.server(status: Int(response.status.code), message: message)
        }
        if gzip, response.headers.first(name: "Content-Encoding")?.lowercased() != "gzip" {
            throw QueryFailure.transport("\(base) answered without gzip; ask without --out *.gz compression or upgrade the server")
        }
        var total = 0
        do {
            for try await buffer in response.body {
                total += buffer.readableBytes
                try write(Array(buffer.readableBytesView))
            }
        } catch let e as OCELExportError {
            throw e
        } catch {
            throw QueryFailure.transport("the export from \(base) broke off after \(total) bytes: \(error)")
        }
        return total
    }
}
