import ArgumentParser
import Foundation
import WaybillKPI
import WaybillModel
import WaybillQuery
import WaybillStore

struct KPICommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kpi",
        abstract: "KPI report: fill rate, order fill rate, allocation delay, shipment lag, on-time rate.",
        discussion: """
            Examples:
              waybill kpi --from -7d --by warehouse
              waybill kpi --from 2026-11-01 --to 2026-12-01 --by warehouse --step 1d --format html > report.html
              waybill kpi --from -7d --by warehouse --explain allocation_delay.p95_s --group DC-EAST
            """)

    @Option(parsing: .unconditional, help: "Window start: RFC 3339, a date, or relative like -7d (default: 7 days before --to).") var from: String?
    @Option(parsing: .unconditional, help: "Window end (exclusive; default now).") var to: String?
    @Option(help: "Group by warehouse, channel or region.") var by: String?
    @Option(help: "Time series step, e.g. 1h or 1d.") var step: String?
    @Option(help: "table, json, csv or html.") var format: String = "table"
    @Flag(help: "Same as --format json.") var json = false
    @Option(help: "List the orders behind a figure instead, e.g. allocation_delay.p95_s, fill_rate, on_time_rate.") var explain: String?
    @Option(help: "With --explain and --by: only this group (null for orders without one).") var group: String?
    @Option(help: "With --explain: how many orders.") var limit = 20
    @Option(help: "Split by the telemetry of each order's trace: errors, error-in:SERVICE, span-time:SERVICE>DURATION (e.g. error-in:erp).")
    var split: String?

    @OptionGroup var store: StoreOptions

    func run() async throws {
        let formatName = json ? "json" : format
        guard let fmt = KPIFormat(rawValue: formatName) else { throw CLIError("--format: must be table, json, csv or html") }
        var parameters: [String: String] = [:]
        for (k, v) in [("from", from), ("to", to), ("by", by), ("step", step), ("explain", explain), ("group", group), ("split", split)] {
            if let v { parameters[k] = v }
        }
        if explain != nil { parameters["limit"] = String(limit) }
        let output = try await store.withQueries { q in
            let request = try KPIRequest(parameters: parameters)
            if request.explain != nil { return KPIRender.contributors(try await q.explain(request), format: fmt) }
            return try await KPIReportView.render(fmt, request, using: q)
        }
        print(output, terminator: "")
    }
}
