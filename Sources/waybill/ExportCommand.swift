import ArgumentParser
import Foundation
import WaybillModel
import WaybillQuery
import WaybillReports
import WaybillStore

struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export stored events in a standard format for other tools.",
        subcommands: [OCELExportCommand.self])
}

struct OCELExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ocel",
        abstract: "The events of a window as an OCEL 2.0 JSON log (object-centric process mining: pm4py, OCPM tools).",
        discussion: """
            Orders, order lines, linked keys (by prefix), customers, warehouses and carriers are the objects;
            every stored event in [--from, --to) is an event. Streamed: memory stays flat however long the window.
            See docs/export.md for the mapping.

            Examples:
              waybill export ocel --from -7d --out orders.json
              waybill export ocel --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z --out november.json.gz
              waybill export ocel --from -1d --url http://127.0.0.1:4318 --out day.json
            """)

    @Option(parsing: .unconditional, help: "Window start (required): RFC 3339 or relative like -7d.") var from: String?
    @Option(parsing: .unconditional, help: "Window end (exclusive; default now).") var to: String?
    @Option(help: "Output file (default stdout); a name ending in .gz is gzip-compressed. Written to FILE.partial, renamed when complete.")
    var out: String?
    @Option(help: "With --db or --store: where the export's temporary files go (default $TMPDIR or /tmp).") var tempDir: String?
    @Flag(help: "Print no summary on stderr.") var quiet = false

    @OptionGroup var store: StoreOptions

    func run() async throws {
        let request = OCELRequest(from: from, to: to)
        let file = try out.map { try OCELFileOutput(path: $0) }
        let write: ([UInt8]) throws -> Void = { bytes in
            if let file { try file.write(bytes) } else { writeStdout(bytes) }
        }
        do {
            if let url = store.url {
                let bytes = try await OCELRemote.export(url: url, token: store.token, request: request, gzip: false, write: write)
                try file?.finish()
                if !quiet { printErr("wrote \(bytes) bytes\(out.map { " to " + $0 } ?? "") from \(url)") }
                return
            }
            let window = try request.window(now: currentMicros())
            let db = try await store.location.openForReading()
            defer { db.close() }
            guard let scanner = db as? any EventScanner else {
                throw CLIError("\(store.location.description) cannot scan events by time, which the export needs; export from a server (--url) or an embedded store (--db)")
            }
            var exporter = OCELExporter(temporaryDirectory: tempDir)
            if let text = ProcessInfo.processInfo.environment["WAYBILL_OCEL_THREADS"] {
                guard let t = Int(text), (1...64).contains(t) else {
                    throw CLIError("WAYBILL_OCEL_THREADS: must be a whole number from 1 to 64 (1 runs the export on one thread), not '\(text)'")
                }
                exporter.threads = t
            }
            let summary = try exporter.export(from: scanner, window: window, write: write)
            try file?.finish()
            if !quiet {
                let types = summary.objectsByType.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
                printErr("wrote \(summary.events) events, \(summary.objects) objects (\(types)), \(summary.e2o) event-object and "
                    + "\(summary.o2o) object-object relationships, \(summary.bytes) bytes of JSON\(out.map { " to " + $0 } ?? "")")
            }
        } catch let e as QueryFailure {
            throw e.cliError
        } catch let e as OCELExportError {
            throw CLIError(e.description)
        }
    }
}
