import ArgumentParser
import Foundation
import WaybillCollectors
import WaybillSQLite

@main
struct Waybill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "waybill",
        abstract: "Correlation tracing and KPIs for order distribution.",
        discussion: "Start with `waybill serve`, send CloudEvents to POST /v1/events (or `waybill ingest FILE`), then `waybill trace ORDER-ID`.",
        subcommands: [DemoCommand.self, ServeCommand.self, SimulateCommand.self, IngestCommand.self, TraceCommand.self, SearchCommand.self, KPICommand.self, ServicesCommand.self, AlertsCommand.self, TokensCommand.self, AuditCommand.self, ReportCommand.self, QueriesCommand.self, ExportCommand.self])
}

/// Where a reading command reads from: the embedded store (`--db`) or a running server (`--url`).
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: "Embedded store file (default: $WAYBILL_DB or ./waybill.db).")
    var db: String?

    @Option(name: .long, help: "A running Waybill server, e.g. http://127.0.0.1:4318 (instead of --db).")
    var url: String?

    @Option(name: .customLong("store"), help: "A ClickHouse store instead of --db: clickhouse://USER@HOST:PORT[,HOST:PORT...]/DATABASE[?cluster=NAME] (password from $WAYBILL_CLICKHOUSE_PASSWORD).")
    var storeURL: String?

    @Option(name: .customLong("token"), help: "With --url: a bearer token (default: $WAYBILL_TOKEN).")
    var tokenOption: String?

    var dbPath: String { db ?? ProcessInfo.processInfo.environment["WAYBILL_DB"] ?? "waybill.db" }
    /// The store `--db` or `--store` names (validated: they exclude each other).
    var location: StoreLocation { (try? StoreLocation.resolve(db: db, store: storeURL)) ?? .embedded(path: dbPath) }
    /// The token sent with `--url`: `--token`, else `$WAYBILL_TOKEN`.
    var token: String? { tokenOption ?? Self.environmentToken }
    static var environmentToken: String? { ProcessInfo.processInfo.environment["WAYBILL_TOKEN"].flatMap { $0.isEmpty ? nil : $0 } }

    func validate() throws {
        if db != nil && url != nil { throw ValidationError("--db and --url exclude each other: read the file or ask the server") }
        if storeURL != nil && url != nil { throw ValidationError("--store and --url exclude each other: read the ClickHouse store or ask the server") }
        do { _ = try StoreLocation.resolve(db: db, store: storeURL) } catch { throw ValidationError("\(error)") }
        if let u = url, URL(string: u)?.host == nil { throw ValidationError("--url: must be a URL such as http://127.0.0.1:4318, got '\(u)'") }
    }
}

/// `--collectors-config FILE`: collector settings (collectors/README.md), for commands that store spans.
struct CollectorsConfigOptions: ParsableArguments {
    @Option(name: .long, help: "Collectors config file (YAML, see collectors/waybill-collectors.yaml): span correlation keys.")
    var collectorsConfig: String?

    /// The config, or the defaults without a file. A bad file is a CLIError naming the file and field.
    func load() throws -> CollectorsConfig {
        guard let path = collectorsConfig else { return CollectorsConfig() }
        do { return try CollectorsConfig.load(path: path) } catch { throw CLIError("--collectors-config: \(error)") }
    }

    /// Store options carrying the config's correlation keys.
    func storeOptions(_ base: SQLiteStore.Options = SQLiteStore.Options()) throws -> SQLiteStore.Options {
        var o = base
        o.correlationKeys = try load().correlationKeys
        return o
    }

    /// The options of a server's store (`waybill serve`, `waybill demo`): rollup rows written once per window
    /// of commits (`SQLiteStore.Options.rollupWindowCommits`, docs/storage.md); `WAYBILL_ROLLUP_WINDOW` sets
    /// another number of commits, 0 or 1 writes them in every commit (for A/B benchmarks).
    func serverStoreOptions() throws -> SQLiteStore.Options {
        var o = try storeOptions()
        let commits = ProcessInfo.processInfo.environment["WAYBILL_ROLLUP_WINDOW"].flatMap(Int.init) ?? 50
        o.rollupWindowCommits = commits > 1 ? commits : nil
        return o
    }
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case table, json
}

struct FormatOptions: ParsableArguments {
    @Option(name: .long, help: "Output: table (for people) or json (one document on stdout).")
    var format: OutputFormat = .table

    @Flag(name: .long, help: "Same as --format json.")
    var json = false

    var isJSON: Bool { json || format == .json }
}

/// A failure the user can act on: printed to stderr, exit status 1.
struct CLIError: Error, CustomStringConvertible {
    let message: String
    init(_ message: String) { self.message = message }
    var description: String { message }
}

func printErr(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}

func writeStdout(_ bytes: [UInt8]) {
    FileHandle.standardOutput.write(Data(bytes))
}
