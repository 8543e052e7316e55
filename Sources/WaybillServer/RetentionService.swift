import Foundation
import Logging
import ServiceLifecycle
import WaybillModel
import WaybillStore

/// Deletes events older than the retention period, once at start and then every `interval`.
/// Ends with the service group (graceful shutdown).
struct RetentionService: Service {
    let store: any WaybillStore
    let retention: Micros
    let interval: Micros
    let clock: any ServiceClock
    let logger: Logger

    func run() async throws {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let cutoff = clock.now() - retention
            do {
                let n = try await store.deleteEvents(before: cutoff)
                if n > 0 {
                    logger.info("retention removed events", metadata: ["events": "\(n)", "before": "\(RFC3339.format(cutoff))"])
                    try await store.appendAudit(AuditEntry(at: clock.now(), actor: "waybill", action: "retention",
                                                           detail: "removed \(n) events before \(RFC3339.format(cutoff))"))
                }
            } catch {
                logger.error("retention failed", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await clock.sleep(for: interval) }
        }
    }
}
