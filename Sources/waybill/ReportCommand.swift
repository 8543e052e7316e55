import ArgumentParser
import Foundation
import WaybillAlerts
import WaybillModel
import WaybillQuery
import WaybillReports
import WaybillServer

/// `--queries DIR`: the saved-queries folder (`reports/`, `searches/`).
struct SavedQueriesOptions: ParsableArguments {
    @Option(name: .long, help: "Saved queries folder holding reports/ and searches/ (default: $WAYBILL_QUERIES, else ./queries).")
    var queries: String?

    var directory: String { queries ?? ProcessInfo.processInfo.environment["WAYBILL_QUERIES"].flatMap { $0.isEmpty ? nil : $0 } ?? "queries" }

    /// The folder's queries; a bad file is a CLIError naming file, line and field.
    func load() throws -> SavedQueries {
        do { return try SavedQueries.load(directory: directory) } catch { throw CLIError(error.description) }
    }

    func report(_ name: String) throws -> ReportDefinition {
        let saved = try load()
        guard let r = saved.report(name) else {
            let known = saved.reports.map(\.name)
            throw CLIError("report '\(name)' is not in \(directory)/reports" + (known.isEmpty ? "" : "; saved reports: " + known.joined(separator: ", ")))
        }
        return r
    }
}

struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Render a saved report (queries/reports/NAME.yaml) as HTML, CSV, JSON or Markdown, or send it to its hooks now.",
        discussion: """
            Without NAME, lists the saved reports. The window (e.g. previous ISO week) is resolved as of --at
            (default now) in the report's time zone.
            Examples:
              waybill report weekly-executive --db waybill.db > weekly.html
              waybill report daily-warehouse --at 2026-11-24T12:00:00Z --format md --url http://127.0.0.1:4318
              waybill report weekly-executive --send --url http://127.0.0.1:4318
            """)

    @Argument(help: "The report's name (its file name without .yaml).") var name: String?
    @Option(parsing: .unconditional, help: "Resolve the window as of this instant: RFC 3339, a date, or relative like -1d (default now).")
    var at: String?
    @Option(help: "html (self-contained page), csv, json or md.") var format = "html"
    @Flag(help: "Send the report to its deliver hooks now (signed like alert notifications) instead of printing it.") var send = false
    @Option(help: "With --send: the base of links in the delivered report (default: --url, else http://127.0.0.1:4318).")
    var externalURL: String?
    @OptionGroup var saved: SavedQueriesOptions
    @OptionGroup var store: StoreOptions

    func run() async throws {
        guard let name else {
            let reports = try saved.load().reports
            if reports.isEmpty { print("no saved reports in \(saved.directory)/reports"); return }
            var rows = [["NAME", "TITLE", "WINDOW", "SCHEDULE", "DELIVER"]]
            for r in reports {
                rows.append([r.name, r.title, r.window.description + " (\(r.zone.identifier))", r.schedule?.expression ?? "-",
                             r.deliver.map { String($0.hook.name.dropFirst("report:\(r.name):".count)) + " (\($0.format.rawValue))" }.joined(separator: ", ")])
            }
            print(table(rows), terminator: "")
            return
        }
        let def = try saved.report(name)
        let fmt: ReportRenderer.Format
        do { fmt = try ReportRenderer.parseFormat(format) } catch { throw error.cliError }
        if send {
            guard !def.deliver.isEmpty else { throw CLIError("--send: report '\(name)' has no deliver hooks in \(def.file)") }
            let missing = def.deliver.compactMap { d in d.hook.secretEnv.flatMap { ProcessInfo.processInfo.environment[$0] == nil ? $0 : nil } }
            if !missing.isEmpty { throw CLIError("--send: the hooks name secrets not set in the environment: \(missing.joined(separator: ", "))") }
        }
        let doc = try await store.withQueries { q in
            let instant = try ReportRenderer.instant(at, now: currentMicros())
            return try await ReportRenderer.document(def, at: instant, using: q)
        }
        guard send else {
            print(ReportRenderer.render(doc, format: fmt), terminator: "")
            return
        }
        let base = externalURL ?? store.url ?? "http://127.0.0.1:4318"
        let outcomes = try await ReportSender.send(doc, def, base: base.hasSuffix("/") ? String(base.dropLast()) : base,
                                                   transport: HTTPNotificationTransport())
        var failed = false
        for o in outcomes {
            print("\(o.hook): \(o.delivered ? "delivered" : "NOT delivered") after \(o.attempts) attempt\(o.attempts == 1 ? "" : "s") (\(o.detail))")
            failed = failed || !o.delivered
        }
        if failed { throw ExitCode(1) }
    }
}

struct QueriesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "queries",
        abstract: "Saved queries: check the report and search files.",
        subcommands: [QueriesCheck.self])
}

struct QueriesCheck: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check a saved-queries folder (reports/, searches/, and alerts/ when present); a bad file is named with its line and field.")

    @Argument(help: "The folder (default: $WAYBILL_QUERIES, else ./queries).") var directory: String?

    func run() async throws {
        let dir = directory ?? SavedQueriesOptions().directory
        let saved: SavedQueries
        do { saved = try SavedQueries.load(directory: dir) } catch { throw CLIError(error.description) }
        for r in saved.reports {
            var line = "report \(r.name): \(r.title); \(r.window) in \(r.zone.identifier)"
            if let s = r.schedule {
                line += "; schedule \(s.expression)"
                if let next = s.next(after: currentMicros()) { line += ", next \(RFC3339.format(next))" }
                line += "; deliver to " + r.deliver.map { String($0.hook.name.dropFirst("report:\(r.name):".count)) }.joined(separator: ", ")
            }
            print(line)
        }
        for s in saved.searches {
            print("search \(s.name): " + s.filters.sorted { $0.key < $1.key }.map { "--\($0.key) \($0.value)" }.joined(separator: " "))
        }
        let alerts = (dir as NSString).appendingPathComponent("alerts")
        if FileManager.default.fileExists(atPath: alerts) {
            do {
                let c = try AlertConfig.load(paths: [alerts])
                print("alerts: \(c.rules.count) rules, \(c.hooks.count) hooks")
            } catch { throw CLIError("\(error)") }
        }
        print("ok: \(saved.reports.count) reports, \(saved.searches.count) searches")
    }
}

extension SearchCommand {
    /// The flags, over the saved search's filters with `--saved NAME` (`--limit` keeps the saved limit when left at its default).
    func savedParameters() throws -> [String: String] {
        guard let saved else { return parameters }
        let all = try savedQueries.load()
        guard let search = all.search(saved) else {
            throw CLIError("--saved: '\(saved)' is not in \(savedQueries.directory)/searches"
                           + (all.searches.isEmpty ? "" : "; saved searches: " + all.searches.map(\.name).joined(separator: ", ")))
        }
        var flags = parameters
        if search.filters["limit"] != nil, limit == 50 { flags["limit"] = nil }
        do { return try search.request(overrides: flags).parameters } catch { throw error.cliError }
    }
}

extension ServeCommand {
    /// `serve --queries DIR`: the saved queries, nil without the flag. A bad file stops the server, named.
    func servedQueries() throws -> SavedQueries? {
        guard let dir = queriesDirectory else { return nil }
        let saved: SavedQueries
        do { saved = try SavedQueries.load(directory: dir) } catch { throw CLIError(error.description) }
        let scheduled = saved.reports.filter { $0.schedule != nil }
        printErr("waybill: \(saved.reports.count) saved reports (\(scheduled.count) scheduled: "
                 + scheduled.map { "\($0.name) \($0.schedule!.description)" }.joined(separator: ", ") + "), \(saved.searches.count) saved searches")
        return saved
    }
}
