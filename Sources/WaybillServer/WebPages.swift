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

    /// A page whose body is markup built in Swift (escaped piece by piece), inside the shared layout.
    static func page(_ title: String, _ body: String) -> Response {
        render("page", ["title": title, "bodyHTML": TrustedHTML(escapedMarkup: body)] as [String: Any])
    }

    struct SearchPage {
        struct Field { var name, placeholder, value: String }
        struct Row { var href, id, state, since, first, last, warehouse, channel: String; var events: Int }
        var title = "Orders"
        var action: String
        var fields: [Field]
        var error: String?
        var searched: Bool
        var orders: [Row]
        var next: String?
    }

    /// The orders search (`/search`, and `/` with filters): a form and one page of orders, most recent first.
    static func search(_ params: [String: String], _ page: OrderPage?, error: String?, action: String = "/search",
                       status: HTTPResponse.Status = .ok) -> Response {
        let fields = [("state", "state"), ("warehouse", "warehouse"), ("channel", "channel"), ("stuck", "stuck for, e.g. 2h"), ("from", "from, e.g. -1d")]
            .map { SearchPage.Field(name: $0.0, placeholder: $0.1, value: params[$0.0] ?? "") }
        let rows = (page?.orders ?? []).map { (o: OrderSummary) -> SearchPage.Row in
            SearchPage.Row(href: orderLink(o.correlationID), id: o.correlationID, state: o.state?.name ?? "–",
                           since: o.stateSince.map(RFC3339.format) ?? "–", first: RFC3339.format(o.firstEventAt),
                           last: RFC3339.format(o.lastEventAt), warehouse: o.warehouse ?? "–", channel: o.channel ?? "–", events: o.eventCount)
        }
        var next: String?
        if let cursor = page?.nextCursor {
            var q = params
            q["cursor"] = cursor
            next = action + "?" + URLText.query(q)
        }
        return render("search", SearchPage(action: action, fields: fields, error: error, searched: page != nil, orders: rows, next: next), status: status)
    }

    /// Where a page links an order: its trace page (`/traces/{key}`).
    static func orderLink(_ key: String) -> String { "/traces/" + URLText.pathSegment(key) }
}

extension WaybillAPI {
    /// `/`: the overview; with search parameters (links made before the overview existed) the orders
    /// search, and `?key=` redirects to the order's trace page.
    func indexPage(_ req: Request) async throws -> Response {
        var params = req.parameterDictionary.filter { !$0.value.isEmpty }
        if let key = params.removeValue(forKey: "key") {
            return Response(status: .seeOther, headers: [.location: "/traces/" + URLText.pathSegment(key)])
        }
        if params.isEmpty { return try await overviewPage(req) }
        return try await searchResults(params, action: "/")
    }

    /// `/search`: the layout's search box sends `?key=` (any order id or linked key), redirected to
    /// `/orders/{key}`; other parameters search orders by their facts.
    func searchPage(_ req: Request) async throws -> Response {
        var params = req.parameterDictionary.filter { !$0.value.isEmpty }
        if let key = params.removeValue(forKey: "key") {
            return Response(status: .seeOther, headers: [.location: "/orders/" + URLText.pathSegment(key)])
        }
        return try await searchResults(params, action: "/search")
    }

    func searchResults(_ params: [String: String], action: String) async throws -> Response {
        do {
            return WebPages.search(params, try await queries.search(SearchRequest(parameters: params)), error: nil, action: action)
        } catch let e as QueryFailure {
            // `/search` answers a refused parameter with 400 (the page, naming it); `/` keeps its older 200.
            return WebPages.search(params, nil, error: e.description, action: action, status: action == "/search" ? .badRequest : .ok)
        }
    }
}
