import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import WaybillAlerts
import WaybillKPI
import WaybillModel
import WaybillSQLite
import WaybillServer
import WaybillStore
import WaybillTestSupport

/// A start tag as a browser would read it: its name and attributes (values as written, entities not decoded).
struct HTMLTag {
    var name: String
    var attributes: [(name: String, value: String)]
}

/// The start tags of a page, read the way an HTML parser splits them (quoted and unquoted values,
/// comments and the doctype skipped, `<style>` content skipped), so that a value that broke out of its
/// attribute shows up as an attribute of its own and injected markup as a tag of its own.
func startTags(_ html: String) -> [HTMLTag] {
    let b = Array(html.utf8)
    var i = 0
    var tags: [HTMLTag] = []
    func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 || c == 0x0A || c == 0x0C || c == 0x0D }
    func isLetter(_ c: UInt8) -> Bool { (c | 0x20) >= UInt8(ascii: "a") && (c | 0x20) <= UInt8(ascii: "z") }
    while i < b.count {
        guard b[i] == UInt8(ascii: "<"), i + 1 < b.count else { i += 1; continue }
        let next = b[i + 1]
        if next == UInt8(ascii: "!") || next == UInt8(ascii: "/") || next == UInt8(ascii: "?") {
            while i < b.count && b[i] != UInt8(ascii: ">") { i += 1 }
            continue
        }
        guard isLetter(next) else { i += 1; continue }
        i += 1
        var name: [UInt8] = []
        while i < b.count, !isSpace(b[i]), b[i] != UInt8(ascii: ">"), b[i] != UInt8(ascii: "/") { name.append(b[i]); i += 1 }
        var tag = HTMLTag(name: String(decoding: name, as: UTF8.self).lowercased(), attributes: [])
        while i < b.count {
            while i < b.count && (isSpace(b[i]) || b[i] == UInt8(ascii: "/")) { i += 1 }
            guard i < b.count, b[i] != UInt8(ascii: ">") else { break }
            var an: [UInt8] = []
            repeat { an.append(b[i]); i += 1 } while i < b.count && !isSpace(b[i]) && b[i] != UInt8(ascii: "=") && b[i] != UInt8(ascii: ">") && b[i] != UInt8(ascii: "/")
            var value: [UInt8] = []
            while i < b.count && isSpace(b[i]) { i += 1 }
            if i < b.count, b[i] == UInt8(ascii: "=") {
                i += 1
                while i < b.count && isSpace(b[i]) { i += 1 }
                if i < b.count, b[i] == UInt8(ascii: "\"") || b[i] == UInt8(ascii: "'") {
                    let q = b[i]
                    i += 1
                    while i < b.count && b[i] != q { value.append(b[i]); i += 1 }
                    i += 1
                } else {
                    while i < b.count && !isSpace(b[i]) && b[i] != UInt8(ascii: ">") { value.append(b[i]); i += 1 }
                }
            }
            tag.attributes.append((String(decoding: an, as: UTF8.self).lowercased(), String(decoding: value, as: UTF8.self)))
        }
        i += 1
        tags.append(tag)
        if tag.name == "style" {
            // Skip the style sheet (the pages' own, constant), which a parser does not read as tags.
            let end = Array("</style>".utf8)
            while i < b.count && !(b[i] == end[0] && Array(b[i..<min(b.count, i + end.count)]) == end) { i += 1 }
        }
    }
    return tags
}

/// Every page, fed events and spans whose every field holds markup, quotes and `javascript:` URLs: the
/// values are shown escaped, no tag, attribute or link comes from them, and each page sends its
/// Content-Security-Policy, `X-Frame-Options: DENY` and `nosniff`.
@Suite struct PageSafetyTests {
    static let evil = #"<script>alert(1)</script>"'><img src=x onerror=alert(1)>javascript:alert(1)"#
    static let order = "ORD-" + evil
    static let other = "ORD-2" + evil
    static let traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
    static let t0 = "2026-11-20T10:00:00Z"

    static let brushScript = #"<script src="/assets/brush.js" defer></script>"#

    /// The tags and attributes the pages are made of; anything else came from data.
    static let allowedTags: Set<String> = [
        "html", "head", "meta", "title", "style", "body", "nav", "a", "h1", "h2", "div", "span", "table", "thead", "tbody", "tr", "th", "td",
        "code", "p", "form", "input", "button", "header", "section", "figure", "figcaption", "svg", "line", "text", "path", "circle",
        "ol", "li", "small",
        // The forms of the KPI and alerts pages.
        "label", "select", "option",
        // The order page and the service map.
        "ul", "details", "summary", "pre", "strong", "g", "rect", "defs", "marker",
    ]
    static let allowedAttributes: Set<String> = [
        "charset", "name", "content", "lang", "href", "class", "style", "placeholder", "value", "size", "method", "action", "id", "colspan",
        "viewbox", "role", "aria-label", "x1", "x2", "y1", "y2", "x", "y", "text-anchor", "d", "fill", "stroke", "stroke-width",
        "stroke-linejoin", "cx", "cy", "r",
        // The forms of the KPI and alerts pages, and the auto-refresh of the overview and alerts pages.
        "selected", "http-equiv", "preserveaspectratio",
        // The order page and the service map.
        "xmlns", "width", "height", "rx", "fill-opacity", "stroke-dasharray", "marker-end", "refx", "refy", "markerwidth", "markerheight", "markerunits", "orient",
        // Charts with a time axis that brush.js makes draggable.
        "data-brush-href", "data-brush-from", "data-brush-to", "data-brush-x0", "data-brush-x1",
        // A hint on the KPI form's split field.
        "title",
    ]

    static func events() -> String {
        let e = evil
        let common: [String: JSONValue] = ["traceparent": .string("00-\(traceID)-00f067aa0ba902b7-01")]
        return [
            eventJSON("id-" + e + "-1", "order.accepted", t0, order, source: "src-" + e, data: [
                "channel": .string(e), "region": .string(e), e: .string(e),
                "nested": .object([e: .array([.string(e), .string("javascript:alert(1)")])]),
                "lines": [["line": 1, "sku": .string(e), "qty": 2]],
                "links": [.string("javascript:alert(1)"), .string("link:" + e)],
                "url": "javascript:alert(1)",
            ], extra: common),
            eventJSON("id-" + e + "-2", "order.allocated", "2026-11-20T12:00:00Z", order, source: "src-" + e, data: [
                "warehouse": .string(e), "lines": [["line": 1, "qty_allocated": 2]],
            ]),
            eventJSON("id-" + e + "-3", "order.released", "2026-11-20T12:01:00Z", order, source: "src-" + e, data: ["warehouse": .string(e)]),
            eventJSON("id-" + e + "-4", "note." + e, "2026-11-20T12:02:00Z", "link:" + e, source: "src-" + e, data: [e: .string(e)]),
            eventJSON("id-" + e + "-5", "order.accepted", t0, other, source: "src-" + e, data: [
                "channel": .string(e), "lines": [["line": 1, "sku": "A", "qty": 1]],
            ]),
        ].joined(separator: "\n")
    }

    static func spans() -> String {
        let e = evil
        func attr(_ k: String, _ v: String) -> JSONValue { ["key": .string(k), "value": ["stringValue": .string(v)]] }
        let doc: JSONValue = ["resourceSpans": [[
            "resource": ["attributes": [attr("service.name", e), attr(e, e)]],
            "scopeSpans": [["scope": ["name": .string(e)], "spans": [[
                "traceId": .string(traceID), "spanId": "00f067aa0ba902b7", "name": .string(e),
                "startTimeUnixNano": "1795168800000000000", "endTimeUnixNano": "1795168800250000000",
                "attributes": [attr("order.id", order), attr(e, e), attr("url", "javascript:alert(1)")],
                "status": ["code": 2, "message": .string(e)],
                "events": [["timeUnixNano": "1795168800100000000", "name": .string(e), "attributes": [attr(e, e)]]],
                "links": [["traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "attributes": [attr(e, e)]]],
            ]]]],
        ]]]
        return doc.jsonString
    }

    /// Checks one page; `shows` says it must show the hostile text (escaped), so the check is not vacuous.
    static func checkPage(_ uri: String, _ r: TestResponse, shows: Bool = true, status: HTTPResponse.Status = .ok) {
        #expect(r.status == status, "\(uri): \(r.status)")
        #expect(r.headers[.contentType]?.hasPrefix("text/html") == true, "\(uri)")
        #expect(r.headers[.contentSecurityPolicy]
            == "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'", "\(uri)")
        #expect(r.headers[.init("X-Frame-Options")!] == "DENY", "\(uri)")
        #expect(r.headers[.xContentTypeOptions] == "nosniff", "\(uri)")
        // The one script a page loads is the brushing of time-axis charts, from a file the server serves; the
        // self-contained report for mail (`/api/v1/kpis?format=html`) loads none.
        let page = String(buffer: r.body)
        #expect(page.components(separatedBy: brushScript).count == (uri.hasPrefix("/api/") ? 1 : 2), "\(uri): the page loads /assets/brush.js once")
        let html = page.replacingOccurrences(of: brushScript, with: "")
        #expect(!html.lowercased().contains("<script"), "\(uri): unescaped <script")
        #expect(!html.contains(evil), "\(uri): the hostile text unescaped")
        #expect(!html.contains(#""'>"#), "\(uri): quotes that close an attribute")
        for link in ["href=\"javascript:", "href='javascript:", "href=javascript:"] {
            #expect(!html.lowercased().contains(link), "\(uri): \(link)")
        }
        if shows { #expect(html.contains(HTMLText.escape(evil)), "\(uri) does not show the hostile text") }
        for tag in startTags(html) {
            #expect(allowedTags.contains(tag.name), "\(uri): a <\(tag.name)> tag the pages do not make")
            for (name, value) in tag.attributes {
                #expect(allowedAttributes.contains(name), "\(uri): attribute \(name)=\"\(value)\" on <\(tag.name)>")
                if name == "href" || name == "action" || name == "data-brush-href" {
                    #expect(value.hasPrefix("/") && !value.hasPrefix("//"), "\(uri): \(name)=\"\(value)\" leaves the site")
                    #expect(!value.lowercased().hasPrefix("javascript:"), "\(uri): \(name)=\"\(value)\"")
                }
                if name == "style" { #expect(!value.contains("(") && !value.contains("&"), "\(uri): style=\"\(value)\"") }
            }
        }
    }

    @Test func theTagScannerSeesInjectedMarkup() {
        let broken = #"<p><a href="/x" title="a"'><img src=x onerror=alert(1)>">x</a><input value='a' onfocus=y></p>"#
        let tags = startTags(broken)
        #expect(tags.map(\.name) == ["p", "a", "img", "input"])
        #expect(tags[1].attributes.map(\.name) == ["href", "title", "'"])
        #expect(tags[2].attributes.map(\.name) == ["src", "onerror"])
        #expect(tags[3].attributes.map(\.name) == ["value", "onfocus"])
    }

    @Test func everyPageEscapesHostileEventsAndSpansAndSendsItsHeaders() async throws {
        let store = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
        defer { store.close() }
        let alerting = Alerting(config: try DemoService.shippedAlertRules(), source: StoreAlertSource(store: store), store: store,
                                baseURL: "http://127.0.0.1:4318", transport: CountingTransport())
        let app = buildApplication(store: store, config: ServerConfig(), alerting: alerting)
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/x-ndjson"],
                                     body: ByteBuffer(string: Self.events())) { r in
                #expect(r.status == .ok)
                #expect(r.json["accepted"] == 5, "\(r.json)")
            }
            try await client.execute(uri: "/v1/traces", method: .post, headers: [.contentType: "application/json"],
                                     body: ByteBuffer(string: Self.spans())) { r in
                #expect(r.status == .ok)
                #expect(r.json == [:], "\(r.json)")
            }
            // The stored trace carries every hostile field, so the pages below have them to show.
            try await client.execute(uri: "/api/v1/traces/" + URLText.pathSegment(Self.order), method: .get) { r in
                #expect(r.json["keys"]?.arrayValue?.count == 3)
                #expect(r.json["spans"]?.arrayValue?.first?["service"]?.stringValue == Self.evil)
                #expect(r.headers[.xContentTypeOptions] == "nosniff")
            }

            // The trace page by each key, the search page (with hostile filters too), an unknown hostile key.
            for key in [Self.order, "link:" + Self.evil, "javascript:alert(1)", Self.other] {
                for page in ["/traces/", "/orders/"] {
                    let uri = page + URLText.pathSegment(key)
                    try await client.execute(uri: uri, method: .get) { r in Self.checkPage(uri, r) }
                }
            }
            // The service map of the hostile span's day, and with hostile window parameters (refused, shown escaped).
            for uri in ["/services?" + URLText.query(["from": "2026-11-20T00:00:00Z", "to": "2026-11-21T00:00:00Z"]),
                        "/services?" + URLText.query(["from": Self.evil])] {
                try await client.execute(uri: uri, method: .get) { r in
                    Self.checkPage(uri, r, status: uri.contains("2026") ? .ok : .badRequest)
                }
            }
            for uri in ["/", "/?" + URLText.query(["channel": Self.evil]), "/?" + URLText.query(["state": Self.evil]),
                        "/?" + URLText.query(["from": Self.evil]), "/traces/" + URLText.pathSegment("unknown" + Self.evil)] {
                try await client.execute(uri: uri, method: .get) { r in Self.checkPage(uri, r) }
            }
            // The alerts page three days on: the order released to the hostile warehouse has not shipped, the other is not allocated.
            let alerts = "/alerts?" + URLText.query(["at": "2026-11-23T10:00:00Z"])
            try await client.execute(uri: alerts, method: .get) { r in
                Self.checkPage(alerts, r)
                #expect(String(buffer: r.body).contains("href=\"/traces/" + URLText.pathSegment(Self.order) + "\""), "the alert lists the order")
            }
            // The KPI report by the hostile warehouse and channel; its drill-down lists the order.
            for by in ["warehouse", "channel"] {
                let uri = "/api/v1/kpis?" + URLText.query(["format": "html", "from": "2026-11-19T00:00:00Z", "to": "2026-11-22T00:00:00Z",
                                                           "by": by, "step": "1d"])
                try await client.execute(uri: uri, method: .get) { r in
                    Self.checkPage(uri, r)
                    #expect(String(buffer: r.body).contains("href=\"/traces/"), "\(uri): the drill-down lists no order")
                }
            }
            // The redirect of the search box keeps the hostile key inside the site's path.
            try await client.execute(uri: "/?" + URLText.query(["key": "javascript:alert(1)"]), method: .get) { r in
                #expect(r.status == .seeOther)
                #expect(r.headers[.location]?.hasPrefix("/traces/") == true)
            }
            // Not pages: JSON and errors are never sniffed as HTML, and carry no page policy.
            try await client.execute(uri: "/api/v1/traces/nothing", method: .get) { r in
                #expect(r.status == .notFound)
                #expect(r.headers[.xContentTypeOptions] == "nosniff")
            }
            try await client.execute(uri: "/healthz", method: .get) { r in
                #expect(r.headers[.xContentTypeOptions] == "nosniff")
                #expect(r.headers[.contentSecurityPolicy] == nil)
            }
        }
    }
}
