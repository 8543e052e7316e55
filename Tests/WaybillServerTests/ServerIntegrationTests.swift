import Foundation
import Hummingbird
import HummingbirdTesting
import NIOCore
import Testing
import WaybillCollectors
import WaybillKPI
import WaybillModel
import WaybillSQLite
import WaybillServer
import WaybillStore
import WaybillTestSupport

func ce(_ id: String, _ type: String, _ time: String, _ subject: String, source: String = "oms", data: String = "{}") -> String {
    #"{"specversion":"1.0","id":"\#(id)","source":"\#(source)","type":"\#(type)","time":"\#(time)","subject":"\#(subject)","data":\#(data)}"#
}

extension TestResponse {
    var json: JSONValue { (try? JSONParser.parse(Array(body.readableBytesView))) ?? .null }
}

/// The real application over a real store, driven through HummingbirdTesting's router mode (no socket: the
/// socket paths are covered by the tests that start `waybill serve`).
@Suite struct ServerIntegrationTests {
    func withServer(_ body: @Sendable (any TestClientProtocol, SQLiteStore) async throws -> Void) async throws {
        let store = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
        defer { store.close() }
        var config = ServerConfig()
        config.maxBodyBytes = 64 * 1024
        let app = buildApplication(store: store, config: config)
        try await app.test(.router) { client in try await body(client, store) }
    }

    @Test func postsGoodAndBadInputAndReadsTracesBack() async throws {
        try await withServer { client, _ in
            let batch = "[" + [
                ce("a1", "order.accepted", "2026-11-23T14:00:00Z", "ORD-9", data: #"{"channel":"web","lines":[{"line":1,"sku":"A","qty":4}]}"#),
                #"{"specversion":"1.0","id":"broken"}"#,
                ce("al1", "order.allocated", "2026-11-23T14:02:00+01:00", "ORD-9", source: "allocation",
                   data: #"{"warehouse":"DC-EAST","lines":[{"line":"1","qty_allocated":3}]}"#),
                ce("s1", "order.shipped", "2026-11-23T15:00:00Z", "ORD-9", source: "wms", data: #"{"warehouse":"DC-EAST","links":["shipment:1Z9"]}"#),
            ].joined(separator: ",") + "]"
            try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/cloudevents-batch+json"],
                                     body: ByteBuffer(string: batch)) { r in
                #expect(r.status == .ok)
                #expect(r.json["accepted"] == 3)
                #expect(r.json["duplicates"] == 0)
                #expect(r.json["rejected"]?.arrayValue?.count == 1)
                #expect(r.json["rejected"]?.arrayValue?.first?["index"] == 1)
                #expect(r.json["rejected"]?.arrayValue?.first?["error"]?.stringValue?.contains("source") == true)
            }
            // The same batch again: all duplicates.
            try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/json"],
                                     body: ByteBuffer(string: batch)) { r in
                #expect(r.json["accepted"] == 0)
                #expect(r.json["duplicates"] == 3)
            }
            // A carrier event by the linked key, gzip NDJSON.
            let nd = Gzip.deflate(Array((ce("c1", "shipment.delivered", "2026-11-24T09:00:00Z", "shipment:1Z9", source: "carrier") + "\n").utf8))
            try await client.execute(uri: "/v1/events", method: .post,
                                     headers: [.contentType: "application/x-ndjson", .contentEncoding: "gzip"], body: ByteBuffer(bytes: nd)) { r in
                #expect(r.json["accepted"] == 1)
            }
            for key in ["ORD-9", "shipment:1Z9", "shipment%3A1Z9"] {
                try await client.execute(uri: "/api/v1/traces/\(key)", method: .get) { r in
                    #expect(r.status == .ok)
                    let doc = r.json
                    #expect(doc["correlation_id"] == "ORD-9")
                    #expect(doc["keys"] == ["ORD-9", "shipment:1Z9"])
                    #expect(doc["state"] == "shipped")
                    #expect(doc["events"]?.arrayValue?.map { $0["id"]?.stringValue ?? "" } == ["al1", "a1", "s1", "c1"])  // by event time: 13:02Z comes first
                    #expect(doc["facts"]?["allocation_delay_s"] == 0)  // 13:02Z is before 14:00Z: clamped
                    #expect(doc["facts"]?["units_ordered"] == 4)
                    #expect(doc["facts"]?["units_allocated_first"] == 3)
                    #expect(doc["facts"]?["allocated_at"] == "2026-11-23T13:02:00Z")
                }
            }
            try await client.execute(uri: "/traces/shipment%3A1Z9", method: .get) { r in
                let html = String(buffer: r.body)
                #expect(r.headers[.contentType]?.hasPrefix("text/html") == true)
                #expect(html.contains("Order ORD-9"))
                #expect(html.contains("order.allocated"))
                #expect(html.contains("allocation delay"))
            }
            try await client.execute(uri: "/?state=shipped", method: .get) { r in
                #expect(String(buffer: r.body).contains("href=\"/traces/ORD-9\""))
            }
            try await client.execute(uri: "/?key=shipment:1Z9", method: .get) { r in
                #expect(r.status == .seeOther)
                #expect(r.headers[.location] == "/traces/shipment:1Z9")
            }
            try await client.execute(uri: "/api/v1/traces/ORD-404", method: .get) { r in
                #expect(r.status == .notFound)
                #expect(r.json["error"]?.stringValue?.contains("ORD-404") == true)
            }
            try await client.execute(uri: "/api/v1/traces?state=shipped&warehouse=DC-EAST", method: .get) { r in
                #expect(r.status == .ok)
                #expect(r.json["orders"]?.arrayValue?.map { $0["correlation_id"]?.stringValue ?? "" } == ["ORD-9"])
                #expect(r.json["orders"]?.arrayValue?.first?["event_count"] == 3)
            }
            try await client.execute(uri: "/api/v1/traces?state=teleported", method: .get) { r in
                #expect(r.status == .badRequest)
                #expect(r.json["error"]?.stringValue?.hasPrefix("state:") == true)
            }
        }
    }

    @Test func refusesWholeBodiesWithTheRightStatus() async throws {
        try await withServer { client, store in
            try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "text/csv"], body: ByteBuffer(string: "a,b")) { r in
                #expect(r.status == .unsupportedMediaType)
                #expect(r.json["error"]?.stringValue?.contains("Content-Type") == true)
            }
            try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: "{\"a\":")) { r in
                #expect(r.status == .badRequest)
                #expect(r.json["error"] != nil)
            }
            let big = "[" + Array(repeating: ce("x", "t", "2026-11-23T14:00:00Z", "S"), count: 1000).joined(separator: ",") + "]"
            try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: big)) { r in
                #expect(r.status == .contentTooLarge)
            }
            let bomb = Gzip.deflate([UInt8](repeating: 0x20, count: 4 << 20))
            try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/json", .contentEncoding: "gzip"],
                                     body: ByteBuffer(bytes: bomb)) { r in
                #expect(r.status == .contentTooLarge)
            }
            let deep = String(repeating: "[", count: 30_000)
            try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: deep)) { r in
                #expect(r.status == .badRequest)
            }
            #expect(try store.stats().events == 0)
            try await client.execute(uri: "/healthz", method: .get) { r in #expect(r.status == .ok) }
        }
    }

    @Test func answersKPIsInEveryFormatAndExplainsThem() async throws {
        try await withServer { client, _ in
            var lines: [String] = []
            for (i, wh) in ["DC-EAST", "DC-EAST", "DC-WEST"].enumerated() {
                let o = "K-\(i)"
                lines.append(ce("\(o)a", "order.accepted", "2026-11-20T10:00:00Z", o, data: #"{"channel":"web","lines":[{"line":1,"qty":4}]}"#))
                lines.append(ce("\(o)b", "order.allocated", "2026-11-20T10:0\(i + 1):00Z", o, source: "allocation",
                                data: #"{"warehouse":"\#(wh)","lines":[{"line":1,"qty_allocated":\#(4 - i)}]}"#))
            }
            try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/x-ndjson"],
                                     body: ByteBuffer(string: lines.joined(separator: "\n"))) { r in #expect(r.json["accepted"] == 6) }
            let window = "from=2026-11-20T00:00:00Z&to=2026-11-21T00:00:00Z"
            try await client.execute(uri: "/api/v1/kpis?\(window)&by=warehouse", method: .get) { r in
                #expect(r.status == .ok)
                #expect(r.json["total"]?["orders_allocated"] == 3)
                #expect(r.json["total"]?["fill_rate"] == .number(9.0 / 12.0))
                #expect(r.json["total"]?["allocation_delay"]?["max_s"]?.doubleValue.map { abs($0 - 180) < 1.8 } == true)
                let groups = r.json["groups"]?.arrayValue ?? []
                #expect(groups.map { $0["key"]?["warehouse"] ?? .null } == ["DC-EAST", "DC-WEST"])
                #expect(groups.first?["kpis"]?["order_fill_rate"] == 0.5)
            }
            try await client.execute(uri: "/api/v1/kpis?\(window)&format=csv", method: .get) { r in
                #expect(r.headers[.contentType]?.hasPrefix("text/csv") == true)
                #expect(String(buffer: r.body).contains("orders_allocated"))
            }
            try await client.execute(uri: "/api/v1/kpis?\(window)&format=html", method: .get) { r in
                let html = String(buffer: r.body)
                #expect(html.contains("<svg") || html.contains("<html"))
                #expect(!html.contains("http://") && !html.contains("https://"))
            }
            try await client.execute(uri: "/api/v1/kpis?\(window)&by=warehouse&explain=fill_rate&group=DC-WEST", method: .get) { r in
                #expect(r.json["orders"]?.arrayValue?.map { $0["order"] ?? .null } == ["K-2"])
            }
            try await client.execute(uri: "/api/v1/kpis?from=yesterdayish", method: .get) { r in
                #expect(r.status == .badRequest)
                #expect(r.json["error"]?.stringValue?.hasPrefix("from:") == true)
            }
            try await client.execute(uri: "/api/v1/kpis?\(window)&by=planet", method: .get) { r in
                #expect(r.status == .badRequest)
            }
        }
    }

    @Test func servesOpenAPIAndMetrics() async throws {
        try await withServer { client, _ in
            try await client.execute(uri: "/openapi.json", method: .get) { r in
                #expect(r.json["openapi"]?.stringValue?.hasPrefix("3.") == true)
                let paths = Set(r.json["paths"]?.objectValue?.keys.map { $0 } ?? [])
                #expect(paths.isSuperset(of: ["/v1/events", "/api/v1/traces/{key}", "/api/v1/traces", "/api/v1/kpis", "/healthz", "/metrics"]))
            }
            try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/cloudevents+json"],
                                     body: ByteBuffer(string: ce("m1", "order.accepted", "2026-11-23T14:00:00Z", "ORD-M"))) { r in
                #expect(r.json["accepted"] == 1)
            }
            try await client.execute(uri: "/metrics", method: .get) { r in
                let text = String(buffer: r.body)
                #expect(text.contains("waybill_events_accepted_total{source=\"oms\"} 1"))
                #expect(text.contains("waybill_store_events 1"))
            }
        }
    }
}

@Suite struct OTLPJSONIntakeTests {
    static let request = #"""
    {"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"erp"}}]},
      "scopeSpans":[{"scope":{"name":"t"},"spans":[
        {"traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"EEE19B7EC3C1B174","name":"credit_check",
         "startTimeUnixNano":"1795442400000000000","endTimeUnixNano":"1795442400250000000","kind":3,
         "attributes":[{"key":"order.id","value":{"stringValue":"ORD-OT"}},{"key":"http.status_code","value":{"intValue":"503"}},
                       {"key":"retry","value":{"boolValue":true}},{"key":"tags","value":{"arrayValue":{"values":[{"stringValue":"a"}]}}}],
         "status":{"code":2,"message":"ERP unavailable"}},
        {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","parentSpanId":"eee19b7ec3c1b174","name":"http",
         "startTimeUnixNano":1795442400010000000,"endTimeUnixNano":1795442400200000000},
        {"traceId":"xyz","spanId":"eee19b7ec3c1b176","name":"broken","startTimeUnixNano":"1","endTimeUnixNano":"2"}
      ]}]}]}
    """#

    @Test func jsonSpansAreStoredJoinedAndBadOnesReportedAsPartialSuccess() async throws {
        let store = try SQLiteStore(path: temporaryDatabase(), rollup: KPIFactsRollup())
        defer { store.close() }
        let app = buildApplication(store: store, config: ServerConfig())
        try await app.test(.router) { client in
            try await client.execute(uri: "/v1/traces", method: .post, headers: [.contentType: "application/json", .contentEncoding: "gzip"],
                                     body: ByteBuffer(bytes: Gzip.deflate(Array(Self.request.utf8)))) { r in
                #expect(r.status == .ok)
                #expect(r.json["partialSuccess"]?["rejectedSpans"] == "1")
                #expect(r.json["partialSuccess"]?["errorMessage"]?.stringValue?.contains("spans[2]: traceId") == true)
            }
            try await client.execute(uri: "/v1/events", method: .post, headers: [.contentType: "application/cloudevents+json"],
                                     body: ByteBuffer(string: ce("ot1", "order.accepted", "2026-11-23T13:59:00Z", "ORD-OT"))) { r in
                #expect(r.json["accepted"] == 1)
            }
            try await client.execute(uri: "/api/v1/traces/ORD-OT", method: .get) { r in
                let spans = r.json["spans"]?.arrayValue ?? []
                #expect(spans.count == 2)
                let first = spans.first
                #expect(first?["trace_id"] == "5b8efff798038103d269b633813fc60c")
                #expect(first?["service"] == "erp")
                #expect(first?["status"] == "error")
                #expect(first?["duration_ms"] == 250)
                #expect(first?["attributes"]?["http.status_code"] == 503)
                #expect(spans.last?["parent_span_id"] == "eee19b7ec3c1b174")
            }
            try await client.execute(uri: "/api/v1/services?from=2026-11-23T13:00:00Z&to=2026-11-23T15:00:00Z", method: .get) { r in
                #expect(r.json["services"]?.arrayValue?.first?["service"] == "erp")
                #expect(r.json["services"]?.arrayValue?.first?["errors"] == 1)
                #expect(r.json["services"]?.arrayValue?.first?["spans"] == 2)
            }
            // OTLP/HTTP errors: a google.rpc.Status in the request's encoding.
            try await client.execute(uri: "/v1/traces", method: .post, headers: [.contentType: "application/x-protobuf"], body: ByteBuffer(string: "x")) { r in
                #expect(r.status == .badRequest)
                #expect(r.headers[.contentType] == "application/x-protobuf")
                let status = OTLPStatus(protobuf: Array(r.body.readableBytesView))
                #expect(status?.code == 3)
                #expect(status?.message.hasPrefix("protobuf:") == true)
            }
            try await client.execute(uri: "/v1/traces", method: .post, headers: [.contentType: "application/x-protobuf", .contentEncoding: "br"], body: ByteBuffer(string: "x")) { r in
                #expect(r.status == .unsupportedMediaType)
                #expect(OTLPStatus(protobuf: Array(r.body.readableBytesView))?.message.contains("Content-Encoding") == true)
            }
            try await client.execute(uri: "/v1/traces", method: .post, headers: [.contentType: "text/plain"], body: ByteBuffer(string: "x")) { r in
                #expect(r.status == .unsupportedMediaType)
                #expect(r.json["code"] == 3)
            }
            try await client.execute(uri: "/v1/traces", method: .post, headers: [.contentType: "application/json"], body: ByteBuffer(string: "{nope")) { r in
                #expect(r.status == .badRequest)
                #expect(r.json["code"] == 3)
                #expect(r.json["message"] == r.json["error"])
            }
        }
    }
}
