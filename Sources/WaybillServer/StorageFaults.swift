import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization
import WaybillModel
import WaybillStore

/// Storage faults as clients and operators see them: `503` with `Retry-After` on any route whose write
/// (or read) met a fault that may pass, `/healthz` naming the fault until a write succeeds again, and
/// the fault counters on `/metrics`.
extension APIError {
    /// `503 {"error": "storage fault (disk_full): database or disk is full; nothing was stored, retry after 5s"}`.
    init(fault: StorageFault) {
        self.init(.serviceUnavailable,
                  "storage fault (\(fault.kind.rawValue)): \(fault.message); nothing was stored, retry after \(fault.retryAfterSeconds)s",
                  headers: [.retryAfter: String(fault.retryAfterSeconds)])
    }
}

extension WaybillAPI {
    /// `200 {"status": "ok"}`, or while the store's writes fail
    /// `503 {"status": "unavailable", "storage": {"fault": KIND, "message": ..., "since": TIME, "faults": N}}`.
    func storageHealthResponse() -> Response {
        let h = store.storageHealth
        // A server started with --insecure-no-auth on a public address says so to whoever checks it.
        let auth: [String: JSONValue] = config.insecureNoAuth && !AccessTokens.isLoopback(config.host) ? ["auth": "disabled (--insecure-no-auth)"] : [:]
        guard let fault = h.fault else { return jsonResponse(.object(["status": "ok"].merging(auth) { a, _ in a })) }
        var storage: [String: JSONValue] = [
            "fault": .string(fault.kind.rawValue), "message": .string(fault.message),
            "faults": .number(Double(h.faults.values.reduce(0, +))),
        ]
        if let since = h.since { storage["since"] = .string(RFC3339.format(since)) }
        var r = jsonResponse(.object(["status": "unavailable", "storage": .object(storage)].merging(auth) { a, _ in a }), status: .serviceUnavailable)
        r.headers[.retryAfter] = String(fault.retryAfterSeconds)
        return r
    }
}

/// Logs a storage fault the first time a route meets it, then at most once a minute per kind, so a full
/// disk under a stream of retries does not fill the log as well.
final class FaultLog: Sendable {
    private let last = Mutex<[StorageFault.Kind: Micros]>([:])

    func record(_ fault: StorageFault, path: String, logger: Logger) {
        let now = currentMicros()
        let due = last.withLock { seen in
            if let t = seen[fault.kind], now - t < 60_000_000 { return false }
            seen[fault.kind] = now
            return true
        }
        if due {
            logger.warning("storage fault: answering 503 with Retry-After until a write succeeds",
                           metadata: ["kind": "\(fault.kind.rawValue)", "error": "\(fault)", "path": "\(path)"])
        }
    }
}
