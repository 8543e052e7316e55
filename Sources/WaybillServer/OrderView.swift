import Foundation
import Hummingbird
import WaybillModel
import WaybillQuery

/// `/orders/{key}` (and `/traces/{key}`): one order as people read it. The business timeline with its
/// gaps drawn to scale, each lifecycle step against the same step's usual duration (the trace
/// document's `steps`), the span waterfall of the order's traces on the same time axis, each event's
/// key data in words (its JSON one click away), the facts and linked keys as links. Everything comes
/// from the trace document (`WaybillQueries.trace`), the same as `GET /api/v1/traces/{key}`.
struct OrderView {
    struct Key { var text: String; var href: String; var current: Bool }
    struct Step {
        var name, started, gap, p50, p90, samples, verdict, verdictClass, note: String
    }
    struct Event {
        var time, gap, source, type, words, json: String
        /// Set when the event is of a linked key rather than the order itself.
        var subject: String?
        var subjectHref: String?
    }
    struct Fact { var label, value: String; var href: String? }
    struct ErrorSpan { var time, service, name, duration, message: String }

    var title: String
    var id: String
    var state: String
    var stateSince: String?
    var keys: [Key]
    var context: String
    /// The steps far outside their usual duration, in words (the answer to "why is it late").
    var findings: [String]
    var comparedAt: String
    var steps: [Step]
    var timelineSVG: TrustedHTML
    var spanCount: Int
    var traceCount: Int
    var hasSpans: Bool
    var errorSpans: [ErrorSpan]
    var events: [Event]
    var facts: [Fact]
    var jsonHref: String

    init(_ doc: TraceDocument, now: Micros) {
        id = doc.correlationID
        title = "Order " + doc.correlationID
        state = doc.state ?? "unknown"
        stateSince = doc.facts.stateSince
        keys = doc.keys.map { Key(text: $0, href: WebPages.orderPath($0), current: $0 == doc.correlationID) }
        var context: [String] = []
        if let c = doc.facts.channel { context.append("channel " + c) }
        if let r = doc.facts.region { context.append("region " + r) }
        if let p = doc.facts.promisedShipBy { context.append("promised to ship by " + p) }
        self.context = context.joined(separator: " · ")
        comparedAt = doc.steps.first.map { $0.warehouse.map { "at " + $0 } ?? "at every warehouse" } ?? ""
        findings = []
        steps = []
        for s in doc.steps {
            let verdict = s.verdict(now: now)
            let gap: Micros? = s.gapSeconds.map { Micros(($0 * 1e6).rounded()) } ?? RFC3339.parse(s.startedAt).map { Swift.max(0, now - $0) }
            var text = verdict.rawValue.replacingOccurrences(of: "_", with: " ")
            var note = ""
            if verdict == .noHistory { text = "too few to compare" }
            if verdict == .inProgress { note = s.slowAfter.map { "slow after " + $0 } ?? "" }
            if let p90 = s.p90Seconds, p90 > 0, let g = gap, verdict == .slow || verdict == .veryslow {
                note = String(format: "%.1f× p90", Double(g) / 1e6 / p90)
                findings.append("\(s.name) took \(DurationText.format(g))\(s.to == nil ? " so far" : ""): \(text), "
                                + "\(note) (usually \(Self.seconds(s.p50Seconds)), 90% within \(Self.seconds(s.p90Seconds)), \(s.samples) steps \(comparedAt))")
            }
            steps.append(Step(name: s.name, started: s.startedAt, gap: gap.map { DurationText.format($0) + (s.to == nil ? " so far" : "") } ?? "–",
                              p50: Self.seconds(s.p50Seconds), p90: Self.seconds(s.p90Seconds), samples: String(s.samples), verdict: text,
                              verdictClass: verdict.rawValue, note: note))
        }
        timelineSVG = TrustedHTML(escapedMarkup: OrderTimelineSVG(doc, now: now).markup)
        spanCount = doc.spans.count
        hasSpans = !doc.spans.isEmpty
        traceCount = Set(doc.spans.map(\.traceID)).count
        errorSpans = doc.spans.filter(\.isError).prefix(50).map {
            ErrorSpan(time: $0.start, service: $0.service, name: $0.name, duration: DurationText.format(Micros($0.durationMillis * 1000)),
                      message: $0.statusMessage ?? "")
        }
        events = zip(doc.timeline, doc.events).map { s, raw in
            Event(time: s.time, gap: s.gapText, source: s.source, type: s.type, words: EventWords.describe(type: s.type, data: s.data),
                  json: raw.jsonString, subject: s.otherSubject.isEmpty ? nil : s.otherSubject,
                  subjectHref: s.otherSubject.isEmpty ? nil : WebPages.orderPath(s.otherSubject))
        }
        facts = Self.facts(doc.facts)
        jsonHref = "/api/v1/traces/" + URLText.pathSegment(doc.correlationID)
    }

    static func seconds(_ v: Double?) -> String { v.map { DurationText.format(Micros(($0 * 1e6).rounded())) } ?? "–" }

    /// Each fact in words; the ones people search by link to the orders that share them.
    static func facts(_ f: FactsDocument) -> [Fact] {
        guard f != FactsDocument() else { return [] }
        func search(_ name: String, _ v: String?) -> String? { v.map { "/search?" + URLText.query([name: $0]) } }
        func number(_ v: Double?) -> String { v.map { $0 == $0.rounded() && abs($0) < 1e15 ? String(Int64($0)) : String($0) } ?? "–" }
        func flag(_ v: Bool?) -> String { v.map { $0 ? "yes" : "no" } ?? "–" }
        var fill = number(f.unitsAllocatedFirst)
        if let r = f.firstAllocationFill { fill += String(format: " (%.1f%%)", r * 100) }
        return [
            Fact(label: "state", value: f.state ?? "–", href: search("state", f.state)),
            Fact(label: "in state since", value: f.stateSince ?? "–"),
            Fact(label: "accepted at", value: f.acceptedAt ?? "–"),
            Fact(label: "allocated at", value: f.allocatedAt ?? "–"),
            Fact(label: "released at", value: f.releasedAt ?? "–"),
            Fact(label: "shipped at", value: f.shippedAt ?? "–"),
            Fact(label: "allocation delay", value: seconds(f.allocationDelaySeconds)),
            Fact(label: "shipment lag", value: seconds(f.shipmentLagSeconds)),
            Fact(label: "units ordered", value: number(f.unitsOrdered)),
            Fact(label: "units allocated first", value: fill),
            Fact(label: "fully allocated first", value: flag(f.fullyAllocatedFirst)),
            Fact(label: "on time", value: flag(f.onTime)),
            Fact(label: "promised ship by", value: f.promisedShipBy ?? "–"),
            Fact(label: "allocation warehouse", value: f.allocationWarehouse ?? "–", href: search("warehouse", f.allocationWarehouse)),
            Fact(label: "shipment warehouse", value: f.shipmentWarehouse ?? "–", href: search("warehouse", f.shipmentWarehouse)),
            Fact(label: "channel", value: f.channel ?? "–", href: search("channel", f.channel)),
            Fact(label: "region", value: f.region ?? "–", href: search("region", f.region)),
        ]
    }
}

/// An event's data in words: `2 lines, 5 units · channel web`, `4 of 5 units allocated at DC-EAST`.
enum EventWords {
    static func describe(type: String, data: JSONValue?) -> String {
        guard let d = data?.objectValue, !d.isEmpty else { return "" }
        var parts: [String] = []
        if let lines = d["lines"]?.arrayValue {
            func total(_ k: String) -> Double? {
                let v = lines.compactMap { $0[k]?.doubleValue }
                return v.isEmpty ? nil : v.reduce(0, +)
            }
            var s = "\(lines.count) line\(lines.count == 1 ? "" : "s")"
            for (k, label) in [("qty", "units"), ("qty_allocated", "allocated"), ("qty_backordered", "backordered"), ("qty_short", "short"),
                               ("qty_shipped", "shipped")] {
                if let v = total(k) { s += ", \(num(v)) \(label)" }
            }
            let whs = Set(lines.compactMap { $0["warehouse"]?.stringValue })
            if whs.count > 1 { s += " from " + whs.sorted().joined(separator: ", ") }
            parts.append(s)
        }
        let order = ["warehouse", "carrier", "tracking", "channel", "region", "customer", "promised_ship_by", "reason", "stage", "approved", "amount", "currency"]
        let keys = order.filter { d[$0] != nil } + d.keys.sorted().filter { !order.contains($0) && $0 != "lines" && $0 != "links" }
        for k in keys {
            guard let v = d[k] else { continue }
            let label = k.replacingOccurrences(of: "_", with: " ")
            switch v {
            case .string(let s): parts.append("\(label) \(s)")
            case .number(let n): parts.append("\(label) \(num(n))")
            case .bool(let b): parts.append("\(label) \(b ? "yes" : "no")")
            case .array(let a): parts.append("\(label): \(a.count) item\(a.count == 1 ? "" : "s")")
            case .object(let o): parts.append("\(label): \(o.count) field\(o.count == 1 ? "" : "s")")
            case .null: break
            }
        }
        if let links = d["links"]?.arrayValue?.compactMap(\.stringValue), !links.isEmpty {
            parts.append("links " + links.joined(separator: ", "))
        }
        return parts.joined(separator: " · ")
    }

    static func num(_ d: Double) -> String { d == d.rounded() && abs(d) < 1e15 ? String(Int64(d)) : String(d) }
}

/// The order's timeline as inline SVG: the lifecycle steps as bars between their stages' times
/// (coloured by verdict), every event as a tick, and beneath, on the same time axis, one row per span
/// (at least 2 px wide, errors red), indented by depth in its trace. Every text from data escaped.
struct OrderTimelineSVG {
    let markup: String
    static let width = 1000.0, labelWidth = 250.0, rowHeight = 14.0, maxSpanRows = 200

    init(_ doc: TraceDocument, now: Micros) {
        let e = HTMLText.escape
        let eventTimes = doc.events.compactMap { $0["time"]?.stringValue.flatMap(RFC3339.parse) }
        let spans = doc.spans.compactMap { s -> (SpanDocument, Micros, Micros)? in
            guard let a = RFC3339.parse(s.start), let b = RFC3339.parse(s.end) else { return nil }
            return (s, a, b)
        }
        // The axis runs to now while a step is in progress, unless nothing ever left that stage (no
        // history: say, shipped where no carrier reports deliveries), which would squash every other step.
        let openStep = doc.steps.last.flatMap { $0.to == nil ? $0 : nil }
        var times = eventTimes + spans.flatMap { [$0.1, $0.2] }
        if let o = openStep, o.samples > 0 { times.append(now) }
        guard let t0 = times.min(), var t1 = times.max() else {
            markup = ""
            return
        }
        t1 = Swift.max(t1, t0 + 1_000_000)
        let plot = Self.width - Self.labelWidth - 10
        func x(_ t: Micros) -> Double { Self.labelWidth + Double(t - t0) / Double(t1 - t0) * plot }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        var rows: [String] = []
        var y = 28.0
        // Axis: start, end and three ticks between, as offsets from the first event.
        var axis = "<line x1=\"\(f(Self.labelWidth))\" y1=\"18\" x2=\"\(f(Self.labelWidth + plot))\" y2=\"18\" stroke=\"#999\"/>"
        for k in 0...4 {
            let t = t0 + (t1 - t0) * Micros(k) / 4
            let label = k == 0 ? RFC3339.format(t0) : "+" + DurationText.format(t - t0)
            let anchor = k == 0 ? "start" : (k == 4 ? "end" : "middle")
            axis += "<line x1=\"\(f(x(t)))\" y1=\"14\" x2=\"\(f(x(t)))\" y2=\"22\" stroke=\"#999\"/>"
                + "<text x=\"\(f(x(t)))\" y=\"11\" text-anchor=\"\(anchor)\" class=\"ax\">\(e(label))</text>"
        }
        rows.append(axis)
        // Lifecycle steps.
        let colours: [StepDocument.Verdict: String] = [.typical: "#86c79a", .slow: "#f2b84b", .veryslow: "#e0524f", .noHistory: "#b8c2cc", .inProgress: "#93b4f5"]
        for s in doc.steps {
            guard let a = RFC3339.parse(s.startedAt) else { continue }
            let b = Swift.min(s.endedAt.flatMap(RFC3339.parse) ?? now, t1)
            let v = s.verdict(now: now)
            let gap = s.gapSeconds.map { DurationText.format(Micros($0 * 1e6)) } ?? DurationText.format(Swift.max(0, now - a)) + " so far"
            rows.append("<g><title>\(e(s.name)): \(e(gap)), \(e(v.rawValue))\(s.p90Seconds.map { ", p90 " + DurationText.format(Micros($0 * 1e6)) } ?? "")</title>"
                        + "<text x=\"4\" y=\"\(f(y + 10))\" class=\"lb\">\(e(s.name))</text>"
                        + "<rect x=\"\(f(x(a)))\" y=\"\(f(y + 1))\" width=\"\(f(Swift.max(2, x(b) - x(a))))\" height=\"\(f(Self.rowHeight - 3))\" fill=\"\(colours[v] ?? "#ccc")\""
                        + (s.to == nil ? " fill-opacity=\"0.6\" stroke=\"#5577cc\" stroke-dasharray=\"3 2\"" : "") + "/>"
                        + "<text x=\"\(f(Swift.min(x(b) + 4, Self.width - 4)))\" y=\"\(f(y + 10))\" class=\"gp\"\(x(b) + 4 > Self.width - 80 ? " text-anchor=\"end\"" : "")>\(e(gap))</text></g>")
            y += Self.rowHeight
        }
        // Events as ticks on one row.
        var ticks = "<text x=\"4\" y=\"\(f(y + 10))\" class=\"lb\">events (\(doc.events.count))</text>"
        for (ev, t) in zip(doc.events, eventTimes) {
            let type = ev["type"]?.stringValue ?? ""
            ticks += "<line x1=\"\(f(x(t)))\" y1=\"\(f(y + 1))\" x2=\"\(f(x(t)))\" y2=\"\(f(y + Self.rowHeight - 2))\" stroke=\"#1d4ed8\" stroke-width=\"2\">"
                + "<title>\(e(RFC3339.format(t))) \(e(type))</title></line>"
        }
        rows.append(ticks)
        y += Self.rowHeight + 6
        // Spans: per trace, depth-first by parent, on the same axis.
        if !spans.isEmpty {
            rows.append("<line x1=\"0\" y1=\"\(f(y - 3))\" x2=\"\(f(Self.width))\" y2=\"\(f(y - 3))\" stroke=\"#e3e3e3\"/>")
            var shown = 0
            let byTrace = Dictionary(grouping: spans, by: { $0.0.traceID }).sorted { ($0.value.map(\.1).min()!, $0.key) < ($1.value.map(\.1).min()!, $1.key) }
            outer: for (_, list) in byTrace {
                let ids = Set(list.map(\.0.spanID))
                var children: [String: [(SpanDocument, Micros, Micros)]] = [:]
                var roots: [(SpanDocument, Micros, Micros)] = []
                for s in list {
                    if let p = s.0.parentSpanID, ids.contains(p) { children[p, default: []].append(s) } else { roots.append(s) }
                }
                var stack: [((SpanDocument, Micros, Micros), Int)] = roots.sorted { $0.1 > $1.1 }.map { ($0, 0) }
                while let (s, depth) = stack.popLast() {
                    if shown == Self.maxSpanRows {
                        rows.append("<text x=\"4\" y=\"\(f(y + 10))\" class=\"lb\">… \(spans.count - shown) more spans (the JSON has all)</text>")
                        y += Self.rowHeight
                        break outer
                    }
                    let (span, a, b) = s
                    let label = String(repeating: "\u{00A0}\u{00A0}", count: Swift.min(depth, 8)) + (span.isError ? "✗ " : "") + span.service + " " + span.name
                    let clipped = label.count > 40 ? String(label.prefix(39)) + "…" : label
                    let colour = span.isError ? "#e0524f" : "#7a9cc6"
                    rows.append("<g><title>\(e(span.service)) \(e(span.name)): \(e(DurationText.format(b - a)))\(span.isError ? ", error" : "")\(span.statusMessage.map { ": " + e($0) } ?? "")</title>"
                                + "<text x=\"4\" y=\"\(f(y + 10))\" class=\"lb\(span.isError ? " err" : "")\">\(e(clipped))</text>"
                                + "<rect x=\"\(f(x(a)))\" y=\"\(f(y + 2))\" width=\"\(f(Swift.max(2, x(b) - x(a))))\" height=\"\(f(Self.rowHeight - 4))\" fill=\"\(colour)\"/></g>")
                    y += Self.rowHeight
                    shown += 1
                    for c in (children[span.spanID] ?? []).sorted(by: { $0.1 > $1.1 }) { stack.append((c, depth + 1)) }
                }
            }
        }
        let height = y + 4
        markup = "<svg class=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 \(f(Self.width)) \(f(height))\" width=\"100%\" role=\"img\" aria-label=\"order timeline\">"
            + "<style>.ax{font:10px sans-serif;fill:#555}.lb{font:10px sans-serif;fill:#333}.lb.err{fill:#b91c1c}.gp{font:10px sans-serif;fill:#8a5a00}</style>"
            + rows.joined() + "</svg>"
    }
}

extension WebPages {
    /// Where a page links an order or linked key.
    static func orderPath(_ key: String) -> String { "/orders/" + URLText.pathSegment(key) }
}

extension WaybillAPI {
    /// `/orders/{key}` and `/traces/{key}`: the order page; an unknown key shows the search form naming it.
    func orderPage(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let key = try ctx.pathKey()
        guard let trace = try await queries.trace(key: key) else {
            return WebPages.search([:], nil, error: "No order or linked key '\(key)' is known.")
        }
        return WebPages.render("order", OrderView(trace, now: clock()))
    }
}
