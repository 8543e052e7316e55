import ArgumentParser
import Foundation
import WaybillKPI
import WaybillQuery
import WaybillModel
import WaybillSQLite
import WaybillStore

struct TraceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trace",
        abstract: "Show the trace of one order: every event of the order and of every key linked to it, as a timeline.")

    @Argument(help: "An order id or any key linked to one (e.g. shipment:1Z999).")
    var key: String

    @OptionGroup var store: StoreOptions
    @OptionGroup var output: FormatOptions

    func run() async throws {
        let doc = try await store.withQueries { try await $0.trace(key: key) }
        guard let doc else { throw CLIError("no order or linked key '\(key)' is known (try `waybill search`)") }
        if output.isJSON {
            try writeDocument(doc)
        } else {
            print(TraceTimeline.render(doc), terminator: "")
        }
    }
}

func openForReading(_ path: String) throws -> SQLiteStore {
    guard FileManager.default.fileExists(atPath: path) else {
        throw CLIError("no store at \(path): pass --db PATH, set WAYBILL_DB, or --url of a running server")
    }
    return try SQLiteStore(path: path, rollup: KPIFactsRollup())
}

/// The terminal view of a trace document.
enum TraceTimeline {
    static func render(_ doc: TraceDocument, now: Micros = currentMicros()) -> String {
        var out = ""
        let id = doc.correlationID
        let facts = doc.facts
        out += "Order \(id)   state: \(doc.state ?? "unknown")"
        if let since = facts.stateSince { out += " since \(since)" }
        out += "\n"
        if doc.keys.count > 1 { out += "keys: \(doc.keys.joined(separator: ", "))\n" }
        var context: [String] = []
        if let c = facts.channel { context.append("channel \(c)") }
        if let r = facts.region { context.append("region \(r)") }
        if let p = facts.promisedShipBy { context.append("promised ship by \(p)") }
        if !context.isEmpty { out += context.joined(separator: " · ") + "\n" }
        out += "\n"
        var rows: [[String]] = [["TIME", "+GAP", "SOURCE", "TYPE", "SUBJECT", "DETAILS"]]
        for s in doc.timeline { rows.append([s.time, s.gapText, s.source, s.type, s.otherSubject, details(s.data)]) }
        out += table(rows)
        out += steps(doc.steps, now: now)
        out += waterfall(doc.spans)
        out += "\nFacts\n"
        func secs(_ v: Double?) -> String { v.map { DurationText.format(Micros($0 * 1e6)) } ?? "-" }
        var lines: [(String, String)] = [
            ("allocation delay", secs(facts.allocationDelaySeconds)),
            ("shipment lag", secs(facts.shipmentLagSeconds)),
        ]
        var units = facts.unitsOrdered.map { num($0) } ?? "-"
        if let a = facts.unitsAllocatedFirst, facts.unitsOrdered != nil {
            units += "   allocated first: \(num(a))" + (facts.firstAllocationFill.map { String(format: " (%.1f%%)", $0 * 100) } ?? "")
        }
        lines.append(("units ordered", units))
        if let w = facts.allocationWarehouse { lines.append(("allocated from", w)) }
        if let w = facts.shipmentWarehouse { lines.append(("shipped from", w)) }
        if let ot = facts.onTime { lines.append(("on time", ot ? "yes" : "NO")) }
        for (k, v) in lines { out += "  " + k.padding(toLength: 18, withPad: " ", startingAt: 0) + v + "\n" }
        return out
    }

    /// Each lifecycle step against the same step's p50 and p90 over the 7 days before it; the ones far
    /// outside marked. The step in progress is judged as of `now`.
    static func steps(_ steps: [StepDocument], now: Micros) -> String {
        guard !steps.isEmpty else { return "" }
        let warehouse = steps[0].warehouse.map { "at \($0)" } ?? "at every warehouse"
        let out = "\nSteps (each against the same step \(warehouse), 7 days before it)\n"
        func secs(_ v: Double?) -> String { v.map { DurationText.format(Micros(($0 * 1e6).rounded())) } ?? "-" }
        var rows: [[String]] = [["STEP", "GAP", "P50", "P90", "SAMPLES", "VERDICT"]]
        for s in steps {
            var gap = secs(s.gapSeconds)
            if s.to == nil, let since = RFC3339.parse(s.startedAt) { gap = DurationText.format(Swift.max(0, now - since)) + " so far" }
            let verdict: String
            switch s.verdict(now: now) {
            case .typical: verdict = "typical"
            case .slow: verdict = "SLOW" + ratio(s, now)
            case .veryslow: verdict = "VERY SLOW" + ratio(s, now)
            case .noHistory: verdict = "too few to compare"
            case .inProgress: verdict = s.slowAfter.map { "slow after \($0)" } ?? "in progress"
            }
            rows.append(["  " + s.name, gap, secs(s.p50Seconds), secs(s.p90Seconds), String(s.samples), verdict])
        }
        return out + table(rows)
    }

    /// ` (3.2× p90)`: how far above p90 the step is.
    static func ratio(_ s: StepDocument, _ now: Micros) -> String {
        guard let p90 = s.p90Seconds, p90 > 0 else { return "" }
        let gap = s.gapSeconds ?? RFC3339.parse(s.startedAt).map { Double(now - $0) / 1e6 } ?? 0
        return String(format: " (%.1f× p90)", gap / p90)
    }

    /// Spans per trace, indented by parent, with bars scaled to the trace's time span; errors marked ✗.
    static func waterfall(_ spans: [SpanDocument]) -> String {
        struct S { let id: String; let parent: String?; let service: String; let name: String; let start: Micros; let end: Micros; let error: Bool }
        var byTrace: [String: [S]] = [:]
        for j in spans {
            guard let st = RFC3339.parse(j.start), let en = RFC3339.parse(j.end) else { continue }
            byTrace[j.traceID, default: []].append(S(id: j.spanID, parent: j.parentSpanID, service: j.service, name: j.name,
                                                     start: st, end: en, error: j.isError))
        }
        guard !byTrace.isEmpty else { return "" }
        var out = "\nSpans (\(spans.count) in \(byTrace.count) trace\(byTrace.count == 1 ? "" : "s"))\n"
        let width = 30
        for (trace, list) in byTrace.sorted(by: { ($0.value.map(\.start).min() ?? 0) < ($1.value.map(\.start).min() ?? 0) }) {
            let t0 = list.map(\.start).min() ?? 0, t1 = max(list.map(\.end).max() ?? 0, t0 + 1)
            out += "  trace \(trace)  \(RFC3339.format(t0))  \(DurationText.format(t1 - t0))\n"
            let ids = Set(list.map(\.id))
            var children: [String: [S]] = [:]
            var roots: [S] = []
            for s in list {
                if let p = s.parent, ids.contains(p) { children[p, default: []].append(s) } else { roots.append(s) }
            }
            var rows: [[String]] = []
            func walk(_ s: S, _ depth: Int) {
                let a = Int(Double(s.start - t0) / Double(t1 - t0) * Double(width))
                let b = max(a + 1, Int(Double(s.end - t0) / Double(t1 - t0) * Double(width)))
                let bar = String(repeating: " ", count: min(a, width - 1)) + String(repeating: s.error ? "!" : "=", count: min(b, width) - min(a, width - 1))
                rows.append(["    " + String(repeating: "  ", count: depth) + (s.error ? "✗ " : "") + s.service + " " + s.name,
                             "+" + DurationText.format(s.start - t0), DurationText.format(s.end - s.start), "|" + bar.padding(toLength: width, withPad: " ", startingAt: 0) + "|"])
                for c in (children[s.id] ?? []).sorted(by: { $0.start < $1.start }) { walk(c, depth + 1) }
            }
            for r in roots.sorted(by: { $0.start < $1.start }) { walk(r, 0) }
            if rows.count > 40 {
                let more = rows.count - 40
                rows = Array(rows.prefix(40)) + [["    ... \(more) more spans (--format json shows all)", "", "", ""]]
            }
            out += table(rows)
        }
        return out
    }

    static func details(_ data: JSONValue?) -> String {
        guard let d = data?.objectValue else { return "" }
        var parts: [String] = []
        for k in ["channel", "region", "warehouse", "carrier", "tracking", "reason", "stage", "currency"] {
            if let v = d[k]?.stringValue { parts.append("\(k)=\(v)") }
        }
        if let a = d["approved"]?.boolValue { parts.append("approved=\(a)") }
        if let a = d["amount"]?.doubleValue { parts.append("amount=\(num(a))") }
        if let lines = d["lines"]?.arrayValue {
            for q in ["qty", "qty_allocated", "qty_backordered", "qty_short", "qty_shipped"] {
                let values = lines.compactMap { $0[q]?.doubleValue }
                if !values.isEmpty { parts.append("\(q)=\(num(values.reduce(0, +))) in \(lines.count) line\(lines.count == 1 ? "" : "s")") }
            }
        }
        if let links = d["links"]?.arrayValue?.compactMap(\.stringValue), !links.isEmpty {
            parts.append("links=" + links.joined(separator: ","))
        }
        return parts.joined(separator: " ")
    }

    static func num(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d) }
}

/// Left-aligned columns separated by two spaces; the last column is not padded.
func table(_ rows: [[String]]) -> String {
    guard let width = rows.map(\.count).max() else { return "" }
    var widths = [Int](repeating: 0, count: width)
    for r in rows { for (i, c) in r.enumerated() { widths[i] = max(widths[i], c.count) } }
    var out = ""
    for r in rows {
        var line = ""
        for (i, c) in r.enumerated() {
            line += i == r.count - 1 ? c : c.padding(toLength: widths[i], withPad: " ", startingAt: 0) + "  "
        }
        while line.hasSuffix(" ") { line.removeLast() }
        out += line + "\n"
    }
    return out
}
