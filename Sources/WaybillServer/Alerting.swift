import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import ServiceLifecycle
import WaybillAlerts
import WaybillQuery
import WaybillModel
import WaybillStore

/// POSTs notifications with AsyncHTTPClient.
public struct HTTPNotificationTransport: NotificationTransport {
    public init() {}

    public func post(url: String, headers: [(String, String)], body: [UInt8], timeout: Micros) async -> TransportResult {
        var req = HTTPClientRequest(url: url)
        req.method = .POST
        for (k, v) in headers { req.headers.add(name: k, value: v) }
        req.body = .bytes(ByteBuffer(bytes: body))
        do {
            let resp = try await HTTPClient.shared.execute(req, timeout: .microseconds(timeout))
            let text = try await resp.body.collect(upTo: 64 * 1024)
            return .status(Int(resp.status.code), body: String(buffer: text))
        } catch {
            return .failure("\(error)")
        }
    }
}

/// Alerting as the server runs it: the engine, a replay source and the delivery worker. `reload` puts
/// new rules and hooks in force without a restart (`POST /api/v1/rules/reload`, `SIGHUP`).
public struct Alerting: Sendable {
    public let engine: AlertEngine
    public let source: any AlertSource
    /// The rules and hooks in force.
    public var config: AlertConfig { engine.config }
    /// The delivery worker of the hooks in force (the rules' and `extraHooks`).
    public var worker: DeliveryWorker { workers.current }
    private let workers: SharedValue<DeliveryWorker>
    private let store: any AlertStore
    private let extraHooks: [HookConfig]
    public let transport: any NotificationTransport
    /// Counts each hook's delivery attempts and failures into the server's `/metrics` once attached.
    public let deliveries: DeliveryObserver
    private let log: @Sendable (String) -> Void

    /// `extraHooks`: hooks of other senders sharing the outbox (saved reports' `deliver`), delivered by the same worker.
    public init(config: AlertConfig, source: any AlertSource, store: any AlertStore, baseURL: String,
                transport: any NotificationTransport = HTTPNotificationTransport(), logger: Logger = Logger(label: "waybill.alerts"),
                extraHooks: [HookConfig] = []) {
        let deliveries = DeliveryObserver()
        self.deliveries = deliveries
        let transport: any NotificationTransport = ObservedTransport(inner: transport, observer: deliveries)
        self.source = source
        self.transport = transport
        self.store = store
        self.extraHooks = extraHooks
        self.engine = AlertEngine(config: config, source: source, store: store, baseURL: baseURL)
        let log = logger
        self.log = { log.warning("\($0)") }
        self.workers = SharedValue(DeliveryWorker(store: store, hooks: config.hooks + extraHooks, maxAttempts: config.maxAttempts,
                                                   transport: transport, log: self.log))
    }

    /// Puts `new` rules and hooks in force from the next evaluation and delivery on. Refused, with the rules
    /// in force kept, when a hook names a secret that is not set or a rule's indexes cannot be readied.
    /// Notifications already queued for a hook that is gone are given up by the worker as for any unknown hook.
    public func reload(_ new: AlertConfig) async throws {
        let worker = DeliveryWorker(store: store, hooks: new.hooks + extraHooks, maxAttempts: new.maxAttempts, transport: transport, log: log)
        let missing = worker.missingSecrets()
        guard missing.isEmpty else {
            throw FieldError(field: "hooks", rule: "name secrets that are not set in the server's environment: \(missing.joined(separator: "; "))")
        }
        try await engine.reload(new)
        workers.set(worker)
        deliveries.update(hooks: worker.hookURLs, names: worker.hookNames)
    }
}

/// Evaluates the rules at every multiple of `evaluation_interval` (so that live ticks and `--at` replays
/// line up), pushes active alerts to Alertmanager when configured, and drains the outbox every second.
struct AlertService: Service {
    let alerting: Alerting
    let clock: any ServiceClock
    let logger: Logger
    var metrics: ServerMetrics?

    /// Evaluation and delivery run on a thread of their own: the rules' reads are synchronous (a KPI
    /// window, overdue orders, the outbox) and, over a network store, wait on it; on Swift's cooperative
    /// pool (one thread per core) they would hold threads every request handler needs.
    func run() async throws {
        let thread = ReadExecutor(threads: 1, name: "waybill-alerts")
        defer { thread.stop() }
        try await withTaskExecutorPreference(thread) { try await runAlerting() }
    }

    private func runAlerting() async throws {
        do {
            try await alerting.engine.start()
        } catch {
            logger.error("alerting could not start", metadata: ["error": "\(error)"])
            return
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await evaluationLoop() }
            group.addTask { await deliveryLoop() }
            await group.waitForAll()
        }
    }

    func evaluationLoop() async {
        let interval = alerting.config.evaluationInterval
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            let next = (clock.now() / interval + 1) * interval
            try? await cancelWhenGracefulShutdown { try await clock.sleep(until: next) }
            if Task.isShuttingDownGracefully || Task.isCancelled { return }
            do {
                let started = ContinuousClock.now
                let records = try await alerting.engine.evaluate(at: next)
                metrics?.alertEvaluation(since: started)
                if let am = alerting.config.alertmanager { await push(records, to: am, at: next) }
            } catch {
                logger.error("alert evaluation failed", metadata: ["error": "\(error)"])
            }
        }
    }

    func push(_ records: [AlertRecord], to base: String, at t: Micros) async {
        let body = AlertPayloads.alertmanagerPush(records, at: t, interval: alerting.config.evaluationInterval, base: alerting.engine.baseURL)
        guard case .array(let a) = body, !a.isEmpty else { return }
        let r = await alerting.transport.post(url: base + "/api/v2/alerts", headers: [("Content-Type", "application/json")],
                                              body: body.jsonBytes, timeout: 10_000_000)
        switch r {
        case .status(let code, _) where (200..<300).contains(code): break
        case .status(let code, let text): logger.warning("alertmanager refused alerts", metadata: ["status": "\(code)", "body": "\(text.prefix(200))"])
        case .failure(let e): logger.warning("alertmanager unreachable", metadata: ["error": "\(e)"])
        }
    }

    func deliveryLoop() async {
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do {
                try await alerting.worker.runOnce(now: clock.now())
            } catch {
                logger.error("alert delivery failed", metadata: ["error": "\(error)"])
            }
            try? await cancelWhenGracefulShutdown { try await clock.sleep(for: 1_000_000) }
        }
    }
}
