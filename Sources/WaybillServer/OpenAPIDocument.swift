import WaybillKPI
import WaybillModel

/// OpenAPI 3 description of every route the server has.
enum OpenAPIDocument {
    static let document: JSONValue = {
        do { return withPreciseParameters(withAccessControl(try JSONParser.parse(text))) } catch { fatalError("openapi.json is invalid: \(error)") }
    }()

    /// Bearer tokens on every operation but `/healthz`: the security scheme, and the 401 and 403 each
    /// of them may answer (the same words for all, so they are written once here).
    static func withAccessControl(_ doc: JSONValue) -> JSONValue {
        guard case .object(var root) = doc, case .object(var paths)? = root["paths"], case .object(var components)? = root["components"] else { return doc }
        for (path, item) in PagesOpenAPI.paths where paths[path] == nil { paths[path] = item }
        let error: JSONValue = ["application/json": ["schema": ["$ref": "#/components/schemas/Error"]]]
        for (path, item) in paths where path != "/healthz" {
            guard case .object(var ops) = item else { continue }
            for (method, op) in ops {
                guard case .object(var o) = op, case .object(var responses)? = o["responses"] else { continue }
                responses["401"] = ["description": "No token, or an unknown, revoked or expired one (once any token exists)", "content": error]
                responses["403"] = ["description": "A token whose scope does not cover this route", "content": error]
                o["responses"] = .object(responses)
                o["security"] = [["bearerAuth": []], [:]]
                ops[method] = .object(o)
            }
            paths[path] = .object(ops)
        }
        paths["/api/v1/audit"] = ["get": [
            "summary": "Administrative actions, newest first (needs an admin token)",
            "parameters": [["name": "limit", "in": "query", "schema": ["type": "integer", "minimum": 1, "maximum": 10000, "default": 100]]],
            "security": [["bearerAuth": []], [:]],
            "responses": [
                "200": ["description": "Audit entries", "content": ["application/json": ["schema": ["type": "object", "properties": [
                    "entries": ["type": "array", "items": ["type": "object", "properties": [
                        "at": ["type": "string"], "actor": ["type": "string"], "action": ["type": "string"], "detail": ["type": "string"]]]]]]]]],
                "400": ["description": "Bad parameter", "content": error],
                "401": ["description": "No token, or an unknown, revoked or expired one", "content": error],
                "403": ["description": "A token without the admin scope", "content": error],
            ],
        ]]
        paths["/api/v1/rules/reload"] = ["post": [
            "summary": "Read the alert rules files given at start again and put them in force (needs an admin token; SIGHUP does the same)",
            "security": [["bearerAuth": []], [:]],
            "responses": [
                "200": ["description": "The rules in force now", "content": ["application/json": ["schema": ["type": "object",
                    "required": ["status", "rules", "hooks", "files", "audited"], "properties": [
                        "status": ["type": "string", "enum": ["reloaded", "unchanged"]],
                        "rules": ["type": "array", "items": ["type": "string"], "description": "names of the rules in force"],
                        "hooks": ["type": "integer"], "files": ["type": "array", "items": ["type": "string"]],
                        "audited": ["type": "boolean", "description": "whether the load was written to the audit log"]]]]]],
                "401": ["description": "No token, or an unknown, revoked or expired one", "content": error],
                "403": ["description": "A token without the admin scope", "content": error],
                "409": ["description": "The server was started without rules files", "content": error],
                "422": ["description": "The files do not load (file, line, field and rule named), or a hook's secret is not set; the rules in force are unchanged", "content": error],
            ],
        ]]
        components["securitySchemes"] = ["bearerAuth": ["type": "http", "scheme": "bearer",
                                                         "description": "A token from `waybill tokens create`; scopes ingest, read, admin"]]
        root["paths"] = .object(paths)
        root["components"] = .object(components)
        return .object(root)
    }

    /// The parameter grammars, written once as schemas and used by every route that takes a parameter of
    /// that name: a client (or a fuzzer) that keeps to the document is never refused for the text of one
    /// parameter. Rules between parameters (`to` after `from`, a `step` giving at most 10,000 points,
    /// `split` not with `explain`, a `cursor` the server issued) cannot be written in OpenAPI 3.0 and are
    /// stated in the parameters' descriptions; a violation answers 400 naming the field. Every query
    /// parameter may also be empty, which means left out.
    static let parameterSchemas: [String: JSONValue] = [
        // RFC 3339 (`format: date-time`), `now`, or relative to now: a sign and a duration such as -7d, +90m.
        "Time": ["type": "string", "anyOf": [
            ["format": "date-time"],
            ["pattern": "^(now|[-+][0-9]{1,4}(ms|s|m|h|d|w))$"],
        ]],
        // A duration: a number and a unit (ms, s, m, h, d, w), such as 30m or 2h.
        "Duration": ["type": "string", "pattern": "^[0-9]{1,4}(ms|s|m|h|d|w)$"],
        "PositiveDuration": ["type": "string", "pattern": "^[1-9][0-9]{0,3}(s|m|h|d|w)$"],
        "Split": ["type": "string", "pattern": "^(errors|error-in:[A-Za-z0-9._-]{1,64}|span-time:[A-Za-z0-9._-]{1,64}>[1-9][0-9]{0,3}(ms|s|m|h))$"],
        // The KPIs an order can make bad; volumes (counts) have no orders behind them to list.
        "KPIMetric": ["type": "string", "enum": .array(KPIMetric.all.filter { $0.kind != .count }.map { .string($0.description) })],
        "Cursor": ["type": "string", "pattern": "^[A-Za-z0-9_-]{4,512}$"],
    ]

    /// Which schema each query parameter name takes, on every route.
    static let parameterKinds: [String: String] = [
        "from": "Time", "to": "Time", "at": "Time", "stuck": "Duration", "step": "PositiveDuration", "split": "Split",
        "explain": "KPIMetric", "cursor": "Cursor",
    ]

    static func withPreciseParameters(_ doc: JSONValue) -> JSONValue {
        guard case .object(var root) = doc, case .object(var paths)? = root["paths"], case .object(var components)? = root["components"],
              case .object(var schemas)? = components["schemas"] else { return doc }
        for (name, schema) in parameterSchemas { schemas[name] = schema }
        for (path, item) in paths {
            guard case .object(var ops) = item else { continue }
            for (method, op) in ops {
                guard case .object(var o) = op, case .array(let params)? = o["parameters"] else { continue }
                o["parameters"] = .array(params.map { p in
                    guard case .object(var q) = p, q["in"] == "query", case .string(let name)? = q["name"] else { return p }
                    let named: JSONValue? = parameterKinds[name].map { JSONValue.object(["$ref": .string("#/components/schemas/" + $0)]) }
                    let schema: JSONValue = named ?? q["schema"] ?? JSONValue.object(["type": "string"])
                    // An empty value means the parameter is left out (as an HTML form sends an empty field);
                    // a required one must have a value.
                    q["schema"] = q["required"] == true ? schema : ["anyOf": [schema, ["type": "string", "maxLength": 0]]]
                    return .object(q)
                })
                ops[method] = .object(o)
            }
            paths[path] = .object(ops)
        }
        components["schemas"] = .object(schemas)
        root["components"] = .object(components)
        root["paths"] = .object(paths)
        return .object(root)
    }

    static let text = #"""
    {
      "openapi": "3.0.3",
      "info": {"title": "Waybill", "version": "1.0.0",
               "description": "Correlation tracing and KPIs for order distribution: CloudEvents and OTLP in, order traces, search and KPIs out."},
      "paths": {
        "/v1/events": {"post": {
          "summary": "Ingest CloudEvents (one, a batch or NDJSON; optionally gzip)",
          "description": "Each event is checked on its own against the CloudEvent schema (components/schemas/CloudEvent): the valid ones are stored and each invalid one is listed in `rejected` with its index and the rule it broke, so one bad event never loses the good ones beside it. A body may be sent with `Content-Encoding: gzip`.",
          "requestBody": {"required": true, "content": {
            "application/cloudevents+json": {"schema": {"oneOf": [{"type": "object"}, {"type": "array", "minItems": 1, "items": {}}]}},
            "application/cloudevents-batch+json": {"schema": {"type": "array", "items": {}}},
            "application/json": {"schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {}}]}},
            "application/x-ndjson": {"schema": {"type": "string"}}}},
          "responses": {
            "200": {"description": "Events taken event by event", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/IngestResult"}}}},
            "400": {"description": "Nothing in the body could be read", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            "413": {"description": "Body over the size limit (also after decompression)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            "415": {"description": "Unknown content type or encoding", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            "429": {"description": "Ingest queue full; retry after Retry-After seconds", "headers": {"Retry-After": {"description": "Seconds to wait before sending the same request again", "schema": {"type": "integer", "minimum": 1}}}, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            "503": {"description": "Nothing was stored: the store is closing, or a storage fault that may pass (disk full, I/O error, database locked); retry after Retry-After seconds", "headers": {"Retry-After": {"description": "Seconds to wait before sending the same request again", "schema": {"type": "integer", "minimum": 1}}}, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
        "/v1/traces": {"post": {
          "summary": "OTLP/HTTP traces (ExportTraceServiceRequest), protobuf or JSON encoding, optionally gzip",
          "description": "A body may be sent with `Content-Encoding: gzip`. Spans are taken one by one: refused spans are counted in partialSuccess.",
          "requestBody": {"required": true, "content": {"application/x-protobuf": {"schema": {"type": "string", "format": "binary"}},
                                                        "application/json": {"schema": {"type": "object"}}}},
          "responses": {
            "200": {"description": "ExportTraceServiceResponse in the request's encoding; partialSuccess lists refused spans", "content": {
              "application/x-protobuf": {"schema": {"type": "string", "format": "binary"}}, "application/json": {"schema": {"type": "object"}}}},
            "400": {"description": "Unreadable body", "content": {"application/x-protobuf": {"schema": {"type": "string", "format": "binary", "description": "google.rpc.Status (code, message)"}}, "application/json": {"schema": {"$ref": "#/components/schemas/OTLPError"}}}},
            "413": {"description": "Body over the size limit", "content": {"application/x-protobuf": {"schema": {"type": "string", "format": "binary", "description": "google.rpc.Status (code, message)"}}, "application/json": {"schema": {"$ref": "#/components/schemas/OTLPError"}}}},
            "415": {"description": "Unknown content type or encoding", "content": {"application/x-protobuf": {"schema": {"type": "string", "format": "binary", "description": "google.rpc.Status (code, message)"}}, "application/json": {"schema": {"$ref": "#/components/schemas/OTLPError"}}}},
            "429": {"description": "Ingest queue full; retry after Retry-After seconds", "headers": {"Retry-After": {"description": "Seconds to wait before sending the same request again", "schema": {"type": "integer", "minimum": 1}}}, "content": {"application/x-protobuf": {"schema": {"type": "string", "format": "binary", "description": "google.rpc.Status (code, message)"}}, "application/json": {"schema": {"$ref": "#/components/schemas/OTLPError"}}}},
            "503": {"description": "No span was stored: the store is closing, or a storage fault that may pass (disk full, I/O error, database locked); retry after Retry-After seconds", "headers": {"Retry-After": {"description": "Seconds to wait before sending the same request again", "schema": {"type": "integer", "minimum": 1}}}, "content": {"application/x-protobuf": {"schema": {"type": "string", "format": "binary", "description": "google.rpc.Status (code, message)"}}, "application/json": {"schema": {"$ref": "#/components/schemas/OTLPError"}}}}}}},
        "/api/v1/traces/{key}": {"get": {
          "summary": "The trace of one order, by order id or any key linked to it",
          "parameters": [{"name": "key", "in": "path", "required": true, "schema": {"type": "string"}}],
          "responses": {
            "200": {"description": "Trace document", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Trace"}}}},
            "404": {"description": "Unknown key", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
        "/api/v1/traces": {"get": {
          "summary": "Search orders",
          "parameters": [
            {"name": "state", "in": "query", "schema": {"type": "string", "enum": ["accepted","validated","allocated","released","picked","packed","shipped","delivered","invoiced","cancelled"]}},
            {"name": "type", "in": "query", "schema": {"type": "string"}, "description": "has an event of this type"},
            {"name": "source", "in": "query", "schema": {"type": "string"}, "description": "has an event from this source"},
            {"name": "warehouse", "in": "query", "schema": {"type": "string"}, "description": "allocated or shipped from this warehouse"},
            {"name": "channel", "in": "query", "schema": {"type": "string"}},
            {"name": "region", "in": "query", "schema": {"type": "string"}},
            {"name": "from", "in": "query", "schema": {"type": "string"}, "description": "RFC 3339 or relative (-7d): activity at or after"},
            {"name": "to", "in": "query", "schema": {"type": "string"}, "description": "RFC 3339 or relative: activity before"},
            {"name": "stuck", "in": "query", "schema": {"type": "string"}, "description": "in its current state longer than this duration (e.g. 2h), not invoiced or cancelled"},
            {"name": "at", "in": "query", "schema": {"type": "string"}, "description": "evaluate 'stuck' and relative times as of this time"},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 50}},
            {"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the previous page"}],
          "responses": {
            "200": {"description": "A page of orders, most recent first", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchResult"}}}},
            "400": {"description": "Bad or unknown filter", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
        "/api/v1/kpis": {"get": {
          "summary": "KPI report over a window, optionally grouped and as a time series; or the orders behind a figure",
          "parameters": [
            {"name": "from", "in": "query", "schema": {"type": "string"}, "description": "RFC 3339 or relative (-7d); default 7 days before to"},
            {"name": "to", "in": "query", "schema": {"type": "string"}, "description": "exclusive end; default now"},
            {"name": "by", "in": "query", "schema": {"type": "string", "enum": ["warehouse", "channel", "region"]}},
            {"name": "step", "in": "query", "schema": {"type": "string"}, "description": "time series step, e.g. 1h, 1d"},
            {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "csv", "table", "html"], "default": "json"}},
            {"name": "explain", "in": "query", "schema": {"type": "string"}, "description": "a KPI such as allocation_delay.p95_s: list the orders behind it instead"},
            {"name": "group", "in": "query", "schema": {"type": "string"}, "description": "with explain and by: one group ('null' for orders without one)"},
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000, "default": 20}, "description": "with explain: how many orders"},
            {"name": "split", "in": "query", "schema": {"type": "string"}, "description": "split by each order's trace telemetry: errors, error-in:SERVICE or span-time:SERVICE>DURATION (json, csv or table; not with explain)"}],
          "responses": {
            "200": {"description": "The KPI document (JSON), the report as CSV, text or HTML, or with explain the orders behind the figure ({metric, orders: [{order, reason, value}]})", "content": {
              "application/json": {"schema": {"oneOf": [{"$ref": "#/components/schemas/KPIDocument"}, {"$ref": "#/components/schemas/KPIExplain"}]}},
              "text/csv": {"schema": {"type": "string"}}, "text/html": {"schema": {"type": "string"}}, "text/plain": {"schema": {"type": "string"}}}},
            "400": {"description": "Bad parameter", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
        "/api/v1/services": {"get": {
          "summary": "Per service: span rate, error rate, latency percentiles; and the calls between services",
          "parameters": [{"name": "from", "in": "query", "schema": {"type": "string"}, "description": "default: one hour before to"},
                         {"name": "to", "in": "query", "schema": {"type": "string"}, "description": "default: now"}],
          "responses": {"200": {"description": "Service view", "content": {"application/json": {"schema": {"type": "object", "properties": {
              "from": {"type": "string"}, "to": {"type": "string"}, "truncated": {"type": "boolean"},
              "services": {"type": "array", "items": {"type": "object", "properties": {"service": {"type": "string"}, "spans": {"type": "integer"},
                "errors": {"type": "integer"}, "per_second": {"type": "number"}, "error_rate": {"type": "number"},
                "latency_ms": {"type": "object", "properties": {"p50": {"type": "number"}, "p90": {"type": "number"}, "p95": {"type": "number"}, "p99": {"type": "number"}, "max": {"type": "number"}}}}}},
              "edges": {"type": "array", "items": {"type": "object", "properties": {"from": {"type": "string"}, "to": {"type": "string"},
                "calls": {"type": "integer"}, "errors": {"type": "integer"}}}}}}}}},
                        "400": {"description": "Bad parameter", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
        "/orders/{key}": {"get": {
          "summary": "Page: one order (by order id or any linked key): timeline drawn to scale, steps against their usual duration, span waterfall, events in words, facts",
          "parameters": [{"name": "key", "in": "path", "required": true, "schema": {"type": "string"}}],
          "responses": {"200": {"description": "HTML page; for an unknown key, the search page naming it", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        "/traces/{key}": {"get": {
          "summary": "Page: the same as /orders/{key}",
          "parameters": [{"name": "key", "in": "path", "required": true, "schema": {"type": "string"}}],
          "responses": {"200": {"description": "HTML page; for an unknown key, the search page naming it", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        "/services": {"get": {
          "summary": "Page: the service map (SVG) and rate, errors and duration per service, the same report as /api/v1/services",
          "parameters": [{"name": "from", "in": "query", "schema": {"type": "string"}, "description": "default: one hour before to"},
                         {"name": "to", "in": "query", "schema": {"type": "string"}, "description": "default: now"}],
          "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
                        "400": {"description": "Bad parameter: the page with the form and the reason", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
        "/api/v1/reports": {"get": {
          "summary": "The saved reports the server was started with (serve --queries DIR), with schedules and hooks",
          "responses": {"200": {"description": "Saved reports", "content": {"application/json": {"schema": {"type": "object", "properties": {
              "reports": {"type": "array", "items": {"type": "object", "properties": {
                "name": {"type": "string"}, "title": {"type": "string"}, "description": {"type": "string"}, "window": {"type": "string"},
                "time_zone": {"type": "string"}, "by": {"type": "string"}, "step_s": {"type": "number"}, "kpis": {"type": "array", "items": {"type": "string"}},
                "schedule": {"type": "string"}, "next_at": {"type": "string", "format": "date-time"},
                "deliver": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}, "format": {"type": "string", "enum": ["html", "json", "slack"]}}}},
                "url": {"type": "string"}}}}}}}}},
                        "400": {"description": "A query parameter (this route takes none)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
        "/api/v1/reports/{name}": {"get": {
          "summary": "A saved report rendered as of an instant: its window (e.g. previous ISO week) resolved in the report's time zone",
          "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}, "description": "the report's name (its file name without .yaml)"},
                         {"name": "at", "in": "query", "schema": {"type": "string"}, "description": "RFC 3339 or relative like -1d: resolve the window as of this instant (default now)"},
                         {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["html", "csv", "json", "md"], "default": "html"}}],
          "responses": {
            "200": {"description": "The self-contained HTML page, CSV rows, the report document (JSON) or Markdown", "content": {
              "application/json": {"schema": {"type": "object", "properties": {"report": {"type": "string"}, "title": {"type": "string"},
                "description": {"type": "string"}, "at": {"type": "string"}, "time_zone": {"type": "string"},
                "window": {"type": "object", "properties": {"text": {"type": "string"}, "from": {"type": "string"}, "to": {"type": "string"}}},
                "kpis": {"type": "array", "items": {"type": "string"}}, "current": {"$ref": "#/components/schemas/KPIDocument"},
                "previous": {"$ref": "#/components/schemas/KPIDocument"}, "split": {"$ref": "#/components/schemas/KPIDocument"},
                "drilldowns": {"type": "array", "items": {"type": "object", "properties": {"metric": {"type": "string"}, "group": {"type": "string", "nullable": true},
                  "orders": {"type": "array", "items": {"type": "object", "properties": {"order": {"type": "string"}, "reason": {"type": "string"}, "value": {"type": "number"}}}}}}}}}},
              "text/html": {"schema": {"type": "string"}}, "text/csv": {"schema": {"type": "string"}}, "text/markdown": {"schema": {"type": "string"}}}},
            "400": {"description": "Bad or unknown parameter", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            "404": {"description": "No saved report of that name", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
        "/api/v1/reports/{name}/send": {"post": {
          "summary": "Send a saved report now: rendered as of an instant and queued in the durable outbox, one notification per deliver hook; the server's delivery worker signs, sends and retries them (scope admin)",
          "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}, "description": "the report's name (its file name without .yaml)"},
                         {"name": "at", "in": "query", "schema": {"type": "string"}, "description": "RFC 3339 or relative like -1d: resolve the window as of this instant (default now)"}],
          "responses": {
            "200": {"description": "Queued: the notifications in the outbox (their delivery shows in GET /api/v1/deliveries)", "content": {
              "application/json": {"schema": {"type": "object", "required": ["report", "fingerprint", "notifications"], "properties": {
                "report": {"type": "string"}, "fingerprint": {"type": "string"},
                "notifications": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "integer"}, "hook": {"type": "string"},
                  "status": {"type": "string", "enum": ["pending", "delivered", "failed"]}}}}}}}}},
            "400": {"description": "Bad or unknown parameter", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            "404": {"description": "No saved report of that name", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            "409": {"description": "The report has no deliver hooks, or this server delivers no reports", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
        "/api/v1/export/ocel": {"get": {
          "summary": "The events of a window as an OCEL 2.0 JSON object-centric event log (streamed; docs/export.md has the mapping)",
          "parameters": [{"name": "from", "in": "query", "required": true, "schema": {"type": "string"}, "description": "window start: RFC 3339 or relative like -7d"},
                         {"name": "to", "in": "query", "schema": {"type": "string"}, "description": "window end, exclusive (default now); must be after from"},
                         {"name": "Accept-Encoding", "in": "header", "schema": {"type": "string"}, "description": "gzip: the body is gzip-compressed (Content-Encoding: gzip)"}],
          "responses": {"200": {"description": "An OCEL 2.0 JSON log: events, objects, eventTypes, objectTypes. Streamed; a failure after the first byte ends the body early (invalid JSON)",
                                "content": {"application/json": {"schema": {"type": "object", "required": ["events", "objects", "eventTypes", "objectTypes"], "properties": {
                                  "events": {"type": "array", "items": {"type": "object"}}, "objects": {"type": "array", "items": {"type": "object"}},
                                  "eventTypes": {"type": "array", "items": {"type": "object"}}, "objectTypes": {"type": "array", "items": {"type": "object"}}}}}}},
                        "400": {"description": "Bad or missing parameter", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                        "501": {"description": "The storage engine cannot scan events by time", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
        "/api/v1/orders": {"post": {
          "summary": "Submit an order to the embedded orchestration service (running under `waybill demo`)",
          "parameters": [{"name": "Idempotency-Key", "in": "header", "required": true, "schema": {"type": "string", "maxLength": 256},
                          "description": "a retry with the same key returns the first order"}],
          "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["region", "lines"],
            "properties": {"order_id": {"type": "string"}, "channel": {"type": "string"}, "customer": {"type": "string"},
                           "region": {"type": "string", "enum": ["northeast", "southeast", "midwest", "southwest", "west"]},
                           "promised_ship_by": {"type": "string", "format": "date-time"}, "currency": {"type": "string"},
                           "lines": {"type": "array", "minItems": 1, "maxItems": 100, "items": {"type": "object", "required": ["sku", "qty"],
                             "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}, "unit_price": {"type": "number"}}}}}}}}},
          "responses": {
            "202": {"description": "Accepted: the workflow started, and its checkpoint (with the key) is stored", "content": {"application/json": {"schema": {"type": "object",
              "properties": {"order_id": {"type": "string"}, "duplicate": {"type": "boolean"}, "trace": {"type": "string"}}}}}},
            "200": {"description": "The key was used before: the first order", "content": {"application/json": {"schema": {"type": "object"}}}},
            "400": {"description": "Bad order or missing Idempotency-Key", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
            "503": {"description": "No orchestration service runs in this server, or the order could not be stored (retry with the same key)", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
        "/api/v1/alerts": {"get": {
          "summary": "Pending, firing and recently resolved alerts; with `at`, every rule replayed as of that instant",
          "parameters": [{"name": "at", "in": "query", "schema": {"type": "string"}, "description": "RFC 3339 or relative like -2h: replay (events after it are invisible)"},
                         {"name": "state", "in": "query", "schema": {"type": "string", "enum": ["pending", "firing", "resolved"]}}],
          "responses": {"200": {"description": "Alerts", "content": {"application/json": {"schema": {"type": "object", "properties": {
              "at": {"type": "string", "format": "date-time"},
              "alerts": {"type": "array", "items": {"type": "object", "properties": {
                "rule": {"type": "string"}, "state": {"type": "string"}, "labels": {"type": "object"}, "value": {"type": "number"},
                "since": {"type": "string"}, "orders": {"type": "array", "items": {"type": "string"}}, "orders_total": {"type": "integer"},
                "traces": {"type": "array", "items": {"type": "string"}}, "fingerprint": {"type": "string"}, "severity": {"type": "string"},
                "annotations": {"type": "object"}}}}}}}}},
                        "400": {"description": "Bad parameter", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
        "/api/v1/rules": {"get": {
          "summary": "The loaded alert rules and hooks, with each rule's last evaluation",
          "responses": {"200": {"description": "Rules", "content": {"application/json": {"schema": {"type": "object", "properties": {
              "rules": {"type": "array", "items": {"type": "object"}}, "hooks": {"type": "array", "items": {"type": "object"}},
              "evaluation_interval": {"type": "string"}}}}}}}}},
        "/healthz": {"get": {"summary": "Liveness, and whether writes succeed", "responses": {
            "200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object", "properties": {"status": {"type": "string", "enum": ["ok"]}}}}}},
            "503": {"description": "The last write failed with a storage fault and none has succeeded since", "headers": {"Retry-After": {"description": "Seconds to wait before sending the same request again", "schema": {"type": "integer", "minimum": 1}}}, "content": {"application/json": {"schema": {
              "type": "object", "required": ["status", "storage"], "properties": {"status": {"type": "string", "enum": ["unavailable"]},
              "storage": {"type": "object", "required": ["fault", "message", "faults"], "properties": {
                "fault": {"type": "string", "enum": ["disk_full", "io_error", "busy", "cannot_open", "read_only", "out_of_memory"]},
                "message": {"type": "string"}, "since": {"type": "string", "format": "date-time"},
                "faults": {"type": "integer", "description": "Writes failed with a fault since the server started"}}}}}}}}}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3", "content": {"application/json": {"schema": {"type": "object"}}}}}}}
      },
      "components": {"schemas": {
        "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
        "OTLPError": {"type": "object", "description": "google.rpc.Status in JSON (OTLP/HTTP's error body) with Waybill's error member", "required": ["code", "message", "error"], "properties": {"code": {"type": "integer", "description": "gRPC status code"}, "message": {"type": "string"}, "error": {"type": "string", "description": "the same as message"}}},
        "CloudEvent": {"type": "object", "required": ["specversion", "id", "source", "type", "time", "subject"],
          "properties": {"specversion": {"type": "string", "enum": ["1.0"]}, "id": {"type": "string"}, "source": {"type": "string"},
                         "type": {"type": "string"}, "time": {"type": "string", "format": "date-time"}, "subject": {"type": "string"},
                         "traceparent": {"type": "string"}, "datacontenttype": {"type": "string"}, "data": {"type": "object"}}},
        "IngestResult": {"type": "object", "required": ["accepted", "duplicates", "rejected"],
          "properties": {"accepted": {"type": "integer"}, "duplicates": {"type": "integer"},
                         "rejected": {"type": "array", "items": {"type": "object", "properties": {"index": {"type": "integer"}, "error": {"type": "string"}}}}}},
        "Trace": {"type": "object", "required": ["correlation_id", "keys", "state", "events", "spans", "facts", "steps"],
          "properties": {"correlation_id": {"type": "string"}, "keys": {"type": "array", "items": {"type": "string"}},
                         "state": {"type": "string", "nullable": true}, "events": {"type": "array", "items": {"type": "object"}},
                         "spans": {"type": "array", "items": {"type": "object"}}, "facts": {"type": "object"},
                         "steps": {"type": "array", "items": {"$ref": "#/components/schemas/Step"}}}},
        "Step": {"type": "object", "required": ["from", "to", "started_at", "ended_at", "gap_s", "warehouse", "window_from", "window_to", "samples", "p50_s", "p90_s", "verdict", "slow_after", "very_slow_after"],
          "description": "A lifecycle step (from one stage reached to the next) against the same step at the same warehouse in the whole hours of the 7 days before it; to null: the step in progress",
          "properties": {"from": {"type": "string"}, "to": {"type": "string", "nullable": true},
                         "started_at": {"type": "string", "format": "date-time"}, "ended_at": {"type": "string", "format": "date-time", "nullable": true},
                         "gap_s": {"type": "number", "nullable": true}, "warehouse": {"type": "string", "nullable": true},
                         "window_from": {"type": "string", "format": "date-time"}, "window_to": {"type": "string", "format": "date-time"},
                         "samples": {"type": "integer"}, "p50_s": {"type": "number", "nullable": true}, "p90_s": {"type": "number", "nullable": true},
                         "verdict": {"type": "string", "enum": ["typical", "slow", "very_slow", "no_history", "in_progress"]},
                         "slow_after": {"type": "string", "format": "date-time", "nullable": true},
                         "very_slow_after": {"type": "string", "format": "date-time", "nullable": true}}},
        "KPIDocument": {"type": "object", "required": ["from", "to", "by", "total", "groups", "series"],
          "properties": {"from": {"type": "string"}, "to": {"type": "string"}, "by": {"type": "string", "nullable": true},
                         "total": {"type": "object"}, "groups": {"type": "array", "items": {"type": "object"}},
                         "series": {"type": "array", "items": {"type": "object"}}}},
        "KPIExplain": {"type": "object", "required": ["metric", "orders"],
          "properties": {"metric": {"type": "string"}, "orders": {"type": "array", "items": {"type": "object", "required": ["order", "reason", "value"],
                           "properties": {"order": {"type": "string"}, "reason": {"type": "string"}, "value": {"type": "number"}}}}}},
        "SearchResult": {"type": "object", "required": ["orders"],
          "properties": {"orders": {"type": "array", "items": {"type": "object", "properties": {
                           "correlation_id": {"type": "string"}, "state": {"type": "string", "nullable": true},
                           "state_since": {"type": "string", "nullable": true}, "first_event": {"type": "string"},
                           "last_event": {"type": "string"}, "event_count": {"type": "integer"},
                           "channel": {"type": "string", "nullable": true}, "warehouse": {"type": "string", "nullable": true}}}},
                         "next_cursor": {"type": "string", "nullable": true}}}
      }}
    }
    """#
}
