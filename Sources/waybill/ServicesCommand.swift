import ArgumentParser
import Foundation
import WaybillKPI
import WaybillModel
import WaybillQuery
import WaybillStore

struct ServicesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "services",
        abstract: "Per service over a window: span rate, error rate, latency percentiles, and the calls between services.")

    @Option(parsing: .unconditional, help: "Window start (RFC 3339 or relative like -1h; default one hour before --to).") var from: String?
    @Option(parsing: .unconditional, help: "Window end (default now).") var to: String?
    @OptionGroup var store: StoreOptions
    @OptionGroup var output: FormatOptions

    func run() async throws {
        let report = try await store.withQueries { try await $0.services(ServicesRequest(from: from, to: to)) }
        if output.isJSON {
            try writeDocument(report)
            return
        }
        print("Services \(RFC3339.format(report.from)) → \(RFC3339.format(report.to))\(report.truncated ? " (truncated)" : "")\n")
        func ms(_ v: Double) -> String { DurationText.format(Micros(v * 1000)) }
        var rows = [["SERVICE", "SPANS", "PER SEC", "ERRORS", "ERROR RATE", "P50", "P90", "P95", "P99", "MAX"]]
        for r in report.services {
            rows.append([r.service, String(r.spans), String(format: "%.2f", r.perSecond), String(r.errors),
                         String(format: "%.1f%%", r.errorRate * 100), ms(r.latency.p50), ms(r.latency.p90), ms(r.latency.p95), ms(r.latency.p99), ms(r.latency.max)])
        }
        print(table(rows), terminator: "")
        if !report.edges.isEmpty {
            print("\nCalls between services")
            var e = [["FROM", "TO", "CALLS", "ERRORS"]]
            for x in report.edges { e.append([x.from, x.to, String(x.calls), String(x.errors)]) }
            print(table(e), terminator: "")
        }
    }
}
