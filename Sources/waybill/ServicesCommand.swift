import ArgumentParser
import Foundation
import WaybillKPI
import WaybillModel
import WaybillStore

struct ServicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "services",
        abstract: "Per service over a window: span rate, error rate, latency percentiles, and the calls between services.")

    @Option(help: "Window start (RFC 3339 or relative like -1h; default one hour before --to).") var from: String?
    @Option(help: "Window end (default now).") var to: String?
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: FormatOptions

    func run() async throws {
        let doc: JSONValue
        if let url = store.url {
            var q: [String: String] = [:]
            if let from { q["from"] = from }
            if let to { q["to"] = to }
            guard let d = try await RemoteClient(url).getJSON("/api/v1/services", query: q) else { throw CLIError("the server has no service view") }
            doc = d
        } else {
            let now = currentMicros()
            var end = now
            if let to { guard let t = TimeText.parse(to, now: now) else { throw CLIError("--to: must be RFC 3339 or relative like -1h") }; end = t }
            var start = end - 3_600_000_000
            if let from { guard let f = TimeText.parse(from, now: now) else { throw CLIError("--from: must be RFC 3339 or relative like -1h") }; start = f }
            guard start < end else { throw CLIError("--to: must be after --from") }
            let s = try openForReading(store.dbPath)
            defer { s.close() }
            let limit = 500_000
            let spans = try s.spans(startingIn: start..<end, limit: limit + 1)
            doc = ServiceReport(spans: spans.prefix(limit), from: start, to: end, truncated: spans.count > limit).json
        }
        if output.isJSON {
            writeStdout(doc.jsonBytes + [0x0A])
            return
        }
        print("Services \(doc["from"]?.stringValue ?? "") → \(doc["to"]?.stringValue ?? "")\(doc["truncated"] == true ? " (truncated)" : "")\n")
        func ms(_ v: JSONValue?) -> String { v?.doubleValue.map { DurationText.format(Micros($0 * 1000)) } ?? "-" }
        var rows = [["SERVICE", "SPANS", "PER SEC", "ERRORS", "ERROR RATE", "P50", "P90", "P99", "MAX"]]
        for r in doc["services"]?.arrayValue ?? [] {
            rows.append([r["service"]?.stringValue ?? "", TraceTimeline.num(r["spans"]?.doubleValue ?? 0),
                         String(format: "%.2f", r["per_second"]?.doubleValue ?? 0), TraceTimeline.num(r["errors"]?.doubleValue ?? 0),
                         String(format: "%.1f%%", (r["error_rate"]?.doubleValue ?? 0) * 100), ms(r["latency_ms"]?["p50"]),
                         ms(r["latency_ms"]?["p90"]), ms(r["latency_ms"]?["p99"]), ms(r["latency_ms"]?["max"])])
        }
        print(table(rows), terminator: "")
        let edges = doc["edges"]?.arrayValue ?? []
        if !edges.isEmpty {
            print("\nCalls between services")
            var e = [["FROM", "TO", "CALLS", "ERRORS"]]
            for x in edges {
                e.append([x["from"]?.stringValue ?? "", x["to"]?.stringValue ?? "", TraceTimeline.num(x["calls"]?.doubleValue ?? 0),
                          TraceTimeline.num(x["errors"]?.doubleValue ?? 0)])
            }
            print(table(e), terminator: "")
        }
    }
}
