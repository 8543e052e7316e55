import WaybillAlerts
import WaybillModel
import WaybillQuery
import WaybillSQLite

extension StoreOptions {
    /// Runs `body` against the query layer: the server at `--url`, or the store at `--db` or `--store` (with `rules`
    /// replayed over it for the alert queries). A refused parameter becomes `--FIELD: RULE`.
    func withQueries<T>(rules: AlertConfig? = nil, _ body: (any WaybillQueries) async throws -> T) async throws -> T {
        do {
            if let url { return try await body(RemoteQueries(url: url, token: token)) }
            let store = try await location.openForReading()
            let lanes = ReadLanes(point: ReadExecutor(threads: 1, name: "waybill-cli-point"), scan: ReadExecutor(threads: 1, name: "waybill-cli-scan"))
            defer {
                lanes.stop()
                store.close()
            }
            let view = rules.map { AlertRulesView(config: $0, source: StoreAlertSource(store: store), baseURL: "http://127.0.0.1:4318") }
            return try await body(LocalQueries(store: store, lanes: lanes, clock: currentMicros, alerting: view))
        } catch let e as QueryFailure {
            throw e.cliError
        }
    }
}

extension QueryFailure {
    /// As the CLI says it: a refused parameter names its flag.
    var cliError: CLIError {
        if case .badRequest(let f) = self { return CLIError("--\(f.field): \(f.rule)") }
        return CLIError(description)
    }
}

/// A document as `--format json` prints it: one line of JSON on stdout.
func writeDocument<T: Encodable>(_ doc: T) throws {
    writeStdout(try JSONCoding.bytes(doc) + [0x0A])
}
