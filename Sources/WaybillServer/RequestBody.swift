import Hummingbird
import NIOCore

extension Request {
    /// The body, at most `limit` bytes. A larger body is answered `413` only after the rest has been
    /// read and dropped (up to `drainLimit` bytes, then the connection is closed): clients that write
    /// their whole body before they read the answer (Python's `urllib` and `requests`, the OpenTelemetry
    /// exporters) would otherwise wait for their own timeout, since a server that stops reading leaves
    /// them blocked on a full socket.
    func collectBody(upTo limit: Int, drainLimit: Int = 256 << 20) async throws -> ByteBuffer {
        var collected = ByteBuffer()
        var seen = 0
        for try await chunk in body {
            seen += chunk.readableBytes
            if seen <= limit {
                var c = chunk
                collected.writeBuffer(&c)
            } else if seen > drainLimit {
                break
            }
        }
        guard seen <= limit else {
            throw APIError(.contentTooLarge, "request body too large: more than \(limit) bytes", headers: [.connection: "close"])
        }
        return collected
    }
}
