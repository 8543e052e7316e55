import ArgumentParser
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import WaybillKPI
import WaybillModel
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

    @Option(help: "Window start: RFC 3339, a date, or relative like -7d (default: 7 days before --to).") var from: String?
    @Option(help: "Window end (exclusive; default now).") var to: String?
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
        if let url = store.url {
            var q: [String: String] = [:]
            for (k, v) in [("from", from), ("to", to), ("by", by), ("step", step), ("explain", explain), ("group", group), ("split", split)] { if let v { q[k] = v } }
            if explain != nil {
                q["limit"] = String(limit)
                guard let doc = try await RemoteClient(url).getJSON("/api/v1/kpis", query: q) else { throw CLIError("the server has no KPI API") }
                print(fmt == .json ? doc.jsonString : renderExplain(doc))
                return
            }
            q["format"] = fmt.rawValue
            let (data, status, _) = try await RemoteClient(url).send(URLRequest(url: RemoteClient(url).url("/api/v1/kpis", query: q)))
            guard status == 200 else {
                let msg = (try? JSONParser.parse(Array(data)))?["error"]?.stringValue ?? String(decoding: data.prefix(300), as: UTF8.self)
                throw CLIError("server answered \(status): \(msg)")
            }
            print(String(decoding: data, as: UTF8.self), terminator: "")
            return
        }
        let query: KPIQuery
        do { query = try KPIQuery.parse(from: from, to: to, by: by, step: step, now: currentMicros()) } catch {
            throw CLIError("--\(error.field): \(error.rule)")
        }
        let s = try openForReading(store.dbPath)
        defer { s.close() }
        let service = KPIService(reader: s)
        if let explain {
            let metric: KPIMetric
            do { metric = try KPIMetric.parse(explain) } catch { throw CLIError("--explain: \(error.rule)") }
            let g: String?? = group.map { $0 == "null" ? .some(nil) : .some($0) } ?? .none
            let list = try service.explain(metric, query, group: g, limit: limit)
            print(KPIRender.contributors(list, format: fmt), terminator: "")
            return
        }
        if let split {
            let sp: TelemetrySplit
            do { sp = try TelemetrySplit.parse(split) } catch { throw CLIError("--split: \(error.rule)") }
            guard fmt != .html else { throw CLIError("--split: the report is table, json or csv") }
            print(KPIRender.render(fmt, current: try service.splitDocument(query, split: sp, traces: s), previous: nil), terminator: "")
            return
        }
        print(try service.report(query, format: fmt), terminator: "")
    }

    func renderExplain(_ doc: JSONValue) -> String {
        var rows = [["ORDER", "REASON", "VALUE"]]
        for o in doc["orders"]?.arrayValue ?? [] {
            rows.append([o["order"]?.stringValue ?? "", o["reason"]?.stringValue ?? "", o["value"]?.doubleValue.map { String($0) } ?? ""])
        }
        return table(rows)
    }
}
