import Foundation
import WaybillAlerts
import WaybillClickHouse
import WaybillKPI
import WaybillModel
import WaybillSQLite
import WaybillStore

/// What a server-side command needs of its store: the storage protocols, the SLA deadline index and the
/// alert state (both engines provide all of them).
typealias ServerStore = any WaybillStore & DeadlineReader & AlertStore & WorkflowStore

/// Which engine a command opens: the embedded SQLite file (`--db PATH`, the default) or a ClickHouse
/// cluster (`--store clickhouse://...`). The two flags exclude each other.
enum StoreLocation: Sendable {
    case embedded(path: String)
    case clickHouse(url: String)

    /// `--db` and `--store` as given; `$WAYBILL_DB`, else `./waybill.db`, when neither is.
    static func resolve(db: String?, store: String?) throws -> StoreLocation {
        if db != nil && store != nil {
            throw CLIError("--db and --store exclude each other: --db PATH is the embedded store, --store clickhouse://... a ClickHouse cluster")
        }
        if let store {
            try checkStoreURL(store)
            return .clickHouse(url: store)
        }
        return .embedded(path: db ?? ProcessInfo.processInfo.environment["WAYBILL_DB"] ?? "waybill.db")
    }

    /// Refuses a `--store` value that is not a ClickHouse URL, naming the part at fault, without echoing
    /// the password.
    static func checkStoreURL(_ text: String) throws {
        guard ClickHouseURL.isClickHouse(text) else {
            throw CLIError("--store: must be a ClickHouse URL such as clickhouse://waybill@127.0.0.1:8123/waybill?cluster=waybill "
                           + "(the embedded store is --db PATH)")
        }
        do { _ = try ClickHouseURL(parsing: text) } catch { throw cliError(error) }
    }

    /// A refused part of the URL as the CLI says it: `--store: port '99999' must be ...`.
    static func cliError(_ e: FieldError) -> CLIError {
        guard e.field.hasPrefix("store.") else { return CLIError("--\(e.field): \(e.rule)") }
        return CLIError("--store: \(e.field.dropFirst("store.".count)) \(e.rule)")
    }

    var isClickHouse: Bool {
        if case .clickHouse = self { return true }
        return false
    }

    /// For messages and logs: the file path, or the URL with its password replaced by `***`.
    var description: String {
        switch self {
        case .embedded(let path): return path
        case .clickHouse(let url): return Self.redacted(url)
        }
    }

    /// The flag that names this store again in a hint (`--db PATH` or `--store URL` without the password).
    var flag: String {
        switch self {
        case .embedded(let path): return "--db \(path)"
        case .clickHouse(let url): return "--store '\(Self.redacted(url, mask: nil))'"
        }
    }

    /// `url` with the password (if any) shown as `mask`, or dropped with its colon when `mask` is nil.
    static func redacted(_ url: String, mask: String? = "***") -> String {
        if let parsed = try? ClickHouseURL(parsing: url) {
            var copy = parsed
            if mask == nil { copy.password = nil }
            return copy.description
        }
        // Unparsable: cut whatever sits between "://" and the last "@" of the authority.
        guard let scheme = url.range(of: "://") else { return url }
        let rest = url[scheme.upperBound...]
        let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
        guard let at = rest[..<authorityEnd].lastIndex(of: "@") else { return url }
        let info = rest[..<at]
        let user = info.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)[0]
        return String(url[..<scheme.upperBound]) + user + (info.contains(":") ? ":" + (mask ?? "") : "") + String(rest[at...])
    }

    /// Opens the store for a server or a writer: SQLite with `options` (created when missing), or the
    /// ClickHouse cluster (its tables created on every node when missing; the password may come from
    /// `$WAYBILL_CLICKHOUSE_PASSWORD`). A ClickHouse failure becomes a CLIError without the password.
    func open(sqlite options: SQLiteStore.Options = SQLiteStore.Options(), clickHouse: ClickHouseStore.Options = ClickHouseStore.Options(),
              rollup: Bool = true) async throws -> ServerStore {
        switch self {
        case .embedded(let path):
            return try SQLiteStore(path: path, options: options, rollup: rollup ? KPIFactsRollup() : nil)
        case .clickHouse(let url):
            do {
                return try await ClickHouseStore.open(url: url, environment: ProcessInfo.processInfo.environment,
                                                      rollup: rollup ? KPIFactsRollup() : nil, options: clickHouse)
            } catch let e as FieldError {
                throw Self.cliError(e)
            } catch {
                throw CLIError("cannot open the ClickHouse store \(description): \(Self.scrub("\(error)", url: url))")
            }
        }
    }

    /// Opens an existing store for reading: a missing SQLite file is an error here rather than a new store.
    func openForReading() async throws -> ServerStore {
        if case .embedded(let path) = self, !FileManager.default.fileExists(atPath: path) {
            throw CLIError("no store at \(path): pass --db PATH, set WAYBILL_DB, --store URL of a ClickHouse cluster, or --url of a running server")
        }
        return try await open()
    }

    /// `text` with the URL's password removed wherever it appears (an engine error may quote it).
    static func scrub(_ text: String, url: String) -> String {
        var out = text
        if let p = (try? ClickHouseURL(parsing: url, environment: ProcessInfo.processInfo.environment))?.password, !p.isEmpty {
            out = out.replacingOccurrences(of: p, with: "***")
            if let escaped = p.addingPercentEncoding(withAllowedCharacters: .alphanumerics), escaped != p {
                out = out.replacingOccurrences(of: escaped, with: "***")
            }
        }
        return out.replacingOccurrences(of: url, with: redacted(url))
    }
}
