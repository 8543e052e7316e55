import ArgumentParser
import Foundation
import Logging
import WaybillAlerts
import WaybillClickHouse
import WaybillKPI
import WaybillModel
import WaybillQuery
import WaybillServer
import WaybillSQLite
import WaybillStore

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the server: collectors, query API, alert evaluation, web pages, health/metrics endpoints.")

    @Option(name: .long, help: "Port (4318 is the OTLP/HTTP port).")
    var port = 4318

    @Option(name: .long, help: "Address to listen on.")
    var host = "127.0.0.1"
    @Flag(name: .long, help: "Serve a non-loopback address although no access token exists (anyone who reaches the port can read and write).")
    var insecureNoAuth = false
    @Option(name: .long, help: "Connections open at once; one more is closed as it is accepted.") var maxConnections = 1024
    @Option(name: .long, help: "A started request must be answered within this (e.g. 60s); a client trickling its request is cut off.")
    var requestTimeout = "60s"
    @Option(name: .long, help: "TLS certificate chain (PEM); with --tls-key. Read again when the file changes.") var tlsCert: String?
    @Option(name: .long, help: "TLS private key (PEM).") var tlsKey: String?
    @Option(name: .long, help: "Require client certificates signed by this CA (PEM): mutual TLS.") var tlsClientCa: String?
    @Option(name: .long, help: "Requests a second each token may make on the ingest routes (429 with Retry-After beyond it). Default: no limit.")
    var ingestRateLimit: Double?
    @Option(name: .long, help: "With --ingest-rate-limit: requests a token may make at once (default: 2 seconds' worth).")
    var ingestBurst: Int?

    @Option(name: .long, help: "Embedded store file (default: $WAYBILL_DB or ./waybill.db).")
    var db: String?

    @Option(name: .customLong("store"), help: ArgumentHelp(
        "A ClickHouse store instead of --db: clickhouse://USER@HOST:PORT[,HOST:PORT...]/DATABASE[?cluster=NAME] (HTTP ports; password from $WAYBILL_CLICKHOUSE_PASSWORD).",
        valueName: "url"))
    var storeURL: String?

    @Flag(name: .long, help: "Evaluate the alert rules and deliver notifications in this server (rules from --config, $WAYBILL_ALERTS or ./queries/alerts). On a ClickHouse store shared by several servers, start exactly one with --alerts; the others ingest and answer queries. With --db, loaded rules are evaluated with or without it.")
    var alerts = false

    @Option(name: .long, help: "Largest request body in bytes, also after gzip decompression.")
    var maxBody = 16 << 20

    @Option(name: .long, help: "Events queued for the writer beyond which ingest answers 429.")
    var maxQueuedEvents = 20_000

    @Option(name: .long, help: "SQLite synchronous mode: full (survives power loss) or normal (survives process crashes).")
    var sync = "full"

    @Option(name: .long, help: "Delete events older than this (e.g. 90d), checked hourly. Default: keep everything.")
    var retention: String?

    @OptionGroup var alertRules: AlertConfigOptions
    @Option(name: .customLong("queries"), help: "Saved queries folder (reports/, searches/): reports served at /api/v1/reports, scheduled ones delivered.")
    var queriesDirectory: String?
    @Option(name: .long, help: "Dashboards folder: overview.yaml defines the panels of the overview page (/). Default: ./dashboards when it has one, else the shipped copy.")
    var dashboards: String?
    @OptionGroup var collectors: CollectorsConfigOptions

    func validate() throws {
        if let r = retention, DurationText.parse(r) == nil { throw ValidationError("--retention: must be a duration such as 30d") }
        do { _ = try StoreLocation.resolve(db: db, store: storeURL) } catch { throw ValidationError("\(error)") }
        guard (1...65535).contains(port) else { throw ValidationError("--port: must be from 1 to 65535") }
        guard ["full", "normal"].contains(sync.lowercased()) else { throw ValidationError("--sync: must be full or normal") }
        guard maxBody >= 1024 else { throw ValidationError("--max-body: must be at least 1024 bytes") }
    }

    func run() async throws {
        let location = try StoreLocation.resolve(db: db, store: storeURL)
        // A bad dashboard file refuses the start, naming file, line and field.
        let dashboard: Dashboard
        do { dashboard = try Dashboard.forServe(folder: dashboards) } catch { throw CLIError("\(error)") }
        var rules = try alertRules.load(required: alerts)
        // Several servers may share one ClickHouse store: only the one started with --alerts evaluates the rules
        // and delivers notifications (else each would notify, and they would overwrite each other's alert state).
        // The others answer the alert queries by evaluating the same rules over the shared store.
        var readOnlyRules: AlertConfig?
        if location.isClickHouse && !alerts && rules != nil {
            printErr("waybill: the alert rules are not evaluated by this server, only answered from the store: "
                     + "on a shared ClickHouse store the server started with --alerts evaluates them and delivers notifications")
            readOnlyRules = rules
            rules = nil
        }
        var options = try collectors.serverStoreOptions()
        options.synchronous = sync.uppercased()
        options.maxQueuedEvents = maxQueuedEvents
        let store = try await location.open(sqlite: options)
        defer { store.close() }
        // On ClickHouse, the trace documents' step comparison buckets are computed in the background (docs/clickhouse.md).
        (store as? ClickHouseStore)?.warmStepRollups()
        var config = ServerConfig()
        config.host = host
        config.dashboard = dashboard
        config.port = port
        config.insecureNoAuth = insecureNoAuth
        guard maxConnections >= 1 else { throw CLIError("--max-connections: must be at least 1") }
        guard let timeout = DurationText.parse(requestTimeout), timeout >= 1_000_000 else {
            throw CLIError("--request-timeout: must be a duration of at least 1s, e.g. 60s")
        }
        config.connectionLimits = ConnectionLimits(maxConnections: maxConnections, requestTimeout: .microseconds(timeout))
        if tlsCert != nil || tlsKey != nil || tlsClientCa != nil {
            guard let cert = tlsCert, let key = tlsKey else { throw CLIError("--tls-cert and --tls-key go together (and --tls-client-ca needs both)") }
            var log = Logger(label: "waybill.tls")
            log.logLevel = .info
            do { config.tls = try TLSFiles(.init(certificate: cert, key: key, clientCA: tlsClientCa), logger: log) } catch { throw CLIError("\(error)") }
        }
        if let r = ingestRateLimit {
            guard r > 0, (ingestBurst ?? 1) >= 1 else { throw CLIError("--ingest-rate-limit: must be positive, and --ingest-burst at least 1") }
            config.ingestRateLimit = RateLimit(perSecond: r, burst: ingestBurst ?? max(1, Int((2 * r).rounded(.up))))
        }
        do { try AccessTokens.checkExposure(host: host, store: store, insecureNoAuth: insecureNoAuth) } catch { throw CLIError("\(error)") }
        if insecureNoAuth && !AccessTokens.isLoopback(host) {
            printErr("waybill: WARNING: --insecure-no-auth: serving \(host) without tokens; anyone who reaches the port can read and write")
        }
        config.maxBodyBytes = maxBody
        config.retention = retention.flatMap(DurationText.parse)
        var alerting: Alerting?
        let saved = try servedQueries()
        config.savedQueries = saved
        // Scheduled reports go out from the server that delivers alerts (on a shared ClickHouse store, the --alerts one).
        let reportsOnly = location.isClickHouse && !alerts ? nil : saved.flatMap { $0.deliveryHooks.isEmpty ? nil : AlertConfig() }
        if let rules = rules ?? reportsOnly {
            let a = Alerting(config: rules, source: StoreAlertSource(store: store, correlationKeys: options.correlationKeys), store: store,
                             baseURL: "http://\(host):\(port)", extraHooks: saved?.deliveryHooks ?? [])
            let missing = a.worker.missingSecrets()
            if !missing.isEmpty {
                throw CLIError("alert hooks name secrets that are not set in the environment: \(missing.joined(separator: "; ")) "
                               + "(set them, or drop secret_env from the hook to send unsigned notifications)")
            }
            printErr("waybill: \(rules.rules.count) alert rules, \(rules.hooks.count) hooks, evaluated every \(DurationText.format(rules.evaluationInterval))")
            if rules.rules.count > 0 || rules.hooks.count > 0 {
                // A start with changed rules is a rules reload: the audit log records it once, with who and which files.
                try await RulesAudit.record(paths: alertRules.paths(required: alerts), rules: rules.rules.count, hooks: rules.hooks.count,
                                            store: store, actor: TokenStoreOptions.actor, at: currentMicros())
            }
            alerting = a
        }
        let view = readOnlyRules.map {
            AlertRulesView(config: $0, source: StoreAlertSource(store: store, correlationKeys: options.correlationKeys), baseURL: "http://\(host):\(port)")
        }
        config.rulesPaths = alertRules.paths(required: alerts)
        config.reloadRulesOnSIGHUP = true
        let app = buildApplication(store: store, config: config, alerting: alerting, alertRules: view)
        printErr("waybill: serving \(config.tls == nil ? "http" : "https")://\(host):\(port) (store \(location.description))"
                 + (location.isClickHouse ? (alerting != nil ? "; evaluating alerts" : "; not evaluating alerts (no --alerts)") : ""))
        try await app.runService()
    }
}
