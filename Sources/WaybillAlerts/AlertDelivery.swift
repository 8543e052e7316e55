import Foundation
import WaybillModel
import WaybillStore

public enum TransportResult: Sendable, Hashable {
    case status(Int, body: String)
    case failure(String)
}

/// Sends one HTTP POST; the server uses AsyncHTTPClient, tests a recording fake.
public protocol NotificationTransport: Sendable {
    func post(url: String, headers: [(String, String)], body: [UInt8], timeout: Micros) async -> TransportResult
}

/// The headers of one notification to `hook` sent at `timestamp` (seconds): its content type, the
/// timestamp and, when the hook names a secret that `environment` holds, the signature. Every sender
/// (the outbox worker, `waybill report --send`) signs through this.
public enum DeliveryHeaders {
    public static func headers(for hook: HookConfig, body: [UInt8], timestamp: Int64, environment: [String: String]) -> [(String, String)] {
        var h = [("Content-Type", hook.contentType), ("User-Agent", "waybill"), ("X-Waybill-Timestamp", String(timestamp))]
        if let env = hook.secretEnv, let secret = environment[env] {
            h.append(("X-Waybill-Signature", HookSignature.sign(secret: Array(secret.utf8), timestamp: timestamp, body: body)))
        }
        return h
    }
}

/// The delivery pipeline's last stages over the durable outbox: sign, send, retry with exponential
/// backoff and jitter (connection errors, timeouts, 5xx), give up on 4xx or after `maxAttempts`.
public struct DeliveryWorker: Sendable {
    public let store: any AlertStore
    public let hooks: [String: HookConfig]
    public let transport: any NotificationTransport
    public let maxAttempts: Int
    /// Where `secret_env` names are looked up (the process environment).
    public let environment: [String: String]
    public let jitter: @Sendable () -> Double
    public let log: @Sendable (String) -> Void

    public init(store: any AlertStore, config: AlertConfig, transport: any NotificationTransport,
                environment: [String: String] = ProcessInfo.processInfo.environment,
                jitter: @escaping @Sendable () -> Double = { Double.random(in: 0...1) },
                log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.init(store: store, hooks: config.hooks, maxAttempts: config.maxAttempts, transport: transport, environment: environment,
                  jitter: jitter, log: log)
    }

    /// A worker for any hooks sharing the outbox (the alert rules' and the saved reports'); one worker
    /// drains the outbox, so it must know every hook named there.
    public init(store: any AlertStore, hooks: [HookConfig], maxAttempts: Int, transport: any NotificationTransport,
                environment: [String: String] = ProcessInfo.processInfo.environment,
                jitter: @escaping @Sendable () -> Double = { Double.random(in: 0...1) },
                log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.store = store
        self.hooks = Dictionary(hooks.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        self.transport = transport
        self.maxAttempts = maxAttempts
        self.environment = environment
        self.jitter = jitter
        self.log = log
    }

    /// The wait before attempt `attempts + 1`: 1 s doubling per attempt, at most 10 min, scaled by a
    /// jitter in [0.5, 1] so that hooks failing together do not retry together.
    public static func backoff(afterAttempts attempts: Int, jitter: Double) -> Micros {
        let base = min(Double(1_000_000) * pow(2, Double(max(0, attempts - 1))), 600_000_000)
        return Micros(base * (0.5 + 0.5 * min(max(jitter, 0), 1)))
    }

    /// Secrets named by the hooks that the environment does not hold.
    public func missingSecrets() -> [String] {
        hooks.values.compactMap { h in h.secretEnv.flatMap { environment[$0] == nil ? "\(h.name): \($0)" : nil } }.sorted()
    }

    /// The headers of one notification sent at `timestamp`.
    public func headers(for hook: HookConfig, body: [UInt8], timestamp: Int64) -> [(String, String)] {
        DeliveryHeaders.headers(for: hook, body: body, timestamp: timestamp, environment: environment)
    }

    /// Sends every notification due at `now`; returns how many were attempted.
    @discardableResult
    public func runOnce(now: Micros, limit: Int = 100) async throws -> Int {
        let due = try store.dueNotifications(now: now, limit: limit)
        for item in due {
            let attempts = item.attempts + 1
            guard let hook = hooks[item.hook] else {
                try await store.recordDelivery(id: item.id, attempts: item.attempts,
                                               outcome: .failed(at: now, error: "hook '\(item.hook)' is no longer configured"))
                continue
            }
            let result = await transport.post(url: hook.url, headers: headers(for: hook, body: item.body, timestamp: now / 1_000_000),
                                              body: item.body, timeout: hook.timeout)
            let outcome: DeliveryOutcome
            switch result {
            case .status(let code, _) where (200..<300).contains(code):
                outcome = .delivered(at: now)
            case .status(let code, let body) where (400..<500).contains(code) && code != 408 && code != 429:
                outcome = .failed(at: now, error: "HTTP \(code): \(body.prefix(200))")
                log("notification \(item.id) to hook '\(hook.name)' refused with HTTP \(code); not retried: \(body.prefix(200))")
            case .status(let code, let body):
                outcome = retryOrFail(item, attempts: attempts, now: now, error: "HTTP \(code): \(body.prefix(200))")
            case .failure(let e):
                outcome = retryOrFail(item, attempts: attempts, now: now, error: e)
            }
            try await store.recordDelivery(id: item.id, attempts: attempts, outcome: outcome)
        }
        return due.count
    }

    func retryOrFail(_ item: OutboxItem, attempts: Int, now: Micros, error: String) -> DeliveryOutcome {
        if attempts >= maxAttempts {
            log("notification \(item.id) to hook '\(item.hook)' given up after \(attempts) attempts: \(error)")
            return .failed(at: now, error: error)
        }
        return .retry(at: now + Self.backoff(afterAttempts: attempts, jitter: jitter()), error: error)
    }
}
