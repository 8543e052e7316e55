import ArgumentParser
import Foundation
import WaybillAlerts
import WaybillModel
import WaybillQuery
import WaybillSQLite
import WaybillStore

struct AlertsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "alerts",
        abstract: "Alerts and alert rules: list (default), check, rules.",
        subcommands: [AlertsList.self, AlertsCheck.self, AlertsRules.self],
        defaultSubcommand: AlertsList.self)
}

/// Rules files given with --config, or $WAYBILL_ALERTS, or ./queries/alerts when it exists.
struct AlertConfigOptions: ParsableArguments {
    @Option(name: .long, help: "Alert rules: a YAML file or a directory of them (default: $WAYBILL_ALERTS, else ./queries/alerts).")
    var config: [String] = []

    /// The files or directories the rules are read from.
    func paths(required: Bool) -> [String] {
        var paths = config
        if paths.isEmpty, let env = ProcessInfo.processInfo.environment["WAYBILL_ALERTS"] { paths = [env] }
        if paths.isEmpty, required, FileManager.default.fileExists(atPath: "queries/alerts") { paths = ["queries/alerts"] }
        return paths
    }

    /// - Parameter required: reading commands need rules and fall back to ./queries/alerts; the server runs without.
    func load(required: Bool) throws -> AlertConfig? {
        let paths = paths(required: required)
        if paths.isEmpty {
            if required { throw CLIError("no alert rules: pass --config FILE (or a directory), or set WAYBILL_ALERTS") }
            return nil
        }
        do {
            return try AlertConfig.load(paths: paths)
        } catch let e as AlertConfigError {
            throw CLIError(e.description)
        }
    }
}

struct AlertsList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "list",
        abstract: "Pending, firing and just-resolved alerts: live from a server (--url), or evaluated over the store (--db) now or --at a past instant.")

    @Option(parsing: .unconditional, help: "Evaluate as of this instant (RFC 3339 or relative like -2h); events after it are invisible.") var at: String?
    @Option(help: "Only alerts in this state: pending, firing or resolved.") var state: String?
    @Option(help: "Benchmark: evaluate each rule this many times (live path, --db only) and print timings to stderr.") var timings: Int?
    @OptionGroup var rules: AlertConfigOptions
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: FormatOptions

    func validate() throws {
        if let s = state, AlertState(rawValue: s) == nil { throw ValidationError("--state: must be pending, firing or resolved") }
        if let n = timings, n < 1 { throw ValidationError("--timings: must be at least 1") }
    }

    func run() async throws {
        let config = store.url == nil ? try rules.load(required: true) : nil
        if let n = timings, let config {
            let now = currentMicros()
            let at: Micros
            do { at = try AlertsRequest(at: self.at).instant(now: now) ?? now } catch { throw error.cliError }
            let s = try await store.location.openForReading()
            defer { s.close() }
            try await measure(config, StoreAlertSource(store: s), at: at, repeats: n)
        }
        let doc = try await store.withQueries(rules: config) { try await $0.alerts(AlertsRequest(at: at, state: state.flatMap(AlertState.init))) }
        if output.isJSON {
            try writeDocument(doc)
            return
        }
        print("Alerts as of \(doc.at)")
        if doc.alerts.isEmpty {
            print("nothing pending or firing")
            return
        }
        var rows = [["STATE", "RULE", "LABELS", "VALUE", "SINCE", "ORDERS"]]
        for a in doc.alerts {
            let labels = a.labels.filter { $0.key != "alertname" }.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            let orders = a.orders.prefix(3)
            let more = a.ordersTotal > orders.count ? " +\(a.ordersTotal - orders.count)" : ""
            rows.append([a.state, a.rule, labels, AlertTransitions.formatValue(a.value), a.since, orders.joined(separator: " ") + more])
        }
        print(table(rows), terminator: "")
        if let first = doc.alerts.first?.orders.first {
            print("\nTrace one: waybill trace \(first) \(store.url.map { "--url \($0)" } ?? store.location.flag)")
        }
    }

    /// Times the live evaluation path as the server runs it at each tick: the open-deadline index for SLA
    /// rules, the rollups for KPI rules (whose drill-down to orders runs at most every 5 minutes, timed apart).
    func measure(_ config: AlertConfig, _ source: StoreAlertSource, at: Micros, repeats: Int) async throws {
        let evaluator = AlertEvaluator(source: source)
        func time(_ body: () throws -> [AlertSample]) rethrows -> (ms: [Double], alerts: Int, orders: Int) {
            var ms: [Double] = []
            var alerts = 0
            var orders = 0
            for _ in 0..<repeats {
                let t0 = DispatchTime.now().uptimeNanoseconds
                let samples = try body()
                ms.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                alerts = samples.count
                orders = samples.reduce(0) { $0 + $1.ordersTotal }
            }
            return (ms.sorted(), alerts, orders)
        }
        func line(_ name: String, _ r: (ms: [Double], alerts: Int, orders: Int)) {
            printErr(String(format: "timing %@: %d runs, min %.2f ms, median %.2f ms, max %.2f ms (%d alerts, %d orders behind them)",
                            name, r.ms.count, r.ms[0], r.ms[r.ms.count / 2], r.ms[r.ms.count - 1], r.alerts, r.orders))
        }
        for rule in config.rules {
            try await source.prepare(rule)
            if case .kpi = rule.condition {
                line(rule.name, try time { try evaluator.samples(rule, at: at, replay: false, withOrders: false) })
                line(rule.name + " with drill-down", try time { try evaluator.samples(rule, at: at, replay: false) })
            } else {
                line(rule.name, try time { try evaluator.samples(rule, at: at, replay: false) })
            }
        }
    }
}

struct AlertsCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate alert rule files without running them; exit 1 naming the file, rule and field at fault.")

    @Argument(help: "YAML files or directories of them.") var paths: [String]

    func run() async throws {
        let config: AlertConfig
        do {
            config = try AlertConfig.load(paths: paths)
        } catch let e as AlertConfigError {
            throw CLIError(e.description)
        }
        let env = ProcessInfo.processInfo.environment
        for h in config.hooks { if let s = h.secretEnv, env[s] == nil { printErr("note: hook '\(h.name)': \(s) is not set in this environment") } }
        print("ok: \(config.rules.count) rules, \(config.hooks.count) hooks in \(paths.joined(separator: ", "))")
    }
}

struct AlertsRules: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "rules", abstract: "The loaded alert rules (and, from a server, how their last evaluation went).")

    @OptionGroup var rules: AlertConfigOptions
    @Option(name: .long, help: "A running Waybill server, e.g. http://127.0.0.1:4318.") var url: String?
    @Option(name: .long, help: "With --url: a bearer token (default: $WAYBILL_TOKEN).") var token: String?
    @OptionGroup var output: FormatOptions

    func run() async throws {
        let doc: RulesDocument
        if let url {
            do { doc = try await RemoteQueries(url: url, token: token ?? StoreOptions.environmentToken).rules() } catch let e as QueryFailure { throw e.cliError }
        } else {
            doc = RulesDocument(try rules.load(required: true)!, status: [])
        }
        if output.isJSON {
            try writeDocument(doc)
            return
        }
        var rows = [["RULE", "KIND", "CONDITION", "FOR", "SEVERITY", "ACTIVE", "LAST EVAL"]]
        for r in doc.rules {
            let eval = r.evaluationMillis.map { String(format: "%.1f ms", $0) } ?? "-"
            rows.append([r.name, r.kind, r.conditionText, r.holdFor, r.severity, String(r.active), r.error.map { "error: \($0)" } ?? eval])
        }
        print(table(rows), terminator: "")
    }
}
