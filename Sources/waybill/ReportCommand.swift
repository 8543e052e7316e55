import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
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
    @Flag(help: "Send the report to its deliver hooks now through the durable outbox (signed and retried like alert notifications) instead of printing it.")
    var send = false
    @Option(help: "With --send and --db/--store: delivery attempts this command makes before it leaves a notification pending in the outbox (a server delivering from the store retries it).")
    var attempts = 3
    @Flag(help: "With --send and --db/--store: only queue the notifications in the store's outbox; the server that delivers from the store (waybill serve --queries) sends them.")
    var queueOnly = false
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
        if send, let url = store.url {
            // The server's definition, rendering and outbox: the server queues it and its delivery worker sends it.
            try await sendThroughServer(name, url: url)
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
        let instant: Micros
        do { instant = try ReportRenderer.instant(at, now: currentMicros()) } catch { throw error.cliError }
        guard send else {
            let doc = try await store.withQueries { q in try await ReportRenderer.document(def, at: instant, using: q) }
            print(ReportRenderer.render(doc, format: fmt), terminator: "")
            return
        }
        var base = externalURL ?? "http://127.0.0.1:4318"
        while base.hasSuffix("/") { base.removeLast() }
        let s = try await store.location.openForReading()
        defer { s.close() }
        let fp = try await queueLocally(def, at: instant, base: base, store: s)
        print("queued \(def.deliver.count) notification\(def.deliver.count == 1 ? "" : "s") in the store's outbox as \(fp)")
        if queueOnly {
            print("a server delivering from this store (waybill serve --queries \(saved.directory)) sends them")
            return
        }
        let items = try await ReportOutbox.deliver(fp, hooks: def.deliver.map(\.hook), outbox: s, transport: HTTPNotificationTransport(),
                                                   attempts: max(1, attempts))
        var failed = false
        for o in items {
            let hook = String(o.hook.dropFirst("report:\(def.name):".count))
            var line = "\(hook): \(o.status == .delivered ? "delivered" : "NOT delivered") after \(o.attempts) attempt\(o.attempts == 1 ? "" : "s")"
            if let e = o.lastError, o.status != .delivered { line += " (\(e))" }
            if o.status == .failed { line += "; given up" }
            if o.status == .pending { line += "; left pending in the store's outbox: a server delivering from this store retries it" }
            print(line)
            failed = failed || o.status != .delivered
        }
        if failed { throw ExitCode(1) }
    }
}

extension ReportCommand {
    /// `--send --url`: `POST /api/v1/reports/{name}/send`; prints what the server queued.
    func sendThroughServer(_ name: String, url: String) async throws {
        let client = try RemoteClient(url, token: store.token)
        var target = client.url("/api/v1/reports/" + URLText.pathSegment(name) + "/send")
        if let at, var c = URLComponents(url: target, resolvingAgainstBaseURL: false) {
            c.percentEncodedQuery = URLText.query(["at": at])
            target = c.url ?? target
        }
        var request = URLRequest(url: target)
        request.httpMethod = "POST"
        let (data, status, _) = try await client.send(request)
        guard status == 200 else {
            let message = (try? JSONParser.parse(Array(data)))?["error"]?.stringValue ?? String(decoding: data.prefix(300), as: UTF8.self)
            throw CLIError("\(url) did not queue the report (HTTP \(status)): \(message)")
        }
        let sent: ReportSendDocument
        do { sent = try JSONCoding.decode(ReportSendDocument.self, from: Array(data)) } catch {
            throw CLIError("\(url) answered a document Waybill cannot read: \(JSONCoding.fieldError(error))")
        }
        print("queued by \(url) as \(sent.fingerprint): " + sent.notifications.map { "\($0.hook) (\($0.status))" }.joined(separator: ", "))
        print("the server delivers them: see GET /api/v1/deliveries or the /alerts page")
    }

    /// Renders the report over the store and commits its notifications to the store's outbox.
    func queueLocally(_ def: ReportDefinition, at instant: Micros, base: String, store s: ServerStore) async throws -> String {
        let lanes = ReadLanes(point: ReadExecutor(threads: 1, name: "waybill-cli-point"), scan: ReadExecutor(threads: 1, name: "waybill-cli-scan"))
        defer { lanes.stop() }
        let doc: ReportDocument
        do {
            doc = try await ReportRenderer.document(def, at: instant, using: LocalQueries(store: s, lanes: lanes, clock: currentMicros))
        } catch let e as QueryFailure {
            throw e.cliError
        }
        return try await ReportOutbox.queue(doc, def, base: base, outbox: s, now: currentMicros())
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
