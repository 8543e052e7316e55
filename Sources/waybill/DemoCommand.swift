import ArgumentParser
import Foundation
import Logging
import WaybillAlerts
import WaybillKPI
import WaybillModel
import WaybillServer
import WaybillServices
import WaybillSQLite
import WaybillStore

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start the server with the embedded orchestration and allocation services under a simulated workload.",
        discussion: """
            Backfills a few days of history, then keeps the services running in real time (or faster with --speed) until interrupted. \
            The services' state is checkpointed in the store: `demo --db PATH` on an existing demo store resumes its workflows \
            (with the seed, orders a day and faults it was started with) instead of backfilling.
            """)

    @Option(help: "Port.") var port = 4318
    @Option(help: "Address to listen on.") var host = "127.0.0.1"
    @Flag(name: .long, help: "Serve a non-loopback address although no access token exists (anyone who reaches the port can read and write).")
    var insecureNoAuth = false
    @Option(help: "Store file (default: a new one in a temporary directory). An existing demo store is resumed.") var db: String?
    @Option(name: .customLong("store"), help: "A ClickHouse store instead of --db: clickhouse://USER@HOST:PORT[,HOST:PORT...]/DATABASE[?cluster=NAME] (password from $WAYBILL_CLICKHOUSE_PASSWORD). A demo already in it is resumed.")
    var storeURL: String?
    @OptionGroup var collectors: CollectorsConfigOptions
    @OptionGroup var alertRules: AlertConfigOptions
    @Flag(help: "Delete the --db file first if it exists, instead of resuming it.") var reset = false
    @Option(help: "Simulated time runs this many times faster than real time after the backfill.") var speed: Double = 1
    @Option(help: "Average orders a day.") var ordersPerDay: Double = 5_000
    @Option(help: "Days of history to backfill.") var backfillDays: Double = 3
    @Option(help: "Random seed.") var seed: UInt64 = 1
    @Option(help: "Fault injection, as for `waybill simulate`.") var faults = "erp-latency=3s@14:00-15:00,short-pick=0.02,duplicate=0.02,reorder=0.05,late-arrival=0.01"

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port: must be from 1 to 65535") }
        guard speed > 0 else { throw ValidationError("--speed: must be positive") }
        guard ordersPerDay > 0 else { throw ValidationError("--orders-per-day: must be positive") }
        guard backfillDays >= 0 else { throw ValidationError("--backfill-days: must be 0 or more") }
        do { _ = try StoreLocation.resolve(db: db, store: storeURL) } catch { throw ValidationError("\(error)") }
        if storeURL != nil && reset { throw ValidationError("--reset applies to a --db file; for a ClickHouse store, name a new DATABASE in --store") }
    }

    func run() async throws {
        let path: String
        var resuming = false
        if let storeURL {
            path = StoreLocation.clickHouse(url: storeURL).description
        } else if let db {
            if FileManager.default.fileExists(atPath: db) {
                if reset {
                    for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: db + suffix) }
                } else {
                    resuming = true
                }
            }
            path = db
        } else {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("waybill-demo-\(getpid())")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            path = dir.appendingPathComponent("waybill.db").path
        }
        var options = DemoService.Options()
        options.seed = seed
        options.ordersPerDay = ordersPerDay
        options.backfillDays = backfillDays
        options.speed = speed
        do { options.faults = try FaultPlan.parse(faults, warehouses: FulfilmentNetwork.standard.warehouses.map(\.id)) } catch {
            throw CLIError("--faults: \(error)")
        }
        let location: StoreLocation = storeURL.map { .clickHouse(url: $0) } ?? .embedded(path: path)
        let store = try await location.open(sqlite: try collectors.serverStoreOptions())
        defer { store.close() }
        if location.isClickHouse { resuming = try store.loadCheckpoint(name: DemoService.checkpointName) != nil }
        if resuming, !location.isClickHouse, try store.loadCheckpoint(name: DemoService.checkpointName) == nil {
            throw CLIError("\(path) exists but holds no demo checkpoint; pass --reset to replace it, or choose another --db")
        }
        var config = ServerConfig()
        config.host = host
        config.port = port
        config.insecureNoAuth = insecureNoAuth
        do { try AccessTokens.checkExposure(host: host, store: store, insecureNoAuth: insecureNoAuth) } catch { throw CLIError("\(error)") }
        if insecureNoAuth && !AccessTokens.isLoopback(host) {
            printErr("waybill: WARNING: --insecure-no-auth: serving \(host) without tokens; anyone who reaches the port can read and write")
        }
        var logger = Logger(label: "waybill")
        logger.logLevel = .info
        let base = "http://\(host):\(port)"
        let exe = CommandLine.arguments.first ?? "waybill"
        if resuming {
            printErr("waybill demo: store \(path); resuming its checkpoint...")
        } else {
            printErr("waybill demo: store \(path); simulating \(Int(ordersPerDay)) orders/day, backfilling \(backfillDays) days...")
        }
        let desk = OrderDesk()
        let demo = DemoService(store: store, checkpoints: store, options: options, desk: desk, logger: logger) { ready in
            // Unbuffered, so a pipe reader sees it at once.
            FileHandle.standardOutput.write(Data(Self.welcome(store: store, base: base, exe: exe, path: path, resumed: ready.resumed).utf8))
        }
        let rules = try alertRules.load(required: false) ?? DemoService.shippedAlertRules()
        let alerting = Alerting(config: rules, source: StoreAlertSource(store: store, correlationKeys: try collectors.storeOptions().correlationKeys),
                                store: store, baseURL: base)
        if !alerting.worker.missingSecrets().isEmpty {
            throw CLIError("alert hooks name secrets that are not set: \(alerting.worker.missingSecrets().joined(separator: "; "))")
        }
        config.rulesPaths = alertRules.paths(required: false)
        config.reloadRulesOnSIGHUP = true
        let app = buildApplication(store: store, config: config, logger: logger, services: [demo], orderDesk: desk, alerting: alerting,
                                   ingestObserver: demo.ingestObserver)
        try await app.runService()
    }

    /// What to look at, with order ids taken from the store.
    static func welcome(store: any WaybillStore, base: String, exe: String, path: String, resumed: DemoService.Resumed?) -> String {
        let now = currentMicros()
        func first(_ p: [String: String]) -> String? {
            (try? store.searchOrders(OrderQuery(parameters: p.merging(["limit": "1"]) { a, _ in a }, now: now)))?.orders.first?.correlationID
        }
        let stats = try? store.stats()
        var out = "\nWaybill demo is running: \(base)/\n"
        out += "  store \(path): \(stats?.orders ?? 0) orders, \(stats?.events ?? 0) events\n"
        if let r = resumed {
            out += "  resumed from its checkpoint (no backfill): \(r.workflowsInFlight) workflows in flight, \(r.idempotencyKeys) idempotency keys; "
            out += "simulated clock caught up from \(RFC3339.format(r.from)) to \(RFC3339.format(r.caughtUpTo)) "
            out += "(seed \(r.seed), \(Int(r.ordersPerDay)) orders/day, as first started)\n"
        }
        out += "\nTry:\n"
        if let o = first(["state": "invoiced"]) { out += "  \(exe) trace \(o) --url \(base)      # a complete order, across oms, erp, allocation, wms, tms, carrier\n" }
        if let o = first(["type": "order.short_picked"]) { out += "  \(exe) trace \(o) --url \(base)      # a short pick, re-allocated\n" }
        if let o = first(["type": "order.exception"]) { out += "  \(exe) trace \(o) --url \(base)      # an order that ended in an exception\n" }
        out += "  \(exe) search --stuck 4h --url \(base)          # orders that stopped moving\n"
        out += "  \(exe) alerts --url \(base)                     # SLA, KPI and error-rate alerts, each with its orders (\(base)/alerts)\n"
        out += "  \(exe) kpi --from -\(3)d --by warehouse --url \(base)\n"
        out += "  \(base)/api/v1/kpis?format=html&by=warehouse&step=1d   (KPI report in a browser)\n"
        out += "  \(base)/                                               (overview: KPIs, alerts, stuck orders, ingest, services)\n"
        if let o = first(["type": "order.short_picked"]) { out += "  \(base)/orders/\(URLText.pathSegment(o))                    (an order: timeline, spans, why it is late)\n" }
        out += "  curl -s -XPOST \(base)/api/v1/orders -H 'Idempotency-Key: k1' -H 'Content-Type: application/json' \\\n"
        out += "       -d '{\"region\":\"northeast\",\"lines\":[{\"sku\":\"SKU-10001\",\"qty\":2}]}'   (submit an order, then trace it)\n\nCtrl-C stops it.\n"
        return out
    }
}
