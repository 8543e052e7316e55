import WaybillModel

/// The OpenAPI entries of the overview, search, KPI and alerts pages and of the two documents they add
/// (stuck orders, hook deliveries), merged into `OpenAPIDocument` before access control is added.
enum PagesOpenAPI {
    static let paths: [String: JSONValue] = {
        do {
            guard case .object(let o) = try JSONParser.parse(text) else { return [:] }
            return o
        } catch { fatalError("PagesOpenAPI is invalid: \(error)") }
    }()

    static let text = #"""
    {
      "/": {"get": {
        "summary": "Page: the overview (panels of dashboards/overview.yaml: KPI tiles against the previous period with sparklines, alerts, orders stuck longest per stage, ingest health, services); with search parameters (state, warehouse, ...) the orders search, with key a redirect to /traces/{key}",
        "parameters": [{"name": "key", "in": "query", "schema": {"type": "string"}, "description": "any order id or linked key: 303 to its page"}],
        "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
                      "303": {"description": "Redirect to the order's page (with key)"}}}},
      "/search": {"get": {
        "summary": "Page: the search box's target (key: 303 to /orders/{key}) and the orders search by facts (the parameters of /api/v1/traces)",
        "parameters": [{"name": "key", "in": "query", "schema": {"type": "string"}, "description": "any order id or linked key; without it, the filters of /api/v1/traces (state, warehouse, channel, stuck, from, ...) list orders"}],
        "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
                      "303": {"description": "Redirect to /orders/{key}"},
                      "400": {"description": "Bad parameter: the page with the form and the reason", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
      "/kpis": {"get": {
        "summary": "Page: the KPI report, interactive (window, group, step, telemetry split, chart), each figure linking to the orders behind it (explain)",
        "parameters": [{"name": "from", "in": "query", "schema": {"type": "string"}, "description": "default -7d"},
                       {"name": "to", "in": "query", "schema": {"type": "string"}}, {"name": "by", "in": "query", "schema": {"type": "string", "enum": ["", "warehouse", "channel", "region"]}},
                       {"name": "step", "in": "query", "schema": {"type": "string"}}, {"name": "split", "in": "query", "schema": {"type": "string"}},
                       {"name": "chart", "in": "query", "schema": {"type": "string"}, "description": "the KPI drawn per step (default fill_rate)"},
                       {"name": "explain", "in": "query", "schema": {"type": "string"}}, {"name": "group", "in": "query", "schema": {"type": "string"}},
                       {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 10000}}],
        "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
                      "400": {"description": "Bad parameter: the page with the form and the reason", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
      "/alerts": {"get": {
        "summary": "Page: firing, pending and recently resolved alerts with their orders, rules with their last evaluation, hook delivery status",
        "parameters": [{"name": "state", "in": "query", "schema": {"type": "string", "enum": ["", "pending", "firing", "resolved"]}},
                       {"name": "at", "in": "query", "schema": {"type": "string"}, "description": "replay as of this instant"}],
        "responses": {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}},
                      "400": {"description": "Bad parameter: the page with the form and the reason", "content": {"text/html": {"schema": {"type": "string"}}}}}}},
      "/assets/brush.js": {"get": {
        "summary": "The pages' one script: dragging across a chart with a time axis (KPI chart and sparklines, the services page's rates) shows the same page with from and to set to the range dragged; fetches nothing",
        "responses": {"200": {"description": "JavaScript", "content": {"text/javascript": {"schema": {"type": "string"}}}}}}},
      "/api/v1/stuck": {"get": {
        "summary": "For each open stage, the orders whose current stage it is, longest there first",
        "parameters": [{"name": "stages", "in": "query", "schema": {"type": "string", "enum": ["accepted", "validated", "allocated", "released", "picked", "packed", "shipped", "delivered"]}, "description": "an open stage, or several separated by commas (default accepted,validated,allocated,released,picked,packed)"},
                       {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 5}}],
        "responses": {"200": {"description": "Stuck orders", "content": {"application/json": {"schema": {"type": "object", "properties": {
            "at": {"type": "string", "format": "date-time"},
            "stages": {"type": "array", "items": {"type": "object", "properties": {"stage": {"type": "string"}, "count": {"type": "integer"},
              "orders": {"type": "array", "items": {"type": "object", "properties": {"id": {"type": "string"}, "since": {"type": "string", "format": "date-time"}, "age_s": {"type": "number"}}}}}}}}}}}},
                      "400": {"description": "Bad parameter", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                      "404": {"description": "The store cannot list stuck orders", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}}}},
      "/api/v1/deliveries": {"get": {
        "summary": "Per alert hook: pending, retrying, delivered and failed notifications of the outbox, last finished and delivered, next retry, last error",
        "responses": {"200": {"description": "Hook delivery status", "content": {"application/json": {"schema": {"type": "object", "properties": {
            "at": {"type": "string", "format": "date-time"}, "examined": {"type": "integer"},
            "hooks": {"type": "array", "items": {"type": "object", "properties": {"hook": {"type": "string"}, "pending": {"type": "integer"},
              "retrying": {"type": "integer"}, "delivered": {"type": "integer"}, "failed": {"type": "integer"},
              "last_finished": {"type": "string", "nullable": true}, "last_delivered": {"type": "string", "nullable": true},
              "last_error": {"type": "string", "nullable": true}, "last_error_attempts": {"type": "integer", "nullable": true},
              "next_retry": {"type": "string", "nullable": true}}}}}}}}}}}}
    }
    """#
}
