import Foundation
import Hummingbird
import NIOCore
import WaybillModel
import WaybillQuery
import WaybillStore

/// Server-rendered pages for people: a search page and the trace of one order. Self-contained
/// (inline CSS, no scripts, no network fetches), so they work offline and in mail.
enum WebPages {
    static func escape(_ s: String) -> String { HTMLText.escape(s) }

    static let style = """
        body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#fafafa}
        h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:24px 0 8px}
        table{border-collapse:collapse;background:#fff}td,th{padding:4px 10px;border-bottom:1px solid #e3e3e3;text-align:left;vertical-align:top}
        th{font-weight:600;color:#555}.muted{color:#777}.gap{color:#8a5a00;white-space:nowrap}code{font-size:12px}
        .state{display:inline-block;padding:1px 8px;border-radius:10px;background:#e7f0ff;color:#1d4ed8}
        form input,form select{margin-right:8px}a{color:#1d4ed8}nav a{margin-right:14px}
        """

    static func page(_ title: String, _ body: String) -> Response {
        let html = "<!doctype html><html><head><meta charset=\"utf-8\"><title>\(escape(title))</title><style>\(style)</style></head><body>"
            + "<nav><a href=\"/\">Orders</a><a href=\"/api/v1/kpis?format=html&amp;by=warehouse&amp;step=1d\">KPI report</a>"
            + "<a href=\"/alerts\">Alerts</a><a href=\"/openapi.json\">API</a></nav>" + body + "</body></html>"
        return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: html)))
    }

    static func trace(_ t: TraceDocument) -> Response {
        var b = "<h1>Order \(escape(t.correlationID)) <span class=\"state\">\(escape(t.state ?? "unknown"))</span></h1>"
        if t.keys.count > 1 { b += "<div class=\"muted\">keys: \(t.keys.map(escape).joined(separator: ", "))</div>" }
        b += "<h2>Timeline</h2><table><tr><th>time</th><th>gap</th><th>source</th><th>type</th><th>subject</th><th>data</th></tr>"
        for s in t.timeline {
            b += "<tr><td>\(escape(s.time))</td><td class=\"gap\">\(s.gapText)</td><td>\(escape(s.source))</td>"
                + "<td>\(escape(s.type))</td><td>\(escape(s.otherSubject))</td><td><code>\(escape(s.data?.jsonString ?? ""))</code></td></tr>"
        }
        b += "</table>"
        let f = t.facts
        if f != FactsDocument() {
            func text(_ v: String?) -> String { v ?? "–" }
            func seconds(_ v: Double?) -> String { v.map { DurationText.format(Micros($0 * 1e6)) } ?? "–" }
            func number(_ v: Double?) -> String { v.map { $0 == $0.rounded() ? String(Int64($0)) : String($0) } ?? "–" }
            func flag(_ v: Bool?) -> String { v.map { $0 ? "true" : "false" } ?? "–" }
            let rows: [(String, String)] = [
                ("accepted at", text(f.acceptedAt)), ("allocated at", text(f.allocatedAt)), ("released at", text(f.releasedAt)),
                ("shipped at", text(f.shippedAt)), ("allocation delay", seconds(f.allocationDelaySeconds)),
                ("shipment lag", seconds(f.shipmentLagSeconds)), ("units ordered", number(f.unitsOrdered)),
                ("units allocated first", number(f.unitsAllocatedFirst)), ("fully allocated first", flag(f.fullyAllocatedFirst)),
                ("on time", flag(f.onTime)), ("allocation warehouse", text(f.allocationWarehouse)),
                ("shipment warehouse", text(f.shipmentWarehouse)), ("channel", text(f.channel)), ("region", text(f.region)),
            ]
            b += "<h2>Facts</h2><table>"
            for (k, v) in rows { b += "<tr><th>\(k)</th><td>\(escape(v))</td></tr>" }
            b += "</table>"
        }
        b += "<p class=\"muted\"><a href=\"/api/v1/traces/\(URLText.pathSegment(t.correlationID))\">JSON</a></p>"
        return page("Order \(t.correlationID)", b)
    }

    static func search(_ params: [String: String], _ page: OrderPage?, error: String?) -> Response {
        func field(_ name: String, _ placeholder: String) -> String {
            "<input name=\"\(name)\" placeholder=\"\(placeholder)\" value=\"\(escape(params[name] ?? ""))\" size=\"12\">"
        }
        var b = "<h1>Orders</h1><form method=\"get\" action=\"/\">"
            + "<input name=\"key\" placeholder=\"order id or linked key\" size=\"24\"> "
            + field("state", "state") + field("warehouse", "warehouse") + field("channel", "channel") + field("stuck", "stuck for, e.g. 2h")
            + field("from", "from, e.g. -1d") + "<button>Search</button></form>"
        if let error { b += "<p style=\"color:#b91c1c\">\(escape(error))</p>" }
        if let page {
            b += "<table><tr><th>order</th><th>state</th><th>in state since</th><th>first event</th><th>last event</th><th>events</th><th>warehouse</th><th>channel</th></tr>"
            for o in page.orders {
                b += "<tr><td><a href=\"/traces/\(URLText.pathSegment(o.correlationID))\">\(escape(o.correlationID))</a></td><td>\(escape(o.state?.name ?? "–"))</td>"
                    + "<td>\(o.stateSince.map(RFC3339.format) ?? "–")</td><td>\(RFC3339.format(o.firstEventAt))</td><td>\(RFC3339.format(o.lastEventAt))</td>"
                    + "<td>\(o.eventCount)</td><td>\(escape(o.warehouse ?? "–"))</td><td>\(escape(o.channel ?? "–"))</td></tr>"
            }
            b += "</table>"
            if let next = page.nextCursor {
                var q = params
                q["cursor"] = next
                b += "<p><a href=\"/?\(escape(URLText.query(q)))\">next page</a></p>"
            }
        }
        return Self.page("Waybill orders", b)
    }
}

extension WaybillAPI {
    func tracePage(_ req: Request, _ ctx: BasicRequestContext) async throws -> Response {
        let key = try ctx.pathKey()
        guard let trace = try await queries.trace(key: key) else {
            return WebPages.search([:], nil, error: "No order or linked key '\(key)' is known.")
        }
        return WebPages.trace(trace)
    }

    func indexPage(_ req: Request) async throws -> Response {
        var params = req.parameterDictionary.filter { !$0.value.isEmpty }
        if let key = params.removeValue(forKey: "key") {
            return Response(status: .seeOther, headers: [.location: "/traces/" + URLText.pathSegment(key)])
        }
        do {
            return WebPages.search(params, try await queries.search(SearchRequest(parameters: params)), error: nil)
        } catch let e as QueryFailure {
            return WebPages.search(params, nil, error: e.description)
        }
    }
}
